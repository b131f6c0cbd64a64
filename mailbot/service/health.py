"""The installation's health: what each pass over a mailbox found (one row per product, written
once per pass, never per mail), the alerts that follow from it, and the figures behind
`mailbot status` and the metrics.

An alert here is a state, not an event: it is raised once when its condition starts (a mailbox
unreachable for longer than MAILBOT_UNREACHABLE_ALERT, silent for longer than its
`_SILENCE_ALERT`, outgoing mail failing again and again) and recovered once when it ends. The
`Alarm` row is the memory of which alerts stand, so that neither the daemon's next pass, nor a
restart, nor a `poll --once` beside it mails the admin again. The mail itself is
`mailbot.outgoing.alerts`' business.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from peewee import DatabaseError, IntegrityError, fn

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import caps, tickets
from mailbot.desk.jobs import RUNNING_STATUSES
from mailbot.errors import TokenRefused
from mailbot.outgoing import alerts
from mailbot.service import leases
from mailbot.store import statements
from mailbot.store.models import Alarm, MailboxHealth, Outbox, Ticket, database
from mailbot.vocabulary import OutboxState as OutboxStatus

log = logging.getLogger(__name__)
FAILING_ATTEMPTS = 3  # a mail that failed this many times in a row "keeps failing"


@dataclass(frozen=True)
class PassResult:
    """What one good pass over a mailbox found."""

    mailbox: str
    new_mails: int  # mails taken that had not been seen before
    remaining: int  # mails left on the server for the next pass
    seconds: float  # how long the pass took


def record_pass(desk: Desk, product: ProductSettings, result: PassResult) -> None:
    """One write per pass: the mailbox was read, perhaps new mail came."""
    now = desk.clock()
    row = _row(product, result.mailbox)
    row.first_pass_at = row.first_pass_at or now
    row.last_pass_at = now
    if result.new_mails:
        row.last_mail_at = now
    row.pass_seconds, row.backlog, row.failing_since = result.seconds, result.remaining, None
    _save(row)


def record_failure(desk: Desk, product: ProductSettings, mailbox: str, error: str) -> None:
    """The mailbox could not be read: since when, and why (the source's errors never carry the
    password)."""
    now = desk.clock()
    row = _row(product, mailbox)
    row.failing_since = row.failing_since or now
    row.last_error, row.last_error_at = error[:1000], now
    _save(row)


def record_ingested(desk: Desk, product: ProductSettings, new_mails: int) -> None:
    """Mail handed in by `mailbot ingest` (an MTA): it counts against the silence alert too."""
    if new_mails:
        row = _row(product, f"ingest:{product.key}")
        row.first_pass_at = row.first_pass_at or desk.clock()
        row.last_mail_at = desk.clock()
        _save(row)


def _row(product: ProductSettings, mailbox: str) -> MailboxHealth:
    row: MailboxHealth | None = MailboxHealth.get_or_none(MailboxHealth.product == product.key)
    if row is None:
        row = MailboxHealth(product=product.key)
    if not mailbox.startswith("ingest:"):
        row.mailbox = mailbox
    return row


def _save(row: MailboxHealth) -> None:
    """Health is worth a line in the log, never a failed pass: a database that cannot take the
    write now (locked, full) is said here and the pass goes on."""
    try:
        with database.atomic():
            if not statements.save(row):  # a new row: nothing to update
                statements.save(row, force_insert=True)
    except DatabaseError as exc:
        log.warning("%s: health of the mailbox not recorded: %s", row.product, exc)


# --- alerts ----------------------------------------------------------------------------------


def check_alarms(desk: Desk) -> list[str]:
    """Raise what started, recover what ended, at the desk's clock; returns a line per alert
    mailed or logged now. Run by the daemon every minute and by `poll --once`."""
    now = desk.clock()
    rows = {row.product: row for row in MailboxHealth.select()}
    changes: list[str] = []
    for product in desk.settings.products:
        row = rows.get(product.key)
        changes += _check_unreachable(desk, product, row, now)
        changes += _check_silence(desk, product, row, now)
        changes += _check_token(product, row, desk)
    changes += _check_outbox(desk)
    return changes


def _check_unreachable(
    desk: Desk, product: ProductSettings, row: MailboxHealth | None, now: datetime
) -> list[str]:
    limit = desk.settings.unreachable_alert
    if row is None or limit is None:
        return []
    key = f"unreachable:{product.key}"
    if row.failing_since is not None and now - row.failing_since >= limit:
        summary = f"mailbox of {product.key} unreachable for {_span(now - row.failing_since)}"
        return _raise(desk, key, summary, f"{row.mailbox}: {row.last_error}")
    if row.failing_since is None:
        return _recover(desk, key, f"mailbox of {product.key} reachable again ({row.mailbox})")
    return []


def raise_token_alert(desk: Desk, product: ProductSettings, exc: TokenRefused) -> list[str]:
    """At once, not after MAILBOT_UNREACHABLE_ALERT: a refused token never comes back by itself."""
    summary = f"mailbox of {product.key} cannot log in: OAuth2 token refused"
    detail = (
        f"The provider refused a token for {product.key}: {exc.reason}.\n"
        f"Nothing is read from this mailbox until someone signs in again: run\n\n"
        f"    mailbot oauth login {product.key}\n\n"
        "(client_credentials: check the app's secret and its permission on the mailbox, then run it.)"
    )
    return _raise(desk, f"token:{product.key}", summary, detail)


def _check_token(product: ProductSettings, row: MailboxHealth | None, desk: Desk) -> list[str]:
    if row is None or row.failing_since is not None or product.oauth is None:
        return []
    return _recover(desk, f"token:{product.key}", f"mailbox of {product.key} logs in again with OAuth2")


def _check_silence(
    desk: Desk, product: ProductSettings, row: MailboxHealth | None, now: datetime
) -> list[str]:
    limit = product.silence_alert
    if row is None or limit is None or row.first_pass_at is None:
        return []
    key = f"silence:{product.key}"
    quiet_since = row.last_mail_at or row.first_pass_at
    if now - quiet_since > limit:
        summary = f"no mail for {product.key} for {_span(now - quiet_since)}"
        detail = (
            f"Nothing arrived in {row.mailbox} since {quiet_since:%Y-%m-%d %H:%M} UTC (expected within "
            f"MAILBOT_PRODUCT_{product.key}_SILENCE_ALERT, {_span(limit)}). Is mail still delivered "
            "to it, or forwarded elsewhere?"
        )
        return _raise(desk, key, summary, detail)
    if row.last_mail_at is not None:
        return _recover(desk, key, f"mail for {product.key} arrives again")
    return []


def _check_outbox(desk: Desk) -> list[str]:
    failing = (
        Outbox.select()
        .where((Outbox.status == OutboxStatus.PENDING) & (Outbox.attempts >= FAILING_ATTEMPTS))
        .order_by(Outbox.id)
    )
    count = failing.count()
    if count:
        first = failing.first()
        summary = f"{count} outgoing mail(s) failed {FAILING_ATTEMPTS} times or more"
        detail = f"The oldest, to {first.recipient}: {first.last_error}\nSee `mailbot outbox list`."
        return _raise(desk, "outbox", summary, detail)
    return _recover(desk, "outbox", "outgoing mail is delivered again")


def _raise(desk: Desk, key: str, summary: str, detail: str) -> list[str]:
    """Mail the alert unless it stands already (also when another process raised it first)."""
    try:
        with database.atomic():
            Alarm.create(key=key, summary=summary, raised_at=desk.clock())
            alerts.raise_alert(desk, key.replace(":", "-"), summary, detail)
    except IntegrityError:
        return []
    return [summary]


def _recover(desk: Desk, key: str, summary: str) -> list[str]:
    with database.atomic():
        if not Alarm.delete().where(Alarm.key == key).execute():
            return []
        alerts.raise_alert(desk, key.replace(":", "-") + "-recovered", summary, level=logging.INFO)
    return [summary]


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes >= 48 * 60:
        return f"{minutes // 1440} days"
    if minutes >= 120:
        return f"{minutes // 60} hours"
    return f"{minutes} minutes"


# --- status ----------------------------------------------------------------------------------


def collect_status(desk: Desk) -> dict[str, Any]:
    """Everything `mailbot status` shows, as plain values (times as ISO text)."""
    now = desk.clock()
    rows = {row.product: row for row in MailboxHealth.select()}
    mailboxes = [_mailbox_status(product, rows.get(product.key)) for product in desk.settings.products]
    alive, holders = leases.fleet(now)  # several daemons on a server database; none on SQLite
    for box in mailboxes:
        box["held_by"] = holders.get(box["product"])
    passes = [row.last_pass_at for row in rows.values() if row.last_pass_at is not None]
    return {
        "at": _iso(now),
        "last_pass_at": _iso(max(passes)) if passes else None,
        "mailboxes": mailboxes,
        "daemons": alive,
        "outbox": outbox_figures(),
        "open_tickets": open_tickets(desk),
        "sla_breaches": sla_breaches(desk, now),
        "alerts": [
            {"key": alarm.key, "summary": alarm.summary, "since": _iso(alarm.raised_at)}
            for alarm in Alarm.select().order_by(Alarm.raised_at)
        ],
    }


def _mailbox_status(product: ProductSettings, row: MailboxHealth | None) -> dict[str, Any]:
    if row is None:
        return {"product": product.key, "mailbox": "", "reachable": None, "last_pass_at": None,
                "last_mail_at": None, "backlog": None, "failing_since": None, "last_error": "",
                "last_error_at": None, "pass_seconds": None}  # fmt: skip
    return {
        "product": product.key,
        "mailbox": row.mailbox,
        "reachable": row.failing_since is None if row.last_pass_at or row.failing_since else None,
        "last_pass_at": _iso(row.last_pass_at),
        "last_mail_at": _iso(row.last_mail_at),
        "backlog": row.backlog,
        "failing_since": _iso(row.failing_since),
        "last_error": row.last_error,
        "last_error_at": _iso(row.last_error_at),
        "pass_seconds": round(row.pass_seconds, 3),
    }


def outbox_figures() -> dict[str, Any]:
    """Mail waiting to go out, mail that failed (not rendered) or was given up (dead), mail that
    keeps failing, and the oldest waiting one."""
    counts = _grouped(
        Outbox.select(Outbox.status, fn.COUNT(Outbox.id))
        .where(Outbox.status != OutboxStatus.SENT)
        .group_by(Outbox.status)
    )
    oldest = Outbox.select(fn.MIN(Outbox.created_at)).where(Outbox.status == OutboxStatus.PENDING).scalar()
    retrying = Outbox.select().where((Outbox.status == OutboxStatus.PENDING) & (Outbox.attempts > 0)).count()
    return {
        "waiting": counts.get(OutboxStatus.PENDING.value, 0),
        "retrying": retrying,
        "failed": counts.get(OutboxStatus.FAILED.value, 0),
        "dead": counts.get(OutboxStatus.DEAD.value, 0),
        "oldest_waiting": _iso(Outbox.created_at.python_value(oldest)) if oldest else None,
    }


def open_tickets(desk: Desk) -> dict[str, int]:
    counts = _grouped(
        Ticket.select(Ticket.product, fn.COUNT(Ticket.id)).where(running_tickets()).group_by(Ticket.product)
    )
    return {product.key: counts.get(product.key, 0) for product in desk.settings.products}


def running_tickets():  # type: ignore[no-untyped-def]
    """Open tickets on the clock (not those from mail older than the cut-over)."""
    return Ticket.status.in_(RUNNING_STATUSES) & ~tickets.flagged(caps.BEFORE_CUTOVER_FLAG)


def sla_breaches(desk: Desk, now: datetime) -> dict[str, int]:
    """Open tickets past a deadline: the first answer overdue, or the resolution."""
    counts = _grouped(
        Ticket.select(Ticket.product, fn.COUNT(Ticket.id))
        .where(running_tickets() & overdue_tickets(now))
        .group_by(Ticket.product)
    )
    return {product.key: counts.get(product.key, 0) for product in desk.settings.products}


def overdue_tickets(now: datetime):  # type: ignore[no-untyped-def]
    """Tickets past a deadline at `now`: the first answer overdue, or the resolution."""
    return (Ticket.first_response_at.is_null() & (Ticket.due_first_response < now)) | (
        Ticket.due_resolution < now
    )


def _grouped(query: Any) -> dict[str, int]:
    """(key, count) rows of a GROUP BY query as a dict."""
    return {str(key): int(count) for key, count in query.tuples()}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
