"""Crash anywhere: mailbot is killed with SIGKILL at seeded random moments while it ingests a
hundred and twenty mails and while it sends, and started again until a pass runs to its end.
Then everything is counted, in the database, on the IMAP server and at the SMTP server:

- every mail delivered to the mailbox has exactly one ledger row and is flagged handled;
- every mail is exactly one ticket (a customer's first mail) or one message on the right ticket,
  and every ticket got exactly one acknowledgement queued;
- every outbox row was sent, and the SMTP server saw each outbox Message-ID at least once. A copy
  more is possible only for the one mail in flight when a kill falls between the server's
  "250 OK" and our commit of "sent"; the restarted run sends that mail first, with the same
  Message-ID. So there are at most as many duplicates as kills that landed while mail was going
  out: a mail goes out twice after one such kill, three times only when a second kill hits the
  same resend.

Kill points come from a seeded generator: a delay after the start (landing in start-up, ingest
or sending), "as soon as the k-th mail of this run is in the ledger" (landing between a
batch's commit and its flags, or inside the next batch's transaction), or "as soon as the SMTP
server accepted the k-th mail of this run" (landing while sending, usually before our commit).
Kills aimed at a phase no kill has reached yet come first, and the test insists that some
kills landed in each phase. The seeds are fixed, so a failing seed can be run again with the
same plan (the exact millisecond differs from run to run). Runs are
`mailbot poll --once` (ingest, then send) and `mailbot run` (both at once, in two threads).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.helpers.mails import write_mail
from tests.helpers.site import Site, make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
ENGINEERS = ("erin@produsoft.test", "fred@produsoft.test")
FIRST_MAILS, REPLIES = 75, 45
MAX_KILLS = 12


@dataclass(frozen=True)
class Delivered:
    """One mail put into the mailbox, and the first mail of its ticket (itself for a first mail)."""

    message_id: str
    raw: bytes
    first: str


@dataclass
class Kills:
    total: int = 0
    while_ingesting: int = 0  # kills in a run that had added ledger rows, with mail still left
    while_sending: int = 0  # kills in a run during which the SMTP server received mail
    plans: list[tuple[str, float]] = field(default_factory=list)


def write_mailbox(rng: random.Random) -> list[Delivered]:
    """First mails from 75 customers (one ticket each), and 45 replies to tickets opened
    earlier, half keeping the [VISI-n] tag, half only In-Reply-To, mixed in a random order."""
    mails: list[Delivered] = []
    opened: list[tuple[int, str]] = []
    firsts_left, replies_left = FIRST_MAILS, REPLIES
    while firsts_left or replies_left:
        reply = opened and replies_left and (not firsts_left or rng.random() < 0.45)
        if reply:
            number, first = rng.choice(opened)
            mid = f"reply-{len(mails)}@customer.test"
            customer = f"customer{number}@company{number % 7}.test"
            if rng.random() < 0.5:
                raw = write_mail(
                    customer,
                    VISI,
                    f"Re: [VISI-{number}] Case {number}",
                    f"More about case {number}.",
                    message_id=mid,
                )
            else:
                raw = write_mail(
                    customer,
                    VISI,
                    f"Re: Case {number}",
                    f"More about case {number}.",
                    message_id=mid,
                    in_reply_to=first,
                )
            replies_left -= 1
            mails.append(Delivered(mid, raw, first))
        else:
            number = FIRST_MAILS - firsts_left + 1  # tickets are numbered in the mailbox's order
            mid = f"first-{number}@customer.test"
            customer = f"customer{number}@company{number % 7}.test"
            raw = write_mail(
                f"Customer {number} <{customer}>",
                VISI,
                f"Case {number}",
                f"Case {number}: the export stops halfway.\n" * 5,
                message_id=mid,
            )
            firsts_left -= 1
            opened.append((number, mid))
            mails.append(Delivered(mid, raw, mid))
    return mails


@pytest.fixture
def site(tmp_path, dovecot, mail_user, smtp_sink) -> Site:
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": mail_user.url(), "unknown_senders": "open"}},
        smtp_url=smtp_sink.url,
        io_timeout="10",
    )
    for engineer in ENGINEERS:
        site.add_account(engineer, "VISI", "engineer")
    site.write_env()
    return site


def start(site: Site, command: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    args = ["poll", "--once"] if command == "poll" else ["run"]
    with (site.root / "mailbot.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def ledger_rows(site: Site) -> int:
    return site.query("SELECT count(*) FROM seen")[0][0]


def finished(site: Site, count: int) -> bool:
    """Every mail in the ledger and nothing left to send (what a daemon run is waited for)."""
    [(pending,)] = site.query("SELECT count(*) FROM outbox WHERE status = 'pending'")
    return ledger_rows(site) == count and pending == 0


def wait_for_kill_point(
    site: Site,
    proc: subprocess.Popen,
    sink,
    plan: tuple[str, float],
    before: tuple[int, int],
    done: Callable[[], bool],
) -> None:
    kind, value = plan
    sent_before, ledger_before = before
    end = time.monotonic() + (value if kind == "delay" else 60)
    next_look = time.monotonic() + 0.1
    while proc.poll() is None and time.monotonic() < end:
        if kind == "sent" and len(sink.messages) >= sent_before + value:
            return
        if kind == "ingested" and ledger_rows(site) >= ledger_before + value:
            return
        if time.monotonic() > next_look:  # a daemon never ends by itself: is it done?
            if done():
                return
            next_look = time.monotonic() + 0.1
        time.sleep(0.003)


def run_until_killed(
    site: Site, sink, command: str, plan: tuple[str, float], kills: Kills, count: int
) -> bool:
    """One run of `command`, SIGKILLed at `plan`; True when it ended on its own instead."""
    sent_before, ledger_before = len(sink.messages), ledger_rows(site)
    proc = start(site, command)
    try:
        done = (lambda: finished(site, count)) if command == "run" else (lambda: False)
        wait_for_kill_point(site, proc, sink, plan, (sent_before, ledger_before), done)
        if proc.poll() is not None:
            assert proc.returncode == 0, f"mailbot exited {proc.returncode}: {log_tail(site)}"
            return True
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    kills.total += 1
    kills.plans.append(plan)
    kills.while_sending += len(sink.messages) > sent_before
    kills.while_ingesting += ledger_before < ledger_rows(site) < count
    return False


def log_since(site: Site, offset: int = 0) -> str:
    """What the runs logged since byte `offset`."""
    with (site.root / "mailbot.log").open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def log_tail(site: Site) -> str:
    return log_since(site)[-3000:]


def next_plan(site: Site, rng: random.Random, count: int, kills: Kills) -> tuple[str, float]:
    """A delay (anywhere: start-up, ingest, sending), or a number of mails ingested, or sent,
    in this run, short of what is left so that the kill comes before the run's end. A phase that
    no kill has reached yet comes first: a fast pass can otherwise end on its own under a random
    delay before any kill lands in it, and the test would prove nothing about that phase."""
    left_in = count - ledger_rows(site)
    left_out = site.query("SELECT count(*) FROM outbox WHERE status = 'pending'")[0][0]
    if kills.total == 0 and rng.random() < 0.5:  # most likely still starting up
        return ("delay", round(rng.uniform(0.2, 0.6), 3))
    if left_in > 1 and not kills.while_ingesting:
        return ("ingested", rng.randint(1, min(30, left_in - 1)))
    if not kills.while_sending:  # mail goes out after (poll) or beside (run) the mailbox pass
        return ("sent", rng.randint(1, 20))
    if rng.random() < 0.4:
        return ("delay", round(rng.uniform(0.2, 1.2), 3))
    if left_in > 1 and kills.total < MAX_KILLS // 2:
        return ("ingested", rng.randint(1, min(30, left_in - 1)))
    if left_in > 1:
        return ("sent", rng.randint(1, 60))
    return ("sent", rng.randint(1, max(min(60, left_out - 1), 1)))


def crash_repeatedly(site: Site, sink, command: str, rng: random.Random, count: int) -> Kills:
    kills = Kills()
    while kills.total < MAX_KILLS:
        if run_until_killed(site, sink, command, next_plan(site, rng, count, kills), kills, count):
            return kills  # a `poll --once` ran to its end
        if command == "run" and finished(site, count):
            break
    # Enough kills: one last start that is left alone until it is done.
    log_start = (site.root / "mailbot.log").stat().st_size
    proc = start(site, command)
    try:
        if command == "poll":
            assert proc.wait(120) == 0, log_tail(site)
        else:
            end = time.monotonic() + 120
            # Done, and running: a SIGTERM before the handlers are installed is not a clean stop.
            while not (finished(site, count) and "mailbot running" in log_since(site, log_start)):
                assert time.monotonic() < end and proc.poll() is None, log_tail(site)
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, log_tail(site)[-800:] + f" rc={proc.returncode}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return kills


@pytest.mark.parametrize(("command", "seed"), [("poll", 1), ("poll", 2), ("run", 3)])
def test_killed_at_random_points_nothing_is_lost_and_nothing_sent_twice(
    site, dovecot, mail_user, smtp_sink, command, seed
):
    rng = random.Random(seed)
    mails = write_mailbox(rng)
    with dovecot.client(mail_user.name) as imap:
        for mail in mails:
            imap.append("INBOX", mail.raw)

    kills = crash_repeatedly(site, smtp_sink, command, rng, len(mails))

    print(
        f"{command} seed {seed}: {kills.total} kills, {kills.while_ingesting} while ingesting, "
        f"{kills.while_sending} while sending: {kills.plans}"
    )
    assert kills.while_ingesting >= 1 and kills.while_sending >= 1, (
        f"the kills missed a phase, which proves nothing about it: {kills}"
    )
    # One more pass after all that changes nothing.
    sent = len(smtp_sink.messages)
    site.poll()
    assert len(smtp_sink.messages) == sent

    log = (site.root / "mailbot.log").read_text(errors="replace")
    assert "Traceback" not in log and "locked" not in log, "no error but the kills themselves"
    assert_every_mail_is_one_ticket_or_message(site, mails)
    assert_every_mail_is_flagged_handled(dovecot, mail_user, len(mails))
    assert_every_outbox_mail_went_out_once(site, smtp_sink, kills)


def assert_every_mail_is_one_ticket_or_message(site: Site, mails: list[Delivered]) -> None:
    ledger = site.query("SELECT message_id, outcome, ticket_id FROM seen")
    assert len(ledger) == len(mails), "one ledger row per delivered mail"
    by_id = {mid.strip("<>"): (outcome, ticket) for mid, outcome, ticket in ledger}
    assert set(by_id) == {m.message_id for m in mails}, "no mail without a row, no row twice"
    for mail in mails:
        outcome, ticket = by_id[mail.message_id]
        if mail.first == mail.message_id:
            assert outcome == "ticket", mail.message_id
        else:
            assert (outcome, ticket) == ("message", by_id[mail.first][1]), mail.message_id
    firsts = sum(m.first == m.message_id for m in mails)
    [(tickets,)] = site.query("SELECT count(*) FROM ticket")
    assert tickets == firsts
    inbound = site.query("SELECT message_id FROM message WHERE direction = 'in'")
    assert Counter(mid.strip("<>") for (mid,) in inbound) == Counter(m.message_id for m in mails), (
        "each mail exactly one message"
    )
    acks = site.query(
        "SELECT ticket_id, count(*) FROM outbox WHERE template = 'ticket_opened' GROUP BY ticket_id"
    )
    assert len(acks) == firsts and {n for _, n in acks} == {1}, "one acknowledgement per ticket"


def assert_every_mail_is_flagged_handled(dovecot, mail_user, count: int) -> None:
    with dovecot.client(mail_user.name) as imap:
        imap.select_folder("INBOX", readonly=True)
        flags = imap.get_flags(imap.search("ALL"))
    assert len(flags) == count
    assert all(b"$MailbotDone" in f for f in flags.values())


def assert_every_outbox_mail_went_out_once(site: Site, sink, kills: Kills) -> None:
    outbox = dict(site.query("SELECT message_id, status FROM outbox"))
    assert set(outbox.values()) == {"sent"}
    seen = Counter(str(m.message["Message-ID"]).strip("<>") for m in sink.messages)
    assert set(seen) == set(outbox), "the server got every outbox mail, and nothing else"
    duplicates = sum(n - 1 for n in seen.values())
    assert duplicates <= kills.while_sending, (
        f"{duplicates} duplicate(s) but only {kills.while_sending} kill(s) while sending: {kills.plans}"
    )
