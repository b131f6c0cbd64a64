"""No two processes ever deliver the same outbox row: 120 customers wrote while sending was off
(`mailbot ingest`, which only queues), then two `mailbot poll --once` start at the same moment
against the same database and SMTP server, as cron beside cron would; and a `poll --once` beside
a running `mailbot run` daemon. Every Message-ID the outbox holds arrives at the server exactly
once, and every person gets exactly the mails queued for them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.helpers.mails import write_mail
from tests.helpers.site import Site, make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
ERIN = "erin@produsoft.test"
CUSTOMERS = 120


@pytest.fixture
def site(tmp_path, smtp_sink) -> Site:
    inbox = tmp_path / "inbox"
    for folder in ("new", "cur", "tmp"):
        (inbox / folder).mkdir(parents=True)
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": f"maildir://{inbox}", "unknown_senders": "open"}},
        smtp_url=smtp_sink.url,
        io_timeout="10",
        outbox_interval="1",
    )
    site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
    mails = tmp_path / "mails"
    mails.mkdir()
    for number in range(1, CUSTOMERS + 1):
        (mails / f"{number}.eml").write_bytes(
            write_mail(
                f"Customer {number} <customer{number}@company.test>",
                VISI,
                f"Case {number}",
                f"Case {number}: the export stops halfway.",
            )
        )
    site.mailbot("ingest", "VISI", *sorted(str(p) for p in mails.iterdir()))
    [(queued,)] = site.query("SELECT count(*) FROM outbox WHERE status = 'pending'")
    assert queued == 2 * CUSTOMERS  # an acknowledgement and the engineer's new-ticket mail each
    return site


def start(site: Site, *args: str) -> subprocess.Popen:
    site.write_env()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    with (site.root / "mailbot.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def pending(site: Site) -> int:
    return site.query("SELECT count(*) FROM outbox WHERE status != 'sent'")[0][0]


def assert_each_row_delivered_once(site: Site, sink) -> None:
    queued = dict(site.query("SELECT message_id, recipient FROM outbox"))
    received = Counter(str(m.message["Message-ID"]).strip("<>") for m in sink.messages)
    twice = {mid: n for mid, n in received.items() if n > 1}
    assert twice == {}, f"{len(twice)} of {len(queued)} mails went out more than once"
    assert set(received) == set(queued)
    per_person = Counter(rcpt for m in sink.messages for rcpt in m.rcpt_tos)
    assert per_person[ERIN] == CUSTOMERS
    assert {n for person, n in per_person.items() if person != ERIN} == {1}
    assert len(per_person) == CUSTOMERS + 1
    assert pending(site) == 0


def test_two_poll_once_started_together_send_each_mail_once(site, smtp_sink):
    first, second = start(site, "poll", "--once"), start(site, "poll", "--once")
    codes = (first.wait(timeout=300), second.wait(timeout=300))
    assert codes == (0, 0), (site.root / "mailbot.log").read_text()
    assert_each_row_delivered_once(site, smtp_sink)


def test_poll_once_beside_the_daemon_sends_each_mail_once(site, smtp_sink):
    daemon = start(site, "run")
    try:
        poll = start(site, "poll", "--once")
        assert poll.wait(timeout=300) == 0, (site.root / "mailbot.log").read_text()
        deadline = time.monotonic() + 120
        while pending(site) and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    assert daemon.returncode == 0, (site.root / "mailbot.log").read_text()
    assert_each_row_delivered_once(site, smtp_sink)
