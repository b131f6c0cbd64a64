"""The promises kept by the clock: SLA warnings and escalations, reminders to customers who keep
a ticket waiting, and closing resolved tickets nobody answered.

Each job asks the database what is due at `now`, not the schedule what it missed: a run after
the daemon was down catches up, and the record of what was done (a `Notice` row, unique per
ticket, kind and deadline) makes each warning, escalation, reminder and automatic close happen
once, also across restarts and when `poll --once` runs beside the daemon. Each ticket is handled
in its own transaction, holding its outbox rows, its history event and its notice; a ticket that
fails is logged and the job goes on with the next.

`register_jobs` adds the jobs to the daemon's APScheduler scheduler; `run_due_jobs` runs them
once (`poll --once`). Who receives which mail is `mailbot.desk.recipients`' business, in which words the
templates'; the SLA arithmetic is `mailbot.sla.deadlines`'.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from peewee import IntegrityError, OperationalError

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import caps, recipients, retention, tickets
from mailbot.outgoing import notify
from mailbot.outgoing.formats import machine_moment
from mailbot.sla.deadlines import ClockState, pauses_of, refresh_deadlines, sla_state
from mailbot.store.db import closing_thread_connection
from mailbot.store.models import Notice, Ticket, database
from mailbot.vocabulary import Status, Template

log = logging.getLogger(__name__)

JOB_INTERVAL_SECONDS = 60
RUNNING_STATUSES = tuple(status for status in Status if status.running)
Job = Callable[[Desk, datetime], int]


class Scheduler(Protocol):
    """What `register_jobs` needs of APScheduler's schedulers (the core never imports it)."""

    def add_job(self, func: Callable[..., Any], trigger: str, **options: Any) -> Any: ...


# --- the jobs --------------------------------------------------------------------------------


def sla_sweep(desk: Desk, now: datetime) -> int:
    """Warn the board when a deadline is mostly used, escalate when it is missed; returns the
    number of warnings and escalations sent. Also keeps the stored due times current."""
    sent = 0
    # Tickets from mail older than the cut-over (a first start's backlog) are not on the clock.
    running = Ticket.status.in_(RUNNING_STATUSES) & ~tickets.flagged(caps.BEFORE_CUTOVER_FLAG)
    for ticket, product in _tickets(desk, running):
        sent += _guarded(_sweep_ticket, desk, ticket, product, now)
    return sent


def remind_waiting(desk: Desk, now: datetime) -> int:
    """Remind the customer once per wait when a ticket has waited `_REMINDER_DAYS` days for
    their answer; returns the number of tickets reminded."""
    sent = 0
    for ticket, product in _tickets(desk, Ticket.status == Status.WAITING):
        if _due(ticket, Status.WAITING, product.reminder_days, now):
            sent += _guarded(_remind, desk, ticket, product, now)
    return sent


def auto_close_resolved(desk: Desk, now: datetime) -> int:
    """Close tickets resolved `_AUTO_CLOSE_DAYS` days ago that the customer did not answer, and
    tell them so; returns the number closed."""
    closed = 0
    for ticket, product in _tickets(desk, Ticket.status == Status.RESOLVED):
        if _due(ticket, Status.RESOLVED, product.auto_close_days, now):
            closed += _guarded(_auto_close, desk, ticket, product, now)
    return closed


JOBS: tuple[tuple[str, Job], ...] = (
    ("sla-sweep", sla_sweep),
    ("remind-waiting", remind_waiting),
    ("auto-close", auto_close_resolved),
    ("raw-retention", retention.purge_raw_mail),
)


def run_job(job: Job, desk: Desk, stop: threading.Event | None = None) -> int:
    """One run of `job` at the desk's clock: the scheduler's entry point. Never raises, so a bad
    run is logged with its name and the next one still comes."""
    if stop is not None and stop.is_set():
        return 0
    try:
        done = job(desk, desk.clock())
    except OperationalError as exc:  # locked past the busy timeout, disk full: not a bug
        log.warning(
            "job %s stopped: database unavailable: %s; it runs again at the next interval", job.__name__, exc
        )
        return 0
    except Exception:
        log.exception("job %s failed; it runs again at the next interval", job.__name__)
        return 0
    if done:
        log.info("job %s: %d ticket(s) handled", job.__name__, done)
    return done


def run_due_jobs(desk: Desk) -> dict[str, int]:
    """Every job once, now (`poll --once`)."""
    return {name: run_job(job, desk) for name, job in JOBS}


def register_jobs(
    scheduler: Scheduler, desk: Desk, stop: threading.Event, interval: float = JOB_INTERVAL_SECONDS
) -> None:
    """Add the jobs to the daemon's scheduler, beside the mailbox and outbox jobs."""
    # The first run is at once (catching up on what fell due while the daemon was down), by the
    # scheduler's own clock: desk.clock is the business clock the jobs read, and may be a test's.
    first = datetime.now(UTC)
    for job_id, job in JOBS:
        scheduler.add_job(
            closing_thread_connection(run_job),
            "interval",
            args=(job, desk, stop),
            id=job_id,
            seconds=interval,
            next_run_time=first,
            max_instances=1,
            coalesce=True,
            # Close to the interval: APScheduler's default of 1 s silently drops late runs.
            misfire_grace_time=max(int(interval), 1),
        )


# --- one ticket each -------------------------------------------------------------------------


def _sweep_ticket(desk: Desk, ticket: Ticket, product: ProductSettings, now: datetime) -> int:
    pauses = pauses_of(ticket)
    refresh_deadlines(ticket, product, now, pauses)
    sent = 0
    for clock in sla_state(ticket, product, now, pauses).clocks:
        if not clock.running:
            continue
        if clock.breached:
            if _claim(ticket, "sla_breach", clock.key, now):
                # Once breached, a warning would be news from the past: mark it as done.
                _claim(ticket, "sla_warning", clock.key, now)
                _send_sla_mail(desk, Template.SLA_BREACH, ticket, product, clock, now)
                sent += 1
        elif clock.share >= product.sla_warning and _claim(ticket, "sla_warning", clock.key, now):
            _send_sla_mail(desk, Template.SLA_WARNING, ticket, product, clock, now)
            sent += 1
    return sent


def _send_sla_mail(
    desk: Desk, template: str, ticket: Ticket, product: ProductSettings, clock: ClockState, now: datetime
) -> None:
    people = recipients.board(ticket, product)
    if template == Template.SLA_BREACH and product.escalation_address:
        people.append(recipients.second_line(product))
    percent = math.floor(clock.share * 100 + 1e-9)  # 0.29 * 100 is 28.999...
    due = _local(clock.due, product)
    sla = {
        "kind": clock.kind,
        "used_percent": percent,
        "due": machine_moment(clock.due, product.calendar.zone),
    }
    if template == Template.SLA_BREACH:
        # How late, in business time: a share of the target ("1100% used") says nothing when the
        # clock caught up after the daemon was down.
        sla["late_minutes"] = max(int((clock.used - clock.target).total_seconds() // 60), 0)
    context = {"sla": sla}
    rows = notify.queue_mail(desk, template, product, ticket, people, context=context)
    tickets.record_event(
        ticket,
        template,
        "",
        new=clock.kind,
        detail=f"{percent}% of the {clock.kind.replace('_', ' ')} time used; due {due}",
        at=now,
    )
    log.info(
        "%s: %s (%s, %d%% used, due %s) mailed to %d recipient(s)",
        ticket.reference,
        template,
        clock.kind,
        percent,
        due,
        len(rows),
    )


def _remind(desk: Desk, ticket: Ticket, product: ProductSettings, now: datetime) -> int:
    since = _since(ticket, Status.WAITING)
    if not _due(ticket, Status.WAITING, product.reminder_days, now) or not _claim(
        ticket, "reminder", since.isoformat(), now
    ):
        return 0
    days = (now - since).days
    notify.queue_mail(
        desk,
        Template.REMINDER,
        product,
        ticket,
        recipients.customers(ticket, product),
        context={"days": days},
    )
    tickets.record_event(ticket, "reminder", "", detail=f"waiting for the customer for {days} days", at=now)
    log.info("%s: customer reminded after %d days of waiting", ticket.reference, days)
    return 1


def _auto_close(desk: Desk, ticket: Ticket, product: ProductSettings, now: datetime) -> int:
    since = _since(ticket, Status.RESOLVED)
    if not _due(ticket, Status.RESOLVED, product.auto_close_days, now) or not _claim(
        ticket, "auto_close", since.isoformat(), now
    ):
        return 0
    days = (now - since).days
    tickets.set_status(ticket, Status.CLOSED, "", now)
    tickets.record_event(
        ticket,
        "auto_close",
        "",
        new=Status.CLOSED,
        detail=f"closed automatically {days} days after it was resolved",
        at=now,
    )
    notify.queue_mail(
        desk,
        Template.AUTO_CLOSED,
        product,
        ticket,
        recipients.customers(ticket, product),
        context={"days": days},
    )
    log.info("%s: closed automatically, resolved %d days ago", ticket.reference, days)
    return 1


# --- helpers ---------------------------------------------------------------------------------


def _tickets(desk: Desk, condition: Any) -> Iterator[tuple[Ticket, ProductSettings]]:
    products = desk.settings.product_by_key
    query = Ticket.select().where(condition & Ticket.product.in_(list(products)))
    # Read all first: a SELECT still being stepped holds its snapshot, and a write transaction
    # begun under it fails at once with "database is locked" once another connection has
    # committed (SQLite does not wait out the busy timeout for a stale snapshot).
    for ticket in list(query.order_by(Ticket.id)):
        yield ticket, products[ticket.product]


def _guarded(
    handle: Callable[[Desk, Ticket, ProductSettings, datetime], int],
    desk: Desk,
    ticket: Ticket,
    product: ProductSettings,
    now: datetime,
) -> int:
    """Run `handle` for one ticket in one transaction, on a fresh copy of the ticket (mail may
    have changed it since the job's query); a failure is logged and rolled back."""
    try:
        with database.atomic():
            fresh = Ticket.get_or_none(Ticket.id == ticket.id)
            if fresh is None or fresh.status != ticket.status:
                return 0
            return handle(desk, fresh, product, now)
    except OperationalError:
        raise  # the database, not this ticket: the run stops instead of waiting once per ticket
    except Exception:
        log.exception("%s: %s failed; tried again at the next run", ticket.reference, handle.__name__)
        return 0


def _claim(ticket: Ticket, kind: str, key: str, now: datetime) -> bool:
    """Record that `kind` was done for this ticket and deadline; False when it already was."""
    if (
        Notice.select()
        .where((Notice.ticket == ticket) & (Notice.kind == kind) & (Notice.key == key))
        .exists()
    ):
        return False
    try:
        with database.atomic():  # a savepoint: a concurrent claim must not undo the ticket's work
            Notice.create(ticket=ticket, kind=kind, key=key, at=now)
    except IntegrityError:
        return False
    return True


def _due(ticket: Ticket, status: str, days: int, now: datetime) -> bool:
    """Whether the ticket has been in `status` for `days` days (never, when days is 0)."""
    return days > 0 and _since(ticket, status) <= now - timedelta(days=days)


def _since(ticket: Ticket, status: str) -> datetime:
    """When the ticket entered its current `status` (waiting or resolved)."""
    moment = ticket.waiting_since if status == Status.WAITING else ticket.resolved_at
    since: datetime = moment or ticket.updated_at
    return since


def _local(moment: datetime, product: ProductSettings) -> str:
    return moment.astimezone(product.calendar.zone).strftime("%Y-%m-%d %H:%M %Z")
