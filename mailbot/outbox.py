"""Delivering the outbox: each pending row goes to the transport; temporary failures come back
later with a growing delay, permanent ones are recorded on the ticket and never retried, and a
row that stays undeliverable past the give-up age is declared dead. A dead row raises an alert
(`mailbot.alerts`), unless it was an alert itself.

Each attempt is counted in the database before the mail is handed to the server, so a database
that cannot take writes (locked past the busy timeout, disk full) stops the round before anything
is sent. A row is marked sent only after the server accepted it, so a crash in between sends it
again with the same Message-ID: at most one duplicate per crash, which a reader's client shows
once. A mail the transport chokes on unexpectedly is logged and retried like a 4xx, so it never
blocks the mails behind it.

When no SMTP session can be opened at all the round stops after the first row: the server is
down, and trying every row would only wait on it once per mail.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from peewee import DatabaseError

from mailbot import alerts, tickets
from mailbot.desk import Desk
from mailbot.errors import PermanentError, SmtpUnavailable, TransientError
from mailbot.models import Outbox, database
from mailbot.transport import Transport

log = logging.getLogger(__name__)
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """1 min, 2, 4, ... capped at an hour."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY)


def due_rows(desk: Desk, limit: int) -> list[Outbox]:
    now = desk.clock()
    return list(Outbox.select().where((Outbox.status == "pending") & (Outbox.next_attempt_at <= now))
                .order_by(Outbox.id).limit(limit))


def drain_outbox(desk: Desk, transport: Transport, limit: int = 200,
                 should_stop: Callable[[], bool] = lambda: False) -> Counter[str]:
    """Send everything that is due, `limit` rows at a time; returns counts of sent, retry and
    dead. Raises SmtpUnavailable when the server cannot be reached (the rows not tried stay
    due), and TransientError when the database cannot record an attempt."""
    counts: Counter[str] = Counter()
    while rows := due_rows(desk, limit):
        # Every row leaves "due" when it is tried (sent, dead, or its next try set later), so
        # this ends; a row queued meanwhile (an alert) goes out in the same round.
        for row in rows:
            counts[_deliver(desk, transport, row)] += 1
            if should_stop():
                return counts
    return counts


def _deliver(desk: Desk, transport: Transport, row: Outbox) -> str:
    now = desk.clock()
    with _recording(row, "record the attempt"):
        row.attempts += 1
        row.save(only=[Outbox.attempts])  # only what changed: not the mail itself, again
    try:
        delivery = transport.send(row.envelope_from, [row.recipient], bytes(row.data))
    except PermanentError as exc:
        return _give_up(desk, row, str(exc), now)
    except TransientError as exc:
        return _defer(desk, row, exc, now)
    except Exception as exc:  # the per-mail boundary: one odd mail must not block the others
        log.exception("mail %s to %s: unexpected error while sending", row.message_id, row.recipient)
        return _defer(desk, row, exc, now)
    if delivery.refused:
        return _give_up(desk, row, "; ".join(delivery.refused.values()), now)
    with _recording(row, "mark it sent (it may go out once more)"):
        row.status, row.sent_at, row.last_error = "sent", now, ""
        row.save(only=[Outbox.status, Outbox.sent_at, Outbox.last_error])
    log.info("mail %s (%s) sent to %s", row.message_id, row.template, row.recipient)
    return "sent"


def _defer(desk: Desk, row: Outbox, exc: Exception, now: datetime) -> str:
    """Try again after `retry_delay`, or give up once the mail is older than the give-up age.
    Re-raises SmtpUnavailable: with no session at all the other rows would only wait too."""
    if now - row.created_at > desk.settings.outbox_give_up:
        return _give_up(desk, row, f"gave up after {row.attempts} attempts: {exc}", now)
    with _recording(row, "record the failed attempt"):
        row.next_attempt_at = now + retry_delay(row.attempts)
        row.last_error = str(exc)[:1000] or type(exc).__name__
        row.save(only=[Outbox.next_attempt_at, Outbox.last_error])
    log.warning("mail %s to %s not sent yet (attempt %d, next in %s): %s", row.message_id,
                row.recipient, row.attempts, retry_delay(row.attempts), exc)
    if isinstance(exc, SmtpUnavailable):
        raise exc
    return "retry"


def _give_up(desk: Desk, row: Outbox, error: str, now: datetime) -> str:
    """Dead: recorded on the row and its ticket, and an alert, in one transaction."""
    with _recording(row, "record it undeliverable"), database.atomic():
        row.status, row.last_error = "dead", error[:1000]
        row.save(only=[Outbox.status, Outbox.last_error])
        log.error("mail %s (%s) to %s could not be delivered: %s", row.message_id, row.template,
                  row.recipient, error)
        if row.ticket_id is not None:
            tickets.record_event(row.ticket, "delivery_failed", "", new=row.recipient, detail=error, at=now)
        if not alerts.is_alert(row.template):  # an undeliverable alert raises no further alert
            about = f" about {row.ticket.reference}" if row.ticket_id is not None else ""
            alerts.raise_alert(
                desk, "undeliverable", f"mail to {row.recipient}{about} could not be delivered",
                f"Message-ID <{row.message_id}> ({row.template}), {row.attempts} attempt(s): {error}")
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
            f"database unavailable: cannot {doing} for mail {row.message_id}: {exc}") from exc
