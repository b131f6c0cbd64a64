"""The admin's view of a running installation, on Dovecot and the SMTP sink: `mailbot status`
with a mailbox that cannot be reached and mail waiting to go out; the health alerts (a mailbox
unreachable, a mailbox gone silent, mail that keeps failing) mailed once each and their recovery
once, with the desk's clock moved by the test (each pass is `poll --once`'s, in this process);
the Prometheus endpoint of a running daemon scraped over HTTP; and the log lines, text and JSON.

Each story counts what the admin got: alert mails at the SMTP server, figures in `status`, the
metrics' counters against the mails handled and sent.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailbot.cli.logs import JsonLineFormatter, TextFormatter
from mailbot.config import load_settings
from mailbot.config_files import read_environment
from mailbot.context import Desk, make_desk
from mailbot.service.daemon import poll_everything
from mailbot.store import migrations
from mailbot.store.db import close_database, open_database
from tests.helpers.desks import Clock
from tests.helpers.mails import write_mail
from tests.helpers.servers import Dovecot, free_port, make_workdir, remove_workdir
from tests.helpers.site import Site, make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
WORKNC = "worknc.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"
ADMIN = "ops@produsoft.test"
SECRET = "hunter2/@%?"


@contextmanager
def desk_at(site: Site, clock: Clock) -> Iterator[Desk]:
    """The site's database and settings in this process, on the test's clock."""
    settings = load_settings(read_environment(site.env_file))
    open_database(settings.database_url)
    try:
        yield make_desk(settings, clock=clock)
    finally:
        close_database()


def one_pass(desk: Desk) -> int:
    """What `poll --once` does: every mailbox, the jobs, the outbox, the health alerts."""
    return poll_everything(desk, ssl.create_default_context())[1]


def alerts_to_admin(smtp_sink) -> list[str]:
    return [str(m.message["Subject"]) for m in smtp_sink.messages if m.rcpt_tos == [ADMIN]]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A Dovecot of this test alone, to stop and start again."""
    workdir = make_workdir()
    server = Dovecot(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        remove_workdir(workdir)


# -- status --------------------------------------------------------------------------------------


def test_status_shows_the_unreachable_mailbox_and_the_mail_waiting_to_go_out(tmp_path, dovecot, mail_user):
    dead_mailbox = f"imap://worknc:{quote(SECRET, safe='')}@127.0.0.1:{free_port()}/INBOX"
    site = make_site(
        tmp_path,
        {
            "VISI": {"address": VISI, "mailbox": mail_user.url()},
            "WORKNC": {"address": WORKNC, "mailbox": dead_mailbox},
        },
        smtp_url=f"smtp://127.0.0.1:{free_port()}",  # nobody listens: the outbox fills
    )
    site.add_account(DANA, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    dovecot.append(mail_user.name, write_mail(DANA, VISI, "Licence server down", "Nothing starts."))

    site.mailbot("poll", "--once", expect=75)

    status = site.json("status")
    visi, worknc = status["mailboxes"]
    assert (visi["product"], visi["reachable"], visi["backlog"], visi["last_error"]) == ("VISI", True, 0, "")
    assert visi["last_mail_at"] == visi["last_pass_at"] == status["last_pass_at"]
    assert (worknc["product"], worknc["reachable"], worknc["last_pass_at"]) == ("WORKNC", False, None)
    assert "cannot open the mailbox" in worknc["last_error"]
    assert worknc["failing_since"] == worknc["last_error_at"]
    # The acknowledgement to Dana and the notice to Erin; the first try found no server, and the
    # round stopped there.
    assert site.query("SELECT recipient, attempts FROM outbox WHERE status = 'pending' ORDER BY id") == [
        (DANA, 1),
        (ERIN, 0),
    ]
    assert status["outbox"] | {"oldest_waiting": None} == {
        "waiting": 2,
        "retrying": 1,
        "failed": 0,
        "dead": 0,
        "oldest_waiting": None,
    }
    assert status["outbox"]["oldest_waiting"] is not None
    assert status["open_tickets"] == {"VISI": 1, "WORKNC": 0}
    assert status["sla_breaches"] == {"VISI": 0, "WORKNC": 0}

    text = site.mailbot("status").output
    assert "WORKNC     UNREACHABLE since" in text
    assert "VISI       reachable" in text
    assert "outbox: 2 waiting (1 being retried), 0 failed, 0 given up" in text
    assert SECRET not in text and quote(SECRET, safe="") not in text
    assert quote(SECRET, safe="") not in json.dumps(status)

    # One row per mailbox, however many passes and mails.
    site.mailbot("poll", "--once", expect=75)
    assert site.query("SELECT product FROM mailbox_health ORDER BY product") == [("VISI",), ("WORKNC",)]


# -- alerts --------------------------------------------------------------------------------------


def test_a_silent_mailbox_is_reported_once_and_its_recovery_once(tmp_path, dovecot, mail_user, smtp_sink):
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": mail_user.url(), "silence_alert": "2d"}},
        smtp_url=smtp_sink.url,
        alert_address=ADMIN,
    )
    site.add_account(DANA, "VISI")
    clock = Clock(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
    with desk_at(site, clock) as desk:
        assert one_pass(desk) == 0  # the first pass: the silence counts from here
        clock.advance(days=2)
        assert one_pass(desk) == 0
        assert alerts_to_admin(smtp_sink) == []  # two days exactly: not longer than 2d

        for _ in range(30):  # a pass every 2 hours for 2.5 days: far past the hourly alert limit
            clock.advance(hours=2)
            assert one_pass(desk) == 0
        assert alerts_to_admin(smtp_sink) == ["[mailbot alert] no mail for VISI for 2 days"]
        assert site.json("status")["alerts"][0]["summary"] == "no mail for VISI for 2 days"

        dovecot.append(mail_user.name, write_mail(DANA, VISI, "Are you there?", "Quiet week."))
        for _ in range(3):
            clock.advance(hours=2)
            assert one_pass(desk) == 0
    subjects = alerts_to_admin(smtp_sink)
    assert subjects == [
        "[mailbot alert] no mail for VISI for 2 days",
        "[mailbot alert] mail for VISI arrives again",
    ]
    assert site.json("status")["alerts"] == []
    assert [m.rcpt_tos for m in smtp_sink.messages].count([DANA]) == 1  # Dana's acknowledgement


def test_an_unreachable_mailbox_is_reported_once_and_its_return_once(tmp_path, own_dovecot, smtp_sink):
    own_dovecot.add_user("visi", SECRET)
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": own_dovecot.imap_url("visi")}},
        smtp_url=smtp_sink.url,
        alert_address=ADMIN,
        unreachable_alert="30m",
    )
    clock = Clock(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
    with desk_at(site, clock) as desk:
        assert one_pass(desk) == 0
        own_dovecot.stop()
        for _ in range(3):  # 0, 10 and 20 minutes down
            assert one_pass(desk) == 75
            clock.advance(minutes=10)
        assert alerts_to_admin(smtp_sink) == []
        for _ in range(12):  # 30 minutes down and on, every 10 minutes for two hours
            assert one_pass(desk) == 75
            clock.advance(minutes=10)
        assert alerts_to_admin(smtp_sink) == ["[mailbot alert] mailbox of VISI unreachable for 30 minutes"]
        assert [box["reachable"] for box in site.json("status")["mailboxes"]] == [False]

        own_dovecot.start()
        for _ in range(3):
            assert one_pass(desk) == 0
            clock.advance(minutes=10)
    assert alerts_to_admin(smtp_sink) == [
        "[mailbot alert] mailbox of VISI unreachable for 30 minutes",
        f"[mailbot alert] mailbox of VISI reachable again ({own_dovecot.imap_url('visi').split(':')[0]}"
        f"://visi@127.0.0.1:{own_dovecot.imap_port}/INBOX)",
    ]
    body = smtp_sink.messages[0].message.get_payload(decode=True).decode()
    assert "cannot open the mailbox" in body and SECRET not in body and quote(SECRET, safe="") not in body


def test_mail_that_keeps_failing_is_reported_once_and_its_delivery_once(tmp_path, smtp_sink):
    site = make_site(tmp_path, {"VISI": {"address": VISI}}, smtp_url=smtp_sink.url, alert_address=ADMIN)
    site.add_account(DANA, "VISI")
    path = tmp_path / "mail.eml"
    path.write_bytes(write_mail(DANA, VISI, "Licence server down", "Nothing starts."))
    site.mailbot("ingest", "VISI", str(path))
    # Dana's server greylists her mail for two hours; the admin's takes mail at once.
    smtp_sink.fail_next(451, "4.7.1 Greylisted, try again later", stage="rcpt", recipient=DANA, times=7)
    clock = Clock(datetime.now(UTC))
    with desk_at(site, clock) as desk:
        for _ in range(20):  # retried after 1, 2, 4 ... 60 minutes: the eighth try, after 2 h, goes through
            one_pass(desk)
            clock.advance(minutes=9)
        assert site.query("SELECT attempts, status FROM outbox WHERE recipient = 'dana@customer.test'") == [
            (8, "sent")
        ]
    assert alerts_to_admin(smtp_sink) == [
        "[mailbot alert] 1 outgoing mail(s) failed 3 times or more",
        "[mailbot alert] outgoing mail is delivered again",
    ]
    assert [m.rcpt_tos for m in smtp_sink.messages].count([DANA]) == 1


# -- metrics -------------------------------------------------------------------------------------


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_running_daemon_serves_metrics_that_count_the_mail(tmp_path, dovecot, mail_user, smtp_sink):
    port = free_port()
    dead_mailbox = f"imap://worknc:{quote(SECRET, safe='')}@127.0.0.1:{free_port()}/INBOX"
    site = make_site(
        tmp_path,
        {
            "VISI": {"address": VISI, "mailbox": mail_user.url()},
            "WORKNC": {"address": WORKNC, "mailbox": dead_mailbox},
        },
        smtp_url=smtp_sink.url,
        metrics=f"127.0.0.1:{port}",
        log_format="json",
    )
    site.add_account(DANA, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    site.write_env()
    for n in range(3):
        dovecot.append(mail_user.name, write_mail(DANA, VISI, f"Case {n}", "Nothing starts."))
    dovecot.append(mail_user.name, write_mail("MAILER-DAEMON@relay.test", VISI, "Out of office", "Away."))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    log_path = tmp_path / "daemon.log"
    with log_path.open("ab") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        smtp_sink.wait_for(6, timeout=30)  # per case: Dana's acknowledgement and Erin's notice

        def counted() -> dict | None:
            try:
                metrics = scrape(port)
            except OSError:
                return None
            sent = metrics.get(("mailbot_mails_out_total", (("result", "sent"),)), 0)
            return metrics if sent == len(smtp_sink.messages) else None

        metrics = wait_until(counted, 20, "the metrics to count every mail sent")
        assert isinstance(metrics, dict)
        mails_in = {
            dict(labels)["outcome"]: value
            for (name, labels), value in metrics.items()
            if name == "mailbot_mails_in_total" and dict(labels)["product"] == "VISI"
        }
        ledger = dict(site.query("SELECT outcome, count(*) FROM seen GROUP BY outcome"))
        assert mails_in == ledger == {"ticket": 3, "ignored": 1}
        assert metrics[("mailbot_mails_out_total", (("result", "sent"),))] == 6
        assert metrics[("mailbot_outbox_mails", (("status", "waiting"),))] == 0
        assert metrics[("mailbot_open_tickets", (("product", "VISI"),))] == 3
        assert metrics[("mailbot_sla_breached_tickets", (("product", "VISI"),))] == 0
        assert metrics[("mailbot_mailbox_up", (("product", "VISI"),))] == 1
        assert 0 <= metrics[("mailbot_last_pass_age_seconds", (("product", "VISI"),))] < 120
        assert metrics[("mailbot_pass_duration_seconds_count", (("product", "VISI"),))] >= 1
        assert metrics[("mailbot_quarantined_mails", ())] == 0
        assert metrics[("mailbot_mailbox_up", (("product", "WORKNC"),))] == 0
        assert math.isnan(metrics[("mailbot_last_pass_age_seconds", (("product", "WORKNC"),))])
        worknc = site.json("status")["mailboxes"][1]
        assert (worknc["reachable"], worknc["mailbox"]) == (
            False,
            f"imap://worknc@{dead_mailbox.split('@')[1]}",
        )
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=40)
        assert daemon.returncode == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    with pytest.raises(OSError):  # the endpoint went with the daemon
        scrape(port)
    lines = log_path.read_text().splitlines()
    assert quote(SECRET, safe="") not in log_path.read_text()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["message"].startswith("metrics on http://127.0.0.1:") for r in records)
    assert records[-1]["message"] == "mailbot stopped"


def test_metrics_refuse_an_address_beyond_this_machine(tmp_path):
    site = make_site(tmp_path, {"VISI": {"address": VISI}})
    site.env["MAILBOT_METRICS"] = "0.0.0.0:9464"  # checked, never bound
    result = site.mailbot("status", expect=78)
    assert "not a loopback address" in result.output and "MAILBOT_METRICS_ALLOW_REMOTE" in result.output


# -- logs ----------------------------------------------------------------------------------------


def test_log_lines_are_one_per_event_and_carry_no_password(tmp_path):
    dead_mailbox = f"imap://visi:{quote(SECRET, safe='')}@127.0.0.1:{free_port()}/INBOX"
    site = make_site(tmp_path, {"VISI": {"address": VISI, "mailbox": dead_mailbox}}, log_format="json")
    site.write_env()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    run = subprocess.run(
        [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "poll", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 75
    assert quote(SECRET, safe="") not in run.stderr and SECRET not in run.stderr
    # Log lines are JSON; the command's own closing line ("mailbot: ...") is for the person.
    records = [json.loads(line) for line in run.stderr.splitlines() if not line.startswith("mailbot: ")]
    assert [r["level"] for r in records if "cannot open the mailbox" in r["message"]] == ["WARNING"]

    # A traceback stays in its event's line, and a password a library put in a message is masked.
    record = logging.LogRecord("mailbot.x", logging.ERROR, __file__, 1, "to %s", (dead_mailbox,), None)
    try:
        raise RuntimeError("first line\nsecond line")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    text = TextFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert "\n" not in text and "second line" in text and "imap://visi:***@127.0.0.1" in text
    parsed = json.loads(JsonLineFormatter().format(record))
    assert parsed["message"] == dead_mailbox.replace(quote(SECRET, safe=""), "***").replace(
        "imap", "to imap", 1
    )
    assert "second line" in parsed["exc_info"]


# -- upgrade -------------------------------------------------------------------------------------


@pytest.mark.sqlite_only("upgrade from a SQLite fixture file (schema 3)")
def test_an_installation_from_schema_3_gains_the_health_tables_and_keeps_its_data(tmp_path):
    path = tmp_path / "data" / "mailbot.db"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    try:
        db.executescript((Path(__file__).resolve().parent / "fixtures" / "schema_v3.sql").read_text())
        db.executemany(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, '2026-01-01 00:00:00')",
            [(1,), (2,), (3,)],
        )
        db.execute("INSERT INTO mailbox_state VALUES ('maildir:///old', 7, 42, '2026-01-01 00:00:00')")
        db.commit()
    finally:
        db.close()
    site = make_site(tmp_path, {"VISI": {"address": VISI}})  # `db init`: migrated in place
    assert site.query("SELECT max(version) FROM schema_version") == [(migrations.LATEST,)]
    assert site.query("SELECT uidvalidity, last_uid FROM mailbox_state WHERE mailbox = 'maildir:///old'") == [
        (7, 42)
    ]
    site.poll()
    [visi] = site.json("status")["mailboxes"]
    assert (visi["reachable"], visi["backlog"]) == (True, 0)
    (tmp_path / "fresh").mkdir()
    fresh = make_site(tmp_path / "fresh", {"VISI": {"address": VISI}})
    for table in ("mailbox_health", "alarm"):
        assert site.query(f'PRAGMA table_info("{table}")') == fresh.query(f'PRAGMA table_info("{table}")')
