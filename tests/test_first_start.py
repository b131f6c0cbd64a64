"""First start on a mailbox full of old mail, on a real Dovecot and a real SMTP server: every
old mail becomes its ticket or message, none is answered and the engineers get no flood of
new-ticket mail; the pass shows its progress, survives a SIGKILL in the middle and resumes where
it stopped; the daemon takes a backlog in passes of bounded size. Counted: one ledger row per
mail, nothing sent twice."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from mailbot.config import load_settings
from mailbot.config_files import read_environment
from mailbot.context import make_desk
from mailbot.desk import jobs, tickets
from mailbot.desk.caps import BEFORE_CUTOVER, BEFORE_CUTOVER_FLAG
from mailbot.service import workers
from mailbot.service.poller import BATCH_SIZE, poll_mailbox
from mailbot.sources import open_source
from mailbot.store.db import close_database, open_database
from mailbot.store.models import Notice, Seen, Ticket
from tests.helpers.bulk import append_many, counts, database_of
from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
ERIN = "erin@produsoft.test"
LAST_YEAR = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
OLD_SENDERS, OLD_EACH, OLD_REPLIES = 100, 10, 100  # 1,000 old mails, 100 of them replies
NEW = 10
MONTH = timedelta(days=30)


@pytest.fixture
def site(tmp_path, mail_user, smtp_sink):
    open_visi = {"address": VISI, "mailbox": mail_user.url(), "unknown_senders": "open"}
    # A low flood limit: the backlog's ten mails per sender are history, never a flood.
    site = make_site(tmp_path, {"VISI": open_visi}, smtp_url=smtp_sink.url, flood_limit="5")
    site.add_account(ERIN, "VISI", "engineer")
    return site


def old_mailbox() -> list[bytes]:
    """A year of mail: each sender's requests, some of them followed up by the sender."""
    mails, firsts = [], []
    for n in range(OLD_SENDERS * OLD_EACH - OLD_REPLIES):
        sender = f"customer{n % OLD_SENDERS}@old.test"
        mid = f"old-{n}@old.test"
        mails.append(
            write_mail(sender, VISI, f"Old request {n}", f"Request {n} of last year.", message_id=mid)
        )
        firsts.append((sender, mid, n))
    for sender, mid, n in firsts[:OLD_REPLIES]:
        mails.append(write_mail(sender, VISI, f"Re: Old request {n}", "Any news?", in_reply_to=mid))
    return mails


def ledger_count(site) -> int:
    try:
        [(count,)] = site.query("SELECT count(*) FROM seen")
        return int(count)
    except (sqlite3.OperationalError, psycopg.Error):  # not created yet, or busy for a moment
        return 0


def kill_midway(site, at_least: int) -> int:
    """Start `mailbot poll --once` as its own process, SIGKILL it once `at_least` mails are in
    the ledger, and return how many were."""
    command = [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "poll", "--once"]
    with open(site.root / "killed.log", "wb") as log:
        process = subprocess.Popen(command, cwd=site.root, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 120
            while ledger_count(site) < at_least and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert process.poll() is None, "the pass ended before it could be killed"
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    return ledger_count(site)


def unacknowledged_on_server(dovecot, user: str) -> list[int]:
    with dovecot.client(user) as imap:
        imap.select_folder("INBOX", readonly=True)
        return imap.search(["UNKEYWORD", "$MailbotDone"])


def test_first_start_on_a_full_mailbox_answers_nothing_old_and_resumes_after_a_kill(
    site, dovecot, mail_user, smtp_sink
):
    old = old_mailbox()
    append_many(dovecot, mail_user.name, old, arrived=LAST_YEAR)
    # One of last year's customers writes again today: answered, not folded into the backlog.
    new_senders = ["customer0@old.test"] + [f"new{n}@customer.test" for n in range(NEW - 1)]
    append_many(
        dovecot, mail_user.name, [write_mail(s, VISI, f"New request from {s}", "Hello.") for s in new_senders]
    )
    total = len(old) + NEW

    handled_before_kill = kill_midway(site, at_least=300)
    assert 300 <= handled_before_kill < total - 500, "killed early enough to show progress after"
    result = site.poll()

    found = counts(site)
    print(
        f"\nfirst start: {total} mails, killed after {handled_before_kill}; {dict(found.outcomes)}; "
        f"outbox {dict(found.outbox)}"
    )
    assert found.ledger == total == len(dovecot.uids(mail_user.name))
    assert unacknowledged_on_server(dovecot, mail_user.name) == []
    assert sum(n for reason, n in found.reasons.items() if reason.endswith(BEFORE_CUTOVER)) == len(old)
    assert found.tickets == len(old) - OLD_REPLIES + NEW
    assert found.outcomes == {"ticket": found.tickets, "message": OLD_REPLIES}
    # Only the new mail is answered, and the engineers hear only of the new tickets.
    assert dict(found.outbox) == {"ticket_opened": NEW, "new_ticket": NEW}
    assert sorted(r for m in smtp_sink.messages for r in m.rcpt_tos) == sorted(new_senders + [ERIN] * NEW)
    # The second pass went on from the cursor (which may lag the ledger by the mails of the batch
    # the kill caught before they were acknowledged): its progress counts only what was left.
    left = total - handled_before_kill
    progress = [(int(done), int(of)) for done, of in re.findall(r"VISI: (\d+)/(\d+) mails", result.stderr)]
    assert progress and all(left <= of <= left + BATCH_SIZE for _, of in progress), progress
    summary = re.search(r"VISI: (\d+) mails arrived before the cut-over", result.stderr)
    assert summary and int(summary.group(1)) == len(old) - handled_before_kill, "one summary line"

    # A month later, the SLA clock has run out on the new tickets only: the backlog is flagged and
    # never floods the board with warnings.
    with database_of(site):
        jobs.sla_sweep(make_desk(load_settings(read_environment(site.env_file))), datetime.now(UTC) + MONTH)
        backlog = tickets.flagged(BEFORE_CUTOVER_FLAG)
        assert Ticket.select().where(backlog).count() == len(old) - OLD_REPLIES
        assert Notice.select().join(Ticket).where(backlog).count() == 0
        assert Notice.select().join(Ticket).where(~backlog).count() >= NEW


def test_the_daemon_takes_a_backlog_in_bounded_passes_and_a_stop_resumes_at_the_next_mail(
    site, dovecot, mail_user, smtp_sink
):
    append_many(
        dovecot,
        mail_user.name,
        [write_mail(f"c{n % 7}@customer.test", VISI, f"Request {n}", "Hi.") for n in range(120)],
        arrived=LAST_YEAR,
    )
    settings = load_settings(read_environment(site.env_file))
    open_database(settings.database_url)
    try:
        desk = make_desk(settings)
        product = settings.product("VISI")
        source = open_source(product.mailbox, ssl_context=ssl.create_default_context(), timeout=10)
        source.open()
        try:
            first = poll_mailbox(desk, product, source, limit=50)
            assert (first.pending, first.handled, first.remaining) == (120, 50, 70)
            taken = iter(range(1, 1000))
            stopped = poll_mailbox(desk, product, source, should_stop=lambda: next(taken) >= 20)
            assert (stopped.pending, stopped.handled, stopped.remaining) == (70, 20, 50)
            rest = poll_mailbox(desk, product, source, limit=50)
            assert (rest.pending, rest.handled, rest.remaining) == (50, 50, 0)
            assert poll_mailbox(desk, product, source).pending == 0
        finally:
            source.close()
        assert Seen.select().count() == 120
        assert len({(row.uidvalidity, row.uid) for row in Seen.select()}) == 120
    finally:
        close_database()


def test_the_daemon_worker_goes_straight_on_to_the_next_pass_while_a_backlog_is_left(
    site, dovecot, mail_user, monkeypatch
):
    monkeypatch.setattr(workers, "PASS_LIMIT", 50)
    append_many(
        dovecot,
        mail_user.name,
        [write_mail(f"c{n % 7}@customer.test", VISI, f"Request {n}", "Hi.") for n in range(120)],
        arrived=LAST_YEAR,
    )
    settings = load_settings(read_environment(site.env_file))
    open_database(settings.database_url)
    stop, passes = threading.Event(), []

    def stop_when_all_are_in() -> None:
        # Without going straight on, the worker would sit in IDLE after its first 50 mails.
        end = time.monotonic() + 60
        while ledger_count(site) < 120 and time.monotonic() < end:
            time.sleep(0.05)
        stop.set()

    watcher = threading.Thread(target=stop_when_all_are_in)
    watcher.start()
    worker = workers.MailboxWorker(
        make_desk(settings),
        settings.product("VISI"),
        ssl.create_default_context(),
        stop,
        on_mail=lambda: passes.append(1),
    )
    try:
        worker.run_once(budget=60)
    finally:
        stop.set()
        watcher.join()
        worker.close()
        close_database()
    assert ledger_count(site) == 120
    assert len(passes) == 3, "passes of at most 50 mails: 50, 50, 20"


def test_the_cut_over_is_configurable_and_ingest_never_reads_the_date_header(tmp_path, smtp_sink):
    """`mailbot ingest` takes a mail as arriving now, whatever its Date header says (a sender
    writes that); MAILBOT_ACK_CUTOVER moves the cut-over, here past now."""
    old = write_mail("dana@customer.test", VISI, "From the archive", "An old request.")
    old = re.sub(rb"(?m)^Date:.*$", b"Date: Mon, 02 Jun 2025 09:30:00 +0000", old, count=1)
    archive = tmp_path / "old.eml"
    archive.write_bytes(old)
    for name in ("default", "moved"):
        (tmp_path / name).mkdir()

    default = make_site(
        tmp_path / "default", {"VISI": {"address": VISI, "unknown_senders": "open"}}, smtp_url=smtp_sink.url
    )
    assert BEFORE_CUTOVER not in default.mailbot("ingest", "VISI", str(archive)).stdout
    moved = make_site(
        tmp_path / "moved",
        {"VISI": {"address": VISI, "unknown_senders": "open"}},
        smtp_url=smtp_sink.url,
        ack_cutover="2999-01-01",
    )
    assert BEFORE_CUTOVER in moved.mailbot("ingest", "VISI", str(archive)).stdout
    assert (counts(default).outbox, counts(moved).outbox) == ({"ticket_opened": 1}, {})
