"""An admin's configuration: every key documented, every mistake named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailbot.config import GLOBAL_KEYS, PRODUCT_KEYS, load_settings
from mailbot.config_files import read_environment
from mailbot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.env"


def documented_keys() -> set[str]:
    keys = set()
    for line in EXAMPLE.read_text().splitlines():
        match = re.match(r"^([A-Z0-9_]+)=", line)
        if match:
            keys.add(match.group(1))
    return keys


def test_every_key_the_code_reads_is_documented():
    documented = documented_keys()
    missing = [k for k in GLOBAL_KEYS if k not in documented]
    missing += [
        f"MAILBOT_PRODUCT_VISI_{s}" for s in PRODUCT_KEYS if f"MAILBOT_PRODUCT_VISI_{s}" not in documented
    ]
    assert missing == [], f"keys missing from config.example.env: {missing}"


def test_no_key_is_read_that_is_not_declared():
    """Keys named anywhere in the package must be declared (and so documented)."""
    declared = set(GLOBAL_KEYS) | {f"_{s}" for s in PRODUCT_KEYS}
    used = set()
    for path in (ROOT / "mailbot").rglob("*.py"):
        used |= set(re.findall(r"MAILBOT_[A-Z0-9_]+", path.read_text()))
    stray = sorted(
        k
        for k in used
        if k not in declared
        and k != "MAILBOT_PRODUCT_"
        and not (k.endswith("_") and any(d.startswith(k) for d in GLOBAL_KEYS))  # a prefix of declared keys
        and not any(k.endswith(s) for s in declared if s.startswith("_"))
    )
    assert stray == [], f"keys used in code but not declared in config.py: {stray}"


def test_example_file_loads(tmp_path):
    env = read_environment(EXAMPLE)
    env["MAILBOT_DATA_DIR"] = str(tmp_path)
    settings = load_settings(env)
    assert settings.product("visi").address == "visi.support@example.com"
    assert settings.mail_domain == "example.com"
    assert settings.product("VISI").mailbox == f"maildir://{tmp_path}/maildirs/VISI"


def base_env(tmp_path) -> dict[str, str]:
    return {
        "MAILBOT_DATA_DIR": str(tmp_path),
        "MAILBOT_PRODUCTS": "VISI,WORKNC",
        "MAILBOT_PRODUCT_VISI_ADDRESS": "visi.support@produsoft.test",
        "MAILBOT_PRODUCT_WORKNC_ADDRESS": "worknc.support@produsoft.test",
    }


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("MAILBOT_PRODUCTS", "", "MAILBOT_PRODUCTS is not set"),
        ("MAILBOT_PRODUCT_VISI_ADDRESS", "not-an-address", "MAILBOT_PRODUCT_VISI_ADDRESS"),
        ("MAILBOT_PRODUCT_VISI_UNKNOWN_SENDERS", "maybe", "expected one of reject, open"),
        ("MAILBOT_PRODUCT_VISI_CONTRACT_REQUIRED", "yes please", "expected true or false"),
        ("MAILBOT_PRODUCT_VISI_MAILBOX", "pop3://host/", "MAILBOT_PRODUCT_VISI_MAILBOX"),
        ("MAILBOT_PRODUCT_VISI_TIMEZONE", "Mars/Olympus", "MAILBOT_PRODUCT_VISI_TIMEZONE"),
        ("MAILBOT_PRODUCT_VISI_HOURS", "mon-fri 18:00-09:00", "MAILBOT_PRODUCT_VISI_HOURS"),
        ("MAILBOT_PRODUCT_VISI_SLA", "urgent=1h", "MAILBOT_PRODUCT_VISI_SLA"),
        ("MAILBOT_PRODUCT_WORKNC_ADDRESS", "VISI.support@produsoft.test", "same as VISI"),
        ("MAILBOT_POLL_INTERVAL", "-5", "MAILBOT_POLL_INTERVAL"),
        ("MAILBOT_MAX_MESSAGE_SIZE", "big", "MAILBOT_MAX_MESSAGE_SIZE"),
    ],
)
def test_mistakes_name_the_key(tmp_path, key, value, says):
    env = base_env(tmp_path)
    env[key] = value
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_settings(env)


def test_produsoft_calendar_and_defaults(tmp_path):
    env = base_env(tmp_path)
    env["MAILBOT_PRODUCT_VISI_TIMEZONE"] = "Europe/Brussels"
    env["MAILBOT_PRODUCT_VISI_HOURS"] = "mon-thu 08:30-12:30,13:00-17:00; fri 08:30-12:30,13:00-16:00"
    env["MAILBOT_PRODUCT_VISI_CONTRACT_REQUIRED"] = "true"
    settings = load_settings(env)
    visi = settings.product("VISI")
    assert visi.contract_required is True and visi.prefix == "VISI"
    assert str(visi.calendar.zone) == "Europe/Brussels"
    assert visi.sla["critical"].total_seconds() == 4 * 3600
    assert settings.database_url == f"sqlite:///{tmp_path}/mailbot.db"


def test_settings_are_frozen(tmp_path):
    settings = load_settings(base_env(tmp_path))
    with pytest.raises(AttributeError):
        settings.smtp_url = "smtp://elsewhere"  # type: ignore[misc]
