"""The systemd unit's sandbox (reliability S13): the hardening directives are there, and
`systemd-analyze security --offline=true` rates the unit's exposure at 2.0 or better. The
offline review needs no running systemd (it reads the file); it needs the `systemd-analyze`
binary, from Debian's `systemd` package (version 250 or newer)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "mailbot.service"
MAX_EXPOSURE = 2.0


def directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_asks_for_the_sandbox():
    unit = directives()
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictSUIDSGID": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "SystemCallArchitectures": "native",
        "User": "mailbot",
        "StateDirectory": "mailbot",
        "Type": "notify",
    }.items():
        assert unit.get(key) == [value], f"{key}={value} expected, found {unit.get(key)}"
    assert unit["CapabilityBoundingSet"] == [""] and unit["AmbientCapabilities"] == [""], "no capabilities"
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "@system-service" in unit["SystemCallFilter"]
    assert "ReadWritePaths" not in unit and "PermissionsStartOnly" not in unit, "no way around the sandbox"


def test_systemd_analyze_rates_the_unit_at_most_2():
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not found: install Debian's systemd package (>= 250) to rate the unit")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(re.match(r"systemd (\d+)", version).group(1))  # type: ignore[union-attr]
    if major < 250:
        pytest.skip(f"systemd-analyze {major} cannot review a unit file offline (needs 250 or newer)")
    done = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r"Overall exposure level for mailbot\.service: (\d+\.\d+)", done.stdout)
    assert match, f"no exposure level in the output:\n{done.stdout}\n{done.stderr}"
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{done.stdout}"
