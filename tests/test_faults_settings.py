"""Every numeric setting refuses what is no number of anything: `nan`, `inf`, `-inf`, and a
negative value. An admin who writes one gets the usual one line naming the key from `mailbot
check` (and from any other command), exit 78, instead of a daemon that polls every nan seconds.

The numeric keys are found from their documented defaults, so a key added later is covered."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from mailbot.cli.main import main
from mailbot.config import GLOBAL_KEYS, PRODUCT_KEYS

NUMERIC = re.compile(r"\d+(\.\d+)?[A-Za-z]?")
KEYS = sorted(k for k, v in GLOBAL_KEYS.items() if NUMERIC.fullmatch(v)) + sorted(
    f"MAILBOT_PRODUCT_VISI_{k}" for k, v in PRODUCT_KEYS.items() if NUMERIC.fullmatch(v)
)


def test_the_numeric_keys_are_found():
    assert {
        "MAILBOT_POLL_INTERVAL",
        "MAILBOT_DB_BUSY_TIMEOUT",
        "MAILBOT_PRODUCT_VISI_SLA_WARNING",
        "MAILBOT_PRODUCT_VISI_CREDIT_LOW",
    } <= set(KEYS)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1"])
@pytest.mark.parametrize("key", KEYS)
def test_a_numeric_setting_that_is_no_number_is_refused_by_name(tmp_path, key, value):
    env = tmp_path / "mailbot.env"
    env.write_text(
        f"MAILBOT_DATA_DIR={tmp_path / 'data'}\nMAILBOT_PRODUCTS=VISI\n"
        f"MAILBOT_PRODUCT_VISI_ADDRESS=visi.support@produsoft.test\n{key}={value}\n"
    )
    result = CliRunner().invoke(main, ["--env-file", str(env), "check"])
    assert result.exit_code == 78, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"mailbot: {key}={value!r}: ") and "expected" in line and result.stdout == ""
