"""Delivering the outbox: each pending row goes to the transport; temporary failures come back
later with a growing delay, permanent ones are recorded on the ticket and never retried, and a
row that stays undeliverable past the give-up age is declared dead. A dead row raises an alert
(`mailbot.outgoing.alerts`), unless it was an alert itself.

Each attempt is counted in the database before the mail is handed to the server, so a database
that cannot take writes (locked past the busy timeout, disk full) stops the round before anything
is sent. A row is marked sent only after the server accepted it. When the database cannot take
that mark (it went away in between) the process keeps the mail, still claimed by it, and marks it
at its next round instead of sending it again. Only a process killed between the server's "250"
and that mark sends it again, with the same Message-ID: at most one duplicate per such crash,
which a reader's client shows once (docs/scaling.md). A mail the transport chokes on
unexpectedly is logged and retried like a 4xx, so it never
blocks the mails behind it.

When no SMTP session can be opened at all the round stops after the first row: the server is
down, and trying every row would only wait on it once per mail.

Every row is claimed before it is tried, so that no two processes (two daemons, a cron
`poll --once` beside the daemon) ever send the same row: one conditional UPDATE sets
`claimed_by` and `claimed_until` (and counts the attempt) only while the row is pending, due and
not claimed by anyone else, and the process that changed the row is the one that sends it. On
SQLite that UPDATE runs in an IMMEDIATE transaction; on PostgreSQL the row lock makes a second
claimant see the first one's claim. A claim lapses after `claim_period`, so the rows of a
process that was killed are taken over; a claim by a process of this host that no longer runs
is taken over at once.

Most rows hold a draft (`mailbot.outgoing.drafts`) and are rendered here, right after the claim; the
bytes are kept in the row, and the text on the ticket's message, when the row is marked sent (a
resend after a crash renders the same draft again, with the same Message-ID). A row that cannot
be rendered (a broken template) becomes `failed`, with the file and line in `last_error`, and
raises one alert; it is not tried again until `mailbot outbox retry` puts it back.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from peewee import DatabaseError

from mailbot.context import Desk
from mailbot.desk import tickets
from mailbot.errors import NotRetryable, PermanentError, SmtpUnavailable, TransientError
from mailbot.outgoing import alerts, drafts, enclosures
from mailbot.outgoing.render import Rendered
from mailbot.store import statements
from mailbot.store.models import Message, Outbox, database
from mailbot.transports.base import Transport
from mailbot.vocabulary import OutboxState as Status

log = logging.getLogger(__name__)
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """1 min, 2, 4, ... capped at an hour."""
    delay: timedelta = min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY)
    return delay


def claim_period(desk: Desk) -> timedelta:
    """How long a claim holds: long past any send (an SMTP session waits at most a few I/O
    timeouts), short enough that a killed process's mail is not held up for long."""
    return max(timedelta(minutes=5), timedelta(seconds=desk.settings.io_timeout * 10))


def due_rows(desk: Desk, limit: int) -> list[Outbox]:
    now = desk.clock()
    return list(
        Outbox.select()
        .where((Outbox.status == Status.PENDING) & (Outbox.next_attempt_at <= now) & _unclaimed(now))
        .order_by(Outbox.id)
        .limit(limit)
    )


def drain_outbox(
    desk: Desk, transport: Transport, limit: int = 200, should_stop: Callable[[], bool] = lambda: False
) -> Counter[str]:
    """Send everything that is due, `limit` rows at a time; returns counts of sent, retry,
    dead and failed. Raises SmtpUnavailable when the server cannot be reached (the rows not
    tried stay due), and TransientError when the database cannot record an attempt."""
    counts: Counter[str] = Counter()
    token = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}"
    _record_unrecorded()
    _release_dead_claims()
    while rows := due_rows(desk, limit):
        # Every row leaves "due" when it is tried (sent, dead, failed, or its next try set
        # later) or claimed by another process, so this ends; a row queued meanwhile (an
        # alert) goes out in the same round.
        for row in rows:
            claimed = _claim(desk, row, token)
            if claimed is not None:
                counts[_deliver(desk, transport, claimed)] += 1
            if should_stop():
                return counts
    return counts


def _unclaimed(now: datetime):  # type: ignore[no-untyped-def]
    return Outbox.claimed_until.is_null() | (Outbox.claimed_until < now)


def _claim(desk: Desk, row: Outbox, token: str) -> Outbox | None:
    """Claim the row for this process and count the attempt, in one conditional UPDATE; the
    row as it is now, or None when another process has it (or sent it) already."""
    now = desk.clock()
    until = now + claim_period(desk)
    with _recording(row, "claim it and record the attempt"), database.atomic():
        changed = statements.claim_row(Outbox, row.id, token, until, now)
    if not changed:
        log.debug("mail %s is being sent by another process", row.message_id)
        return None
    # Claimed, so nobody touched the row since it was read (a try would have made it sent, or
    # due later): the row read is the row, one attempt more.
    row.attempts += 1
    row.claimed_by, row.claimed_until = token, until
    return row


def _release_dead_claims() -> None:
    """Take over at once the claims of processes of this host that no longer run (killed,
    crashed): their rows need not wait for the claims to lapse."""
    host = os.uname().nodename
    holders = list(
        Outbox.select(Outbox.claimed_by)
        .distinct()
        .where((Outbox.status == Status.PENDING) & Outbox.claimed_until.is_null(False))
    )
    dead = [row.claimed_by for row in holders if _gone(row.claimed_by, host)]
    if dead:
        with database.atomic():
            Outbox.update(claimed_until=None).where(
                (Outbox.status == Status.PENDING) & Outbox.claimed_by.in_(dead)
            ).execute()
        log.info("outbox: took over the mail claimed by %s (no longer running)", ", ".join(dead))
    # This process's own claims from an earlier round (its rounds never overlap) that it does not
    # know it holds: a claim whose commit reached the server while the reply was lost with the
    # connection. Not the mails it sent and has yet to mark (_UNRECORDED).
    mine = [row.claimed_by for row in holders if row.claimed_by.startswith(f"{host}:{os.getpid()}:")]
    if mine:
        with _UNRECORDED_LOCK:
            keep = list(_UNRECORDED)
        with database.atomic():
            Outbox.update(claimed_until=None).where(
                (Outbox.status == Status.PENDING) & Outbox.claimed_by.in_(mine) & Outbox.id.not_in(keep)
            ).execute()


def _gone(token: str, host: str) -> bool:
    """Whether the claim `host:pid:nonce` is held by a process of this host that has ended."""
    holder, pid, _nonce = (token.rsplit(":", 2) + ["", ""])[:3]
    if holder != host or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        pass
    return False


def _deliver(desk: Desk, transport: Transport, row: Outbox) -> str:
    now = desk.clock()
    rendered = None
    if drafts.is_draft(row):
        try:
            rendered, data = drafts.write_mail(desk.renderer, row, desk.store.root)
        except Exception as exc:  # the per-mail boundary: a broken template, an unusable address
            return _fail(desk, row, str(exc) or type(exc).__name__, now)
    else:
        data = bytes(row.data)
    try:
        delivery = transport.send(row.envelope_from, [row.recipient], data)
    except PermanentError as exc:
        return _give_up(desk, row, str(exc), now)
    except TransientError as exc:
        return _defer(desk, row, exc, now)
    except Exception as exc:  # the per-mail boundary: one odd mail must not block the others
        log.exception("mail %s to %s: unexpected error while sending", row.message_id, row.recipient)
        return _defer(desk, row, exc, now)
    if delivery.refused:
        return _give_up(desk, row, "; ".join(delivery.refused.values()), now)
    with _UNRECORDED_LOCK:  # until the database has it: never sent again by this process
        _UNRECORDED[row.id] = (row, data, rendered, now)
    with _recording(row, "mark it sent (it is kept to be marked later)"):
        _mark_sent(row, data, rendered, now)
    log.info("mail %s (%s) sent to %s", row.message_id, row.template, row.recipient)
    return "sent"


# Mails the server accepted whose "sent" this process could not yet write (the database went
# away in between): their claims are still ours, so nobody sends them again, and they are
# marked sent at the start of the next round instead of being sent twice.
_UNRECORDED: dict[int, tuple[Outbox, bytes, Rendered | None, datetime]] = {}
_UNRECORDED_LOCK = threading.Lock()


def _mark_sent(row: Outbox, data: bytes, rendered: Rendered | None, now: datetime) -> None:
    with database.atomic():
        row.status, row.sent_at, row.last_error, row.claimed_until = Status.SENT, now, "", None
        row.data = enclosures.without_file_bodies(data) if row.attachments not in ("", "[]") else data
        statements.save(
            row, only=[Outbox.status, Outbox.sent_at, Outbox.last_error, Outbox.claimed_until, Outbox.data]
        )
        if rendered is not None:
            _fill_message(row, rendered)
    with _UNRECORDED_LOCK:
        _UNRECORDED.pop(row.id, None)


def _record_unrecorded() -> None:
    with _UNRECORDED_LOCK:
        waiting = list(_UNRECORDED.values())
    for row, data, rendered, sent_at in waiting:
        with _recording(row, "mark it sent (it is kept to be marked later)"):
            _mark_sent(row, data, rendered, sent_at)
        log.info("mail %s (%s) sent to %s, recorded now", row.message_id, row.template, row.recipient)


def _fill_message(row: Outbox, rendered: Rendered) -> None:
    """The outgoing message kept on the ticket (customer mail only) gets the text as sent."""
    message = statements.outgoing_message(row.message_id)
    if message is not None:
        message.subject, message.text = rendered.subject, rendered.text
        statements.save(message, only=[Message.subject, Message.text])


def _fail(desk: Desk, row: Outbox, error: str, now: datetime) -> str:
    """Failed: recorded on the row and its ticket, and one alert, in one transaction. The row
    waits for `mailbot outbox retry`: trying it every round would only raise the alert again."""
    with _recording(row, "record it as failed"), database.atomic():
        row.status, row.last_error, row.claimed_until = Status.FAILED, error[:1000], None
        statements.save(row, only=[Outbox.status, Outbox.last_error, Outbox.claimed_until])
        log.error(
            "mail %s (%s) to %s could not be rendered: %s", row.message_id, row.template, row.recipient, error
        )
        about = ""
        if row.ticket is not None:
            about = f" about {row.ticket.reference}"
            tickets.record_event(row.ticket, "mail_failed", "", new=row.recipient, detail=error, at=now)
        alerts.raise_alert(
            desk,
            "template",
            f"mail {row.template} to {row.recipient}{about} could not be rendered",
            f"Outbox row {row.id}, Message-ID <{row.message_id}>: {error}\n\n"
            f"Fix the template, then send it with: mailbot outbox retry {row.id}",
        )
    return "failed"


def _defer(desk: Desk, row: Outbox, exc: Exception, now: datetime) -> str:
    """Try again after `retry_delay`, or give up once the mail is older than the give-up age.
    Re-raises SmtpUnavailable: with no session at all the other rows would only wait too."""
    if now - row.created_at > desk.settings.outbox_give_up:
        return _give_up(desk, row, f"gave up after {row.attempts} attempts: {exc}", now)
    with _recording(row, "record the failed attempt"):
        row.next_attempt_at = now + retry_delay(row.attempts)
        row.last_error = str(exc)[:1000] or type(exc).__name__
        row.claimed_until = None
        statements.save(row, only=[Outbox.next_attempt_at, Outbox.last_error, Outbox.claimed_until])
    log.warning(
        "mail %s to %s not sent yet (attempt %d, next in %s): %s",
        row.message_id,
        row.recipient,
        row.attempts,
        retry_delay(row.attempts),
        exc,
    )
    if isinstance(exc, SmtpUnavailable):
        raise exc
    return "retry"


def _give_up(desk: Desk, row: Outbox, error: str, now: datetime) -> str:
    """Dead: recorded on the row and its ticket, and an alert, in one transaction."""
    with _recording(row, "record it undeliverable"), database.atomic():
        row.status, row.last_error, row.claimed_until = Status.DEAD, error[:1000], None
        statements.save(row, only=[Outbox.status, Outbox.last_error, Outbox.claimed_until])
        log.error(
            "mail %s (%s) to %s could not be delivered: %s",
            row.message_id,
            row.template,
            row.recipient,
            error,
        )
        if row.ticket is not None:
            tickets.record_event(row.ticket, "delivery_failed", "", new=row.recipient, detail=error, at=now)
        if not alerts.is_alert(row.template):  # an undeliverable alert raises no further alert
            about = f" about {row.ticket.reference}" if row.ticket is not None else ""
            alerts.raise_alert(
                desk,
                "undeliverable",
                f"mail to {row.recipient}{about} could not be delivered",
                f"Message-ID <{row.message_id}> ({row.template}), {row.attempts} attempt(s): {error}",
            )
    return "dead"


@contextmanager
def _recording(row: Outbox, doing: str) -> Iterator[None]:
    """A database that cannot take the write (locked past the busy timeout, disk full) ends
    the round as a TransientError naming the mail."""
    try:
        yield
    except DatabaseError as exc:
        log.error("outbox: cannot %s for mail %s: %s", doing, row.message_id, exc)
        raise TransientError(
            f"database unavailable: cannot {doing} for mail {row.message_id}: {exc}"
        ) from exc


def waiting_rows(failed_only: bool = False) -> list[Outbox]:
    """What has not gone out, oldest first: pending, failed (not rendered) and dead rows; with
    `failed_only`, only the failed and dead ones."""
    statuses = [Status.FAILED, Status.DEAD] if failed_only else [Status.PENDING, Status.FAILED, Status.DEAD]
    return list(Outbox.select().where(Outbox.status.in_(statuses)).order_by(Outbox.id))


def retry_rows(desk: Desk, ids: list[int] | None) -> list[Outbox]:
    """Put rows back in the queue, due now: the rows `ids` (failed or dead), or with None every
    failed row. Their drafts are rendered again when they are sent, so a fixed template is used.
    Raises NotRetryable naming a row that does not exist or is not failed or dead."""
    with database.atomic():
        if ids is None:
            rows = list(Outbox.select().where(Outbox.status == Status.FAILED).order_by(Outbox.id))
        else:
            rows = [_retryable(row_id) for row_id in ids]
        for row in rows:
            row.status, row.next_attempt_at, row.claimed_until = Status.PENDING, desk.clock(), None
            statements.save(row, only=[Outbox.status, Outbox.next_attempt_at, Outbox.claimed_until])
            log.info("mail %s (%s) to %s queued again", row.message_id, row.template, row.recipient)
    return rows


def _retryable(row_id: int) -> Outbox:
    row = Outbox.get_or_none(Outbox.id == row_id)
    if row is None:
        raise NotRetryable(f"no outbox row {row_id}")
    if row.status not in (Status.FAILED, Status.DEAD):
        raise NotRetryable(f"outbox row {row_id} is {row.status}: only failed or dead rows are retried")
    return row
