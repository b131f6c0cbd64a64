"""What a support mailbox goes through, injected for real on Dovecot, with nothing lost and
nothing answered twice: the server restarted in the middle of a fetch (a one-shot pass, then the
daemon), a server that accepts connections and never answers, the mailbox rebuilt with a new
UIDVALIDITY, mail a person already read in webmail, another client expunging while mailbot
fetches, and a server without MOVE.

Each story counts: ledger rows against mails delivered, tickets, acknowledgements at the SMTP
server, and the flags or folders on the IMAP server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import pytest

from mailbot.config import load_settings
from mailbot.config_files import read_environment
from mailbot.context import make_desk
from mailbot.service.poller import BATCH_SIZE, poll_mailbox
from mailbot.sources.base import FetchedMail
from mailbot.sources.imap import ImapSource
from mailbot.store.db import close_database, open_database
from tests.helpers.mails import write_mail
from tests.helpers.servers import Dovecot, SilentServer, make_workdir, remove_workdir
from tests.helpers.site import Site, make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
WORKNC = "worknc.support@produsoft.test"
ERIN = "erin@produsoft.test"


# -- harness -----------------------------------------------------------------------------------


@pytest.fixture
def own_dovecot() -> Iterator[Callable[..., Dovecot]]:
    """Dovecots of this test alone, to restart or to run with fewer capabilities."""
    started: list[tuple[Dovecot, object]] = []

    def start(**kwargs) -> Dovecot:
        workdir = make_workdir()
        server = Dovecot(workdir, **kwargs)
        started.append((server, workdir))
        server.start()
        return server

    yield start
    for server, workdir in started:
        server.stop()
        remove_workdir(workdir)


def customer_mail(n: int, to: str = VISI, **kwargs) -> bytes:
    return write_mail(
        f"Customer {n} <customer{n}@company.test>",
        to,
        f"Case {n}",
        f"Case {n}: the licence server does not start.",
        message_id=f"case-{n}@company.test",
        **kwargs,
    )


def open_site(tmp_path, mailbox: str, smtp_sink, **settings: str) -> Site:
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": mailbox, "unknown_senders": "open"}},
        smtp_url=smtp_sink.url,
        **settings,
    )
    site.add_account(ERIN, "VISI", "engineer")
    site.write_env()
    return site


def count(site: Site, table: str, where: str = "1 = 1") -> int:
    return site.query(f"SELECT count(*) FROM {table} WHERE {where}")[0][0]


def start_mailbot(site: Site, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    with (site.root / "mailbot.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def flags_of_all(server: Dovecot, user: str, folder: str = "INBOX") -> dict[int, frozenset[bytes]]:
    with server.client(user) as imap:
        imap.select_folder(folder, readonly=True)
        found = imap.get_flags(imap.search("ALL"))
    return {uid: frozenset(f) - {b"\\Recent"} for uid, f in found.items()}  # \Recent: per session


def assert_one_ticket_and_one_ack_each(site: Site, sink, mails: int) -> None:
    """`mails` first mails from as many customers: as many tickets and ledger rows, each
    acknowledged exactly once, and every outbox mail at the SMTP server exactly once."""
    assert count(site, "seen") == mails
    assert count(site, "ticket") == mails
    acks = site.query("SELECT ticket_id FROM outbox WHERE template = 'ticket_opened'")
    assert len(acks) == len(set(acks)) == mails
    outbox = {mid for (mid,) in site.query("SELECT message_id FROM outbox")}
    assert count(site, "outbox", "status != 'sent'") == 0
    at_server = Counter(str(m.message["Message-ID"]).strip("<>") for m in sink.messages)
    assert at_server == Counter(outbox), "every outbox mail exactly once at the SMTP server"


# -- the server goes away ----------------------------------------------------------------------


def test_dovecot_restarted_mid_fetch_the_next_pass_takes_the_rest_exactly_once(
    tmp_path, own_dovecot, smtp_sink
):
    mails = 4 * BATCH_SIZE  # the pass commits a batch at a time: several of them
    server = own_dovecot()
    server.add_user("support", "secret")
    site = open_site(tmp_path, server.imap_url("support"), smtp_sink)
    with server.client("support") as imap:
        for n in range(1, mails + 1):
            imap.append("INBOX", customer_mail(n))

    proc = start_mailbot(site, "poll", "--once")
    try:
        wait_until(lambda: count(site, "seen") >= BATCH_SIZE, 60, "the first batch committed")
        server.restart()  # the pass's connection is cut in the middle of its batches
        assert proc.wait(60) == 75, "the cut mailbox is reported with the temporary-failure code"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (site.root / "mailbot.log").read_text()
    assert "mailbot: mailbox of VISI (imap://support@127.0.0.1" in log and "Traceback" not in log
    handled_before = count(site, "seen")
    assert BATCH_SIZE <= handled_before < mails, "the restart cut the pass short"

    site.poll()
    assert_one_ticket_and_one_ack_each(site, smtp_sink, mails)
    flags = flags_of_all(server, "support")
    assert len(flags) == mails and all(b"$MailbotDone" in f for f in flags.values())


def test_the_daemon_reconnects_after_a_restart_and_finishes_without_help(tmp_path, own_dovecot, smtp_sink):
    server = own_dovecot()
    server.add_user("support", "secret")
    site = open_site(tmp_path, server.imap_url("support"), smtp_sink, poll_interval="300")
    with server.client("support") as imap:
        for n in range(1, 51):
            imap.append("INBOX", customer_mail(n))

    daemon = start_mailbot(site, "run")
    try:
        wait_until(lambda: count(site, "seen") >= 10, 60, "the daemon to be under way")
        server.restart()
        wait_until(
            lambda: (
                count(site, "seen") == 50
                and count(site, "outbox", "status = 'pending'") == 0
                and len(smtp_sink.messages) == count(site, "outbox")
            ),
            60,
            "every mail handled and sent",
        )
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(40) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    log = (site.root / "mailbot.log").read_text()
    assert "retrying with backoff" in log and "Traceback" not in log
    assert_one_ticket_and_one_ack_each(site, smtp_sink, 50)
    flags = flags_of_all(server, "support")
    assert len(flags) == 50 and all(b"$MailbotDone" in f for f in flags.values())


def test_a_server_that_accepts_and_never_answers_times_out_and_the_other_mailbox_still_runs(
    tmp_path, dovecot, mail_user, smtp_sink
):
    with SilentServer() as silent:
        site = make_site(
            tmp_path,
            {
                "VISI": {"address": VISI, "mailbox": f"imap://visi:pw@127.0.0.1:{silent.port}/INBOX"},
                "WORKNC": {"address": WORKNC, "mailbox": mail_user.url(), "unknown_senders": "open"},
            },
            smtp_url=smtp_sink.url,
            io_timeout="1",
        )
        dovecot.append(mail_user.name, customer_mail(1, to=WORKNC))
        started = time.monotonic()
        result = site.mailbot("poll", "--once", expect=75)
        assert time.monotonic() - started < 60, "a silent server must not hold the pass"
    [error] = [line for line in result.stderr.splitlines() if line.startswith("mailbot:")]
    assert "VISI" in error and "no answer within 1 s" in error
    assert [t["reference"] for t in site.tickets()] == ["WORKNC-1"]
    assert len(smtp_sink.wait_for(1)) == 1  # its acknowledgement went out all the same


# -- the mailbox changes under mailbot ----------------------------------------------------------


def test_a_rebuilt_mailbox_with_a_new_uidvalidity_makes_no_duplicate_tickets_or_acks(
    tmp_path, dovecot, mail_user, smtp_sink
):
    site = open_site(tmp_path, mail_user.url(folder="Support"), smtp_sink)
    first = [customer_mail(n) for n in (1, 2, 3)]
    for raw in first:
        dovecot.append(mail_user.name, raw, folder="Support")
    site.poll()
    assert count(site, "ticket") == 3
    sent = len(smtp_sink.wait_for(6))  # three acks, three new-ticket mails to Erin
    before = dovecot.uidvalidity(mail_user.name, "Support")

    # The admin restores the mailbox from a backup: same mails, new UIDVALIDITY, one new mail.
    with dovecot.client(mail_user.name) as imap:
        imap.delete_folder("Support")
        imap.create_folder("Support")
    for raw in [*first, customer_mail(4)]:
        dovecot.append(mail_user.name, raw, folder="Support")
    assert dovecot.uidvalidity(mail_user.name, "Support") != before
    site.poll()

    assert count(site, "ticket") == 4
    assert count(site, "seen") == 7, "one ledger row per delivery: 3 + 3 recognised again + 1"
    assert count(site, "seen", "outcome = 'ignored' AND reason LIKE 'duplicate of%'") == 3
    assert len(smtp_sink.wait_for(sent + 2)) == sent + 2, "only the new ticket's two mails"
    acks = [m for m in smtp_sink.messages if m.rcpt_tos[0].startswith("customer")]
    assert sorted(m.rcpt_tos[0] for m in acks) == [f"customer{n}@company.test" for n in (1, 2, 3, 4)]
    flags = flags_of_all(dovecot, mail_user.name, "Support")
    assert len(flags) == 4 and all(b"$MailbotDone" in f for f in flags.values())
    site.poll()
    assert count(site, "seen") == 7 and len(smtp_sink.messages) == sent + 2


def test_mail_already_read_in_webmail_is_still_processed(tmp_path, dovecot, mail_user, smtp_sink):
    site = open_site(tmp_path, mail_user.url(), smtp_sink)
    read_before_first_pass = dovecot.append(mail_user.name, customer_mail(1), flags=[b"\\Seen"])
    site.poll()
    read_later = dovecot.append(mail_user.name, customer_mail(2), flags=[b"\\Seen"])
    unread = dovecot.append(mail_user.name, customer_mail(3))
    site.poll()
    assert sorted(t["reference"] for t in site.tickets()) == ["VISI-1", "VISI-2", "VISI-3"]
    for uid in (read_before_first_pass, read_later, unread):
        assert dovecot.flags(mail_user.name, uid) == {"\\Seen", "$MailbotDone"}
    smtp_sink.wait_for(6)
    assert_one_ticket_and_one_ack_each(site, smtp_sink, 3)


class ExpungedMeanwhile:
    """The real ImapSource, except that right after handing over the first mail another client
    deletes and expunges `victims` (some fetched already, some not yet)."""

    def __init__(self, source: ImapSource, expunge: Callable[[], None]):
        self._source, self._expunge, self._done = source, expunge, False
        self.name = source.name

    def __getattr__(self, name: str):  # open, close, pending, acknowledge, wait_for_news
        return getattr(self._source, name)

    def __enter__(self) -> ExpungedMeanwhile:
        self._source.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._source.close()

    def fetch(self, keys: Iterable[str]) -> Iterator[FetchedMail]:
        for mail in self._source.fetch(keys):
            yield mail
            if not self._done:
                self._done = True
                self._expunge()


def test_another_client_expunging_during_the_fetch_makes_mailbot_skip_nothing(
    tmp_path, dovecot, mail_user, smtp_sink
):
    site = open_site(tmp_path, mail_user.url(), smtp_sink)
    with dovecot.client(mail_user.name) as imap:
        for n in range(1, 71):
            imap.append("INBOX", customer_mail(n))
    uids = dovecot.uids(mail_user.name)
    assert len(uids) == 70
    # Batches are 50 mails: two of the first batch are in memory already when they go; the
    # others are expunged before mailbot fetches them.
    fetched_then_gone = uids[10:12]
    never_fetched = uids[55:62] + uids[69:70]

    def expunge() -> None:
        with dovecot.client(mail_user.name) as other:
            other.select_folder("INBOX")
            other.delete_messages(fetched_then_gone + never_fetched)
            other.expunge()

    settings = load_settings(read_environment(site.env_file))
    open_database(settings.database_url)
    try:
        desk = make_desk(settings)
        product = settings.products[0]
        source = ExpungedMeanwhile(ImapSource(product.mailbox, timeout=10), expunge)
        with source:
            report = poll_mailbox(desk, product, source)
    finally:
        close_database()
    assert report.handled == 62

    rows = {int(uid) for (uid,) in site.query("SELECT uid FROM seen")}
    remaining = set(dovecot.uids(mail_user.name))
    assert remaining == set(uids) - set(fetched_then_gone) - set(never_fetched)
    assert remaining <= rows, "every mail still on the server was handled: nothing skipped"
    assert rows == set(uids) - set(never_fetched), "mail handed over was kept, even if gone since"
    assert count(site, "ticket") == len(rows) == 62
    flags = flags_of_all(dovecot, mail_user.name)
    assert all(b"$MailbotDone" in f for f in flags.values())
    site.poll()  # the outbox, and a second look that finds nothing new
    assert count(site, "seen") == 62
    assert_one_ticket_and_one_ack_each(site, smtp_sink, 62)


def test_without_move_handled_mail_is_moved_one_by_one_and_a_persons_deleted_mail_stays(
    tmp_path, own_dovecot, smtp_sink
):
    server = own_dovecot(capabilities="IMAP4rev1 LITERAL+ UIDPLUS UNSELECT IDLE")
    server.add_user("support", "secret")
    site = open_site(tmp_path, server.imap_url("support"), smtp_sink)
    old = server.append("support", customer_mail(1))
    site.poll()  # handled while no processed folder was set: it stays in INBOX, flagged
    # The admin turns on a processed folder; a person in webmail marks the old mail deleted
    # (without expunging), and three new mails come in.
    site.env["MAILBOT_PRODUCT_VISI_PROCESSED_FOLDER"] = "Processed"
    with server.client("support") as person:
        person.select_folder("INBOX")
        person.add_flags([old], [b"\\Deleted"])
    for n in (2, 3, 4):
        server.append("support", customer_mail(n))
    site.poll()
    site.poll()

    assert server.uids("support") == [old], "only mailbot's own mail left INBOX"
    assert server.flags("support", old) == {"\\Seen", "$MailbotDone", "\\Deleted"}
    moved = flags_of_all(server, "support", "Processed")
    assert len(moved) == 3 and all(f == {b"\\Seen", b"$MailbotDone"} for f in moved.values())
    smtp_sink.wait_for(8)
    assert_one_ticket_and_one_ack_each(site, smtp_sink, 4)
