"""An admin at the command line: nonsense is refused with one line and a sysexits code (64 for
a command line, 65 for bad data, 78 for a bad setting) and changes nothing; listings say what an
admin needs to see. Everything goes through the real `mailbot` command on a real data folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from mailbot.config import load_settings, read_environment
from mailbot.context import make_desk
from mailbot.desk import tickets
from mailbot.sla.deadlines import refresh_deadlines
from mailbot.store.db import close_database, open_database
from mailbot.store.models import Account
from tests.helpers.desks import Clock
from tests.helpers.site import make_site

VISI = "visi.support@produsoft.test"
WORKNC = "worknc.support@produsoft.test"


@pytest.fixture
def site(tmp_path):
    site = make_site(
        tmp_path,
        {
            "VISI": {"address": VISI, "timezone": "Europe/Amsterdam", "holidays": "NL"},
            "WORKNC": {"address": WORKNC, "hours": "24x7", "sla": "critical=2h,high=8h"},
        },
    )
    site.add_account(
        "dana@customer.test", "VISI", name="Dana", organisation="Customer BV", contract_until="2027-06-30"
    )
    site.add_account("jan@klant.test", "VISI", name="Jan", organisation="Klant BV")
    site.add_account("erin@produsoft.test", "VISI", "engineer", name="Erin")
    return site


def one_line(result) -> str:
    """The error as the admin reads it: exactly one line on stderr, and no Python in it."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr
    return lines[0]


# --- values refused where they enter ---------------------------------------------------------


def test_a_bogus_notification_preference_is_refused_and_nothing_is_stored(site):
    result = site.mailbot("account", "set", "dana@customer.test", "--notify", "bogus", expect=64)
    line = one_line(result)
    assert "'--notify'" in line and "'bogus'" in line
    assert "expected all, none, or a comma list of" in line and "status_changed" in line
    accounts = {a["email"]: a for a in site.json("account", "list")}
    assert accounts["dana@customer.test"]["notify"] == "all", "Dana still gets her mail"
    site.mailbot("account", "set", "dana@customer.test", "--notify", "Status_Changed, ticket_closed")
    accounts = {a["email"]: a for a in site.json("account", "list")}
    assert accounts["dana@customer.test"]["notify"] == "status_changed,ticket_closed"


def test_a_bogus_contract_end_is_refused(site):
    line = one_line(
        site.mailbot("account", "set", "jan@klant.test", "--contract-until", "31-12-2027", expect=64)
    )
    assert "'--contract-until'" in line and "expected YYYY-MM-DD, or none" in line


def test_a_bogus_status_filter_is_refused_naming_the_statuses(site):
    line = one_line(site.mailbot("ticket", "list", "--status", "bogus", expect=64))
    assert "'bogus' is not one of" in line
    for status in ("new", "open", "waiting", "resolved", "closed"):
        assert status in line


@pytest.mark.parametrize(
    "command",
    [
        ["account", "list", "--product", "NOPE"],
        ["account", "add", "x@y.test", "--product", "NOPE"],
        ["ticket", "list", "--product", "NOPE"],
        ["ticket", "search", "crash", "--product", "NOPE"],
        ["product", "show", "NOPE"],
        ["ingest", "NOPE"],
        ["report", "--product", "NOPE"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_an_unknown_product_on_the_command_line_is_a_usage_error(site, command):
    line = one_line(site.mailbot(*command, expect=64))
    assert "unknown product 'NOPE' (configured: VISI, WORKNC)" in line
    assert len(site.json("account", "list")) == 3


def test_an_unknown_option_is_a_usage_error_of_one_line(site):
    line = one_line(site.mailbot("ticket", "list", "--stauts", "open", expect=64))
    assert line.startswith("mailbot: No such option '--stauts'") and "Did you mean '--status'?" in line
    assert line.endswith("ticket list --help')")


# --- account import: all or nothing -----------------------------------------------------------


def test_an_import_with_bad_lines_reports_each_and_imports_nothing(site, tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "email,name,organisation,language,role,contract_until\n"
        "anna@klant.test,Anna,Klant BV,nl,,2027-12-31\n"
        "not-an-address,Bob,Klant BV,nl,,\n"
        "carl@klant.test,Carl,Klant BV,de,,\n"
        "dirk@klant.test,Dirk,Klant BV,nl,owner,\n"
        "eva@klant.test,Eva,Klant BV,nl,,31-12-2027\n"
        "ANNA@klant.test,Anna again,,,,\n"
    )
    result = site.mailbot("account", "import", "VISI", str(customers), expect=65)
    assert result.stderr.splitlines() == [
        "mailbot: 5 bad line(s), nothing imported:",
        "  line 3: 'not-an-address' is not a single mail address",
        "  line 4: language 'de': expected en, nl or fr",
        "  line 5: role 'owner': expected one of customer, engineer, board",
        "  line 6: contract_until '31-12-2027': expected YYYY-MM-DD",
        "  line 7: anna@klant.test is already on line 2",
    ]
    assert len(site.json("account", "list")) == 3, "not even Anna, whose line was good"
    # Repaired, the same file imports every line.
    customers.write_text(
        "email,name,organisation,language,role,contract_until\n"
        "anna@klant.test,Anna,Klant BV,nl,,2027-12-31\nbob@klant.test,Bob,Klant BV,nl,board,\n"
    )
    assert (
        "2 account(s) imported for VISI" in site.mailbot("account", "import", "visi", str(customers)).stdout
    )
    grants = {a["email"]: a["grants"] for a in site.json("account", "list")}
    assert grants["anna@klant.test"] == {"VISI": "customer"} and grants["bob@klant.test"] == {"VISI": "board"}


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "MAILBOT_PRODUCT_VISI_SLA_WARNING",
            "80%",
            "expected a share of the target between 0 and 1, e.g. 0.8",
        ),
        ("MAILBOT_POLL_INTERVAL", "1m", "expected a number of seconds above 0"),
        ("MAILBOT_PRODUCT_VISI_REMINDER_DAYS", "three", "expected a whole number"),
        ("MAILBOT_PRODUCT_VISI_HOLIDAYS", "NL,XX", "no public holidays are known for country XX"),
        ("MAILBOT_MAIL_DOMAIN", "produsoft test", "expected a domain name"),
    ],
)
def test_a_bad_value_is_answered_with_what_was_expected(site, key, value, expected):
    site.env[key] = value
    line = one_line(site.mailbot("ticket", "list", expect=78))
    assert line.startswith(f"mailbot: {key}={value!r}: ") and expected in line
    assert "could not convert" not in line and "invalid literal" not in line


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("MAILBOT_SMTP_URL", "smtp://mailbot:hunter2@mail.test:25x", "the port is not a number"),
        ("MAILBOT_SMTP_URL", "mail.test:587", "expected smtp:// or smtps://HOST[:PORT]"),
        ("MAILBOT_PRODUCT_VISI_MAILBOX", "imaps://visi:hunter2@/INBOX", "expected imap:// or imaps://HOST"),
        ("MAILBOT_DATABASE_URL", "mailbot.db", "expected sqlite:///PATH or postgresql://"),
    ],
)
def test_a_bad_url_is_refused_without_repeating_it(site, key, value, expected):
    site.env[key] = value
    line = one_line(site.mailbot("ticket", "list", expect=78))
    assert line.startswith(f"mailbot: {key}: ") and expected in line
    assert value not in line and "hunter2" not in line


def test_check_fails_on_a_misspelt_key_naming_the_closest(site):
    site.env["MAILBOT_PRODCUTS"] = "VISI"
    site.env["MAILBOT_PRODUCT_VISI_HOLIDAY"] = "NL"
    result = site.mailbot("check", expect=78)
    failures = [line for line in result.stderr.splitlines() if line.startswith("FAIL configuration: ")]
    assert [line.removeprefix("FAIL configuration: ") for line in failures] == [
        "MAILBOT_PRODCUTS is not a setting mailbot knows; did you mean MAILBOT_PRODUCTS?",
        "MAILBOT_PRODUCT_VISI_HOLIDAY is not a setting mailbot knows;"
        " did you mean MAILBOT_PRODUCT_VISI_HOLIDAYS?",
    ]
    # Other commands go on working: the misspelt key is only ever reported.
    assert len(site.json("account", "list")) == 3
    del site.env["MAILBOT_PRODCUTS"], site.env["MAILBOT_PRODUCT_VISI_HOLIDAY"]
    result = site.mailbot("check")
    assert "configuration ok: 2 product(s)" in result.stdout


def test_the_daemon_warns_of_a_misspelt_key_when_it_starts(site):
    site.env["MAILBOT_POL_INTERVAL"] = "5"
    site.write_env()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    log = site.root / "daemon.log"
    with log.open("ab") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while "mailbot running" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    text = log.read_text()
    assert "mailbot running" in text
    assert (
        "WARNING mailbot.service.daemon: configuration: MAILBOT_POL_INTERVAL is not a setting mailbot "
        "knows; did you mean MAILBOT_POLL_INTERVAL?" in text
    )


# --- listings ---------------------------------------------------------------------------------


def test_product_list_has_a_header_hours_and_sla(site):
    lines = site.mailbot("product", "list").stdout.splitlines()
    assert lines[0].split() == ["KEY", "PREFIX", "ADDRESS", "SLA", "crit/high/med/low", "HOURS"]
    assert lines[1].split() == [
        "VISI",
        "VISI",
        VISI,
        "4h/24h/48h/72h",
        "mon-fri",
        "09:00-18:00",
        "(Europe/Amsterdam)",
    ]
    assert lines[2].split() == ["WORKNC", "WORKNC", WORKNC, "2h/8h/48h/72h", "24x7", "(UTC)"]
    [visi, worknc] = site.json("product", "list")
    assert visi["holidays"] == "NL" and worknc["sla"]["high"] == "8h"


def test_account_list_shows_organisation_and_contract_end(site):
    lines = site.mailbot("account", "list").stdout.splitlines()
    assert lines[0].split() == ["EMAIL", "NAME", "ORGANISATION", "CONTRACT", "END", "LANG", "GRANTS"]
    dana = next(line for line in lines if line.startswith("dana@"))
    assert dana.split() == [
        "dana@customer.test",
        "Dana",
        "Customer",
        "BV",
        "2027-06-30",
        "en",
        "VISI:customer",
    ]


def open_tickets_at(site, *specs):
    """Tickets opened in this process as mail would open them, each at its own time."""
    settings = load_settings(read_environment(site.env_file))
    open_database(settings.database_url)
    try:
        for email, created, priority, flags in specs:
            desk = make_desk(settings, clock=Clock(created))
            product = desk.settings.product("VISI")
            requester = Account.get(Account.email == email)
            ticket = tickets.open_ticket(
                "VISI", "VISI", requester, f"{priority} question", created, priority=priority, flags=flags
            )
            refresh_deadlines(ticket, product, created)
    finally:
        close_database()


def test_ticket_list_filters_and_sorts_by_due_time(site):
    now = datetime.now(UTC)
    open_tickets_at(
        site,
        ("dana@customer.test", datetime(2026, 1, 5, 10, 0, tzinfo=UTC), "medium", ()),  # long overdue
        ("jan@klant.test", now + timedelta(days=20), "low", ()),
        ("dana@customer.test", now + timedelta(days=10), "high", ("contract_expired",)),
    )
    site.mailbot("ticket", "set", "VISI-2", "--assign", "erin@produsoft.test")

    def refs(*options: str) -> list[str]:
        return [t["reference"] for t in site.json("ticket", "list", *options)]

    assert refs() == ["VISI-3", "VISI-2", "VISI-1"], "newest first, as before"
    assert refs("--sort", "due") == ["VISI-1", "VISI-3", "VISI-2"]
    assert refs("--requester", "DANA@customer.test") == ["VISI-3", "VISI-1"]
    assert refs("--organisation", "klant bv") == ["VISI-2"]
    assert refs("--assignee", "erin@produsoft.test") == ["VISI-2"]
    assert refs("--assignee", "nobody", "--sort", "due") == ["VISI-1", "VISI-3"]
    assert refs("--flag", "contract_expired") == ["VISI-3"]
    assert refs("--overdue") == ["VISI-1"]
    assert refs("--overdue", "--organisation", "Klant BV") == []
    line = one_line(site.mailbot("ticket", "list", "--requester", "nobody@nowhere.test", expect=64))
    assert "'--requester'" in line and "no account 'nobody@nowhere.test'" in line
    text = site.mailbot("ticket", "list", "--sort", "due").stdout.splitlines()
    assert text[0].split() == ["REFERENCE", "STATUS", "PRIORITY", "DUE", "REQUESTER", "SUBJECT"]
    assert text[1].startswith("VISI-1 ") and "2026-01-05 11:00" in text[1]  # the first answer, an hour in
