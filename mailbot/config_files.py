"""The MAILBOT_* values as mailbot reads them: the .env file (which must be private when it holds
a secret), with the process environment over it. `mailbot.config` makes settings of them."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from mailbot.errors import ConfigError


def read_environment(env_file: Path | None) -> dict[str, str]:
    """The MAILBOT_* values: the .env file first, the process environment over it."""
    values: dict[str, str] = {}
    path = env_file if env_file is not None else Path(".env")
    if env_file is not None and not path.is_file():
        raise ConfigError(f"--env-file {path}: no such file")
    if path.is_file():
        from_file = {k: v for k, v in dotenv_values(path).items() if v is not None}
        _check_private(path, from_file)
        values.update(from_file)
    values.update({k: v for k, v in os.environ.items() if k.startswith("MAILBOT_")})
    return values


_SECRET_NAME = re.compile(r"(PASSWORD|SECRET)$", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@]*:[^@]+@")


def _check_private(path: Path, values: Mapping[str, str]) -> None:
    """A file that holds a secret (a password in a URL, a *PASSWORD or *SECRET key) must not be
    readable by every user of the machine (reliability S12). The error names the keys, never
    their values."""
    if not path.stat().st_mode & 0o004:
        return
    secret = sorted(k for k, v in values.items() if v and (_SECRET_NAME.search(k) or _URL_PASSWORD.match(v)))
    if secret:
        raise ConfigError(
            f"{path} holds secrets ({', '.join(secret)}) and every user of this machine may "
            f"read it: run chmod 600 {path}"
        )
