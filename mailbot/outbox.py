"""Delivering the outbox: each pending row goes to the transport; temporary failures come back
later with a growing delay, permanent ones are recorded on the ticket and never retried, and a
row that stays undeliverable past the give-up age is declared dead.

A row is marked sent only after the server accepted it, so a crash in between sends it again
with the same Message-ID: a reader's client shows it once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from mailbot import tickets
from mailbot.desk import Desk
from mailbot.errors import PermanentError, TransientError
from mailbot.models import Outbox
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
    """Send what is due; returns counts of sent, retry and dead."""
    counts: Counter[str] = Counter()
    for row in due_rows(desk, limit):
        counts[_deliver(desk, transport, row)] += 1
        if should_stop():
            break
    return counts


def _deliver(desk: Desk, transport: Transport, row: Outbox) -> str:
    now = desk.clock()
    row.attempts += 1
    try:
        delivery = transport.send(row.envelope_from, [row.recipient], bytes(row.data))
    except TransientError as exc:
        if now - row.created_at > desk.settings.outbox_give_up:
            return _give_up(row, f"gave up after {row.attempts} attempts: {exc}", now)
        row.next_attempt_at = now + retry_delay(row.attempts)
        row.last_error = str(exc)
        row.save()
        log.warning("mail %s to %s not sent yet (attempt %d): %s", row.message_id, row.recipient,
                    row.attempts, exc)
        return "retry"
    except PermanentError as exc:
        return _give_up(row, str(exc), now)
    if delivery.refused:
        return _give_up(row, "; ".join(delivery.refused.values()), now)
    row.status, row.sent_at, row.last_error = "sent", now, ""
    row.save()
    log.info("mail %s (%s) sent to %s", row.message_id, row.template, row.recipient)
    return "sent"


def _give_up(row: Outbox, error: str, now) -> str:  # type: ignore[no-untyped-def]
    row.status, row.last_error = "dead", error
    row.save()
    log.error("mail %s (%s) to %s could not be delivered: %s", row.message_id, row.template,
              row.recipient, error)
    if row.ticket_id is not None:
        tickets.record_event(row.ticket, "delivery_failed", "", new=row.recipient, detail=error, at=now)
    return "dead"
