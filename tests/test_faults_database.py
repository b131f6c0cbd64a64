"""The database says no: another writer holds the lock (an admin's `mailbot account add`, the
daemon's other thread) or the disk is full. Whatever was begun is rolled back, the mail stays on
the server unflagged, nothing is sent that could not be recorded, the pass says what went wrong,
and the next pass handles everything exactly once. A lock released within the busy timeout
(MAILBOT_DB_BUSY_TIMEOUT) is simply waited for.

The lock is a real SQLite write lock taken from another connection on the site's database file;
the full disk is SQLite's own "database or disk is full", raised by capping the database's size
(`PRAGMA max_page_count`) on the connection mailbot writes through.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mailbot.config import load_settings
from mailbot.config_files import read_environment
from mailbot.context import make_desk
from mailbot.service.daemon import poll_product
from mailbot.store.db import close_database, open_database
from mailbot.store.models import database
from tests.helpers.mails import write_mail
from tests.helpers.site import Site, make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"


@pytest.fixture
def site(tmp_path, mail_user, smtp_sink) -> Site:
    product = {"address": VISI, "mailbox": mail_user.url(), "unknown_senders": "open"}
    site = make_site(tmp_path, {"VISI": product}, smtp_url=smtp_sink.url, db_busy_timeout="0.5")
    site.add_account(DANA, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    return site


def tickets(site: Site) -> int:
    return site.query("SELECT count(*) FROM ticket")[0][0]


@contextmanager
def write_lock(site: Site) -> Iterator[sqlite3.Connection]:
    """Another connection in the middle of a write transaction, as `mailbot account add` is."""
    db = sqlite3.connect(site.data_dir / "mailbot.db", isolation_level=None, check_same_thread=False)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO account (email, name, organisation, language, notify, credit_minutes, "
            "created_at) VALUES ('new@customer.test', 'New', '', 'en', 'all', 0, '2026-01-01')"
        )
        yield db
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()


def assert_each_outbox_mail_sent_once(site: Site, sink) -> None:
    outbox = [mid for (mid,) in site.query("SELECT message_id FROM outbox WHERE status = 'sent'")]
    assert site.query("SELECT count(*) FROM outbox WHERE status != 'sent'") == [(0,)]
    assert Counter(str(m.message["Message-ID"]).strip("<>") for m in sink.messages) == Counter(outbox)


@pytest.mark.sqlite_only("the SQLite write lock, taken on the database file")
def test_while_the_cli_holds_the_lock_mail_stays_on_the_server_and_the_next_pass_takes_it_once(
    site, dovecot, mail_user, smtp_sink
):
    earlier = site.root / "earlier.eml"  # taken in by the MTA pipe; its mails not sent yet
    earlier.write_bytes(write_mail(DANA, VISI, "Licence server down", "Nothing starts."))
    site.mailbot("ingest", "VISI", str(earlier))
    uid = dovecot.append(mail_user.name, write_mail(DANA, VISI, "Export fails", "At 80 %."))

    with write_lock(site):
        result = site.mailbot("poll", "--once", expect=75)
        assert tickets(site) == 1, "the new mail's ticket was rolled back"
    errors = [line for line in result.stderr.splitlines() if line.startswith("mailbot:")]
    assert len(errors) == 2 and "Traceback" not in result.stderr
    assert "mailbox of VISI" in errors[0] and "database unavailable: database is locked" in errors[0]
    assert "outbox not delivered: database unavailable" in errors[1]
    assert dovecot.flags(mail_user.name, uid) == frozenset(), "left on the server untouched"
    assert smtp_sink.messages == [], "nothing sent that could not be recorded"

    site.poll()
    site.poll()
    assert tickets(site) == 2
    assert site.query("SELECT count(*) FROM seen WHERE mailbox LIKE 'imap:%'") == [(1,)]
    assert dovecot.flags(mail_user.name, uid) == {"\\Seen", "$MailbotDone"}
    smtp_sink.wait_for(4)  # per ticket: Dana's acknowledgement and Erin's new-ticket mail
    assert_each_outbox_mail_sent_once(site, smtp_sink)


@pytest.mark.sqlite_only("the SQLite write lock and its busy timeout")
def test_a_lock_released_within_the_busy_timeout_is_waited_for(site, dovecot, mail_user, smtp_sink):
    site.env["MAILBOT_DB_BUSY_TIMEOUT"] = "10"
    uid = dovecot.append(mail_user.name, write_mail(DANA, VISI, "Export fails", "At 80 %."))
    with write_lock(site) as db:
        threading.Timer(1.0, db.execute, args=("COMMIT",)).start()
        site.poll()
    assert tickets(site) == 1
    assert dovecot.flags(mail_user.name, uid) == {"\\Seen", "$MailbotDone"}
    assert site.query("SELECT count(*) FROM account WHERE email = 'new@customer.test'") == [(1,)]
    smtp_sink.wait_for(2)
    assert_each_outbox_mail_sent_once(site, smtp_sink)


@pytest.mark.sqlite_only("SQLite's own disk full (PRAGMA max_page_count on the file)")
def test_a_full_disk_rolls_back_leaves_the_mail_and_the_pass_after_the_cleanup_takes_it(
    site, dovecot, mail_user, smtp_sink
):
    dovecot.append(mail_user.name, write_mail(DANA, VISI, "Licence server down", "Nothing starts."))
    site.poll()  # a first mail, handled while there is room
    big = "The full log follows.\n" + "2026-03-02 10:00:01 ERROR export aborted at 80 %\n" * 4000
    uid = dovecot.append(mail_user.name, write_mail(DANA, VISI, "Export fails", big))

    settings = load_settings(read_environment(site.env_file))
    open_database(settings.database_url, settings.db_busy_timeout)
    try:
        desk, [product] = make_desk(settings), settings.products
        context = ssl.create_default_context()
        [(pages,)] = database.execute_sql("PRAGMA page_count").fetchall()
        database.execute_sql(f"PRAGMA max_page_count = {pages}")  # the disk is full
        failure = poll_product(desk, product, context)
        assert failure is not None and "database or disk is full" in failure
        assert tickets(site) == 1
        assert dovecot.flags(mail_user.name, uid) == frozenset()
        assert poll_product(desk, product, context) is not None, "still full: still left alone"

        database.execute_sql("PRAGMA max_page_count = 1073741823")  # the admin made room
        assert poll_product(desk, product, context) is None
    finally:
        close_database()
    assert tickets(site) == 2
    assert dovecot.flags(mail_user.name, uid) == {"\\Seen", "$MailbotDone"}
    site.poll()
    assert site.query("SELECT count(*) FROM seen") == [(2,)]
    raw = sorted((site.data_dir / "raw").rglob("*.eml"))
    assert len(raw) == 2, "the raw mail written before each failed commit was written once"
    smtp_sink.wait_for(4)
    assert_each_outbox_mail_sent_once(site, smtp_sink)


@pytest.mark.sqlite_only("SQLite's BEGIN IMMEDIATE against a second connection to the file")
def test_a_transaction_that_reads_first_is_not_undone_by_a_writer_that_came_in_between(site):
    """Ingest reads (the sender, the ticket) before it writes. Begun IMMEDIATE, its transaction
    holds the write lock from the start, so another writer waits for it; begun DEFERRED, the
    other writer would commit first and our first write would fail at once with "database is
    locked", however long the busy timeout."""
    settings = load_settings(read_environment(site.env_file))
    open_database(settings.database_url, settings.db_busy_timeout)
    other = sqlite3.connect(site.data_dir / "mailbot.db", timeout=0.2, isolation_level=None)
    try:
        with database.atomic():
            database.execute_sql("SELECT count(*) FROM account").fetchall()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("UPDATE account SET name = 'Other' WHERE email = ?", (DANA,))
            database.execute_sql("UPDATE account SET name = 'Ours' WHERE email = ?", (DANA,))
    finally:
        other.close()
        close_database()
    assert site.query(f"SELECT name FROM account WHERE email = '{DANA}'") == [("Ours",)]


def test_admin_commands_and_the_running_daemon_share_the_database_without_locked_errors(
    site, dovecot, mail_user, smtp_sink
):
    site.env["MAILBOT_DB_BUSY_TIMEOUT"] = "10"
    site.write_env()
    with dovecot.client(mail_user.name) as imap:
        for n in range(40):
            imap.append("INBOX", write_mail(f"customer{n}@company.test", VISI, f"Case {n}", "Please help."))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    with (site.root / "daemon.log").open("ab") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        for n in range(15):  # an admin adds accounts while the daemon works through the mail
            site.add_account(f"colleague{n}@company.test", "VISI", organisation="Company")
        end = time.monotonic() + 60
        while site.query("SELECT count(*) FROM seen") != [(40,)] or len(smtp_sink.messages) < 80:
            assert time.monotonic() < end and daemon.poll() is None, "the daemon finishes the mail"
            time.sleep(0.1)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(40) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    log_text = (site.root / "daemon.log").read_text()
    assert "locked" not in log_text and "Traceback" not in log_text
    assert site.query("SELECT count(*) FROM account WHERE email LIKE 'colleague%'") == [(15,)]
    assert tickets(site) == 40
    assert_each_outbox_mail_sent_once(site, smtp_sink)
