"""A ticket's SLA deadlines and how much of them is used, read from the ticket and its history.

Two clocks run per ticket, both in the product's business time from the moment the ticket was
opened (mail that arrives at night starts them at the next opening):
- first response: `ProductSettings.first_response`, until an engineer first answers;
- resolution: `ProductSettings.sla[priority]`, until the ticket is resolved.

Both stand still while the ticket waits for the customer. The pauses are read from the ticket's
status events: a pause runs from a change into a pausing status to the next change out of it.

`refresh_deadlines` stores the due times on the ticket (for `ticket show`, mails and the
scheduler); `sla_state` says how far each clock has run. The arithmetic itself is
`mailbot.sla.clock`'s; which mail a breach causes is `mailbot.desk.jobs`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.config import ProductSettings
from mailbot.sla import clock
from mailbot.store import statements
from mailbot.store.models import Event, Ticket
from mailbot.vocabulary import Status

# A resolved ticket waits for the customer too (for sign-off, or for word that it is not
# solved): when they reopen it, the days it sat resolved must not count against the desk.
PAUSING_STATUSES = frozenset(status for status in Status if status.pauses_clock)
# After these the resolution clock has stopped.
DONE_STATUSES = frozenset(status for status in Status if status.done)
FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"


@dataclass(frozen=True)
class ClockState:
    """One SLA clock of a ticket at a moment."""

    kind: str  # first_response or resolution
    key: str  # which deadline: the kind, with the priority for resolution
    target: timedelta
    due: datetime
    used: timedelta  # business time run, pauses excluded
    running: bool  # False once answered (first response) or resolved (resolution)

    @property
    def share(self) -> float:
        """The share of the target used: 1.0 at the deadline."""
        return self.used / self.target

    @property
    def breached(self) -> bool:
        """A running clock is breached at its deadline; a stopped one when it ran past it."""
        return self.used >= self.target if self.running else self.used > self.target


@dataclass(frozen=True)
class SlaState:
    first_response: ClockState | None  # None when the product sets no first-response target
    resolution: ClockState | None

    @property
    def clocks(self) -> tuple[ClockState, ...]:
        return tuple(c for c in (self.first_response, self.resolution) if c is not None)


def pauses_of(ticket: Ticket) -> list[clock.Pause]:
    """The periods the ticket's clocks stood still, from its status events (oldest first)."""
    events = (
        Event.select(Event.old, Event.new, Event.at)
        .where((Event.ticket == ticket) & (Event.kind == "status"))
        .order_by(Event.at, Event.id)
    )
    pauses: list[clock.Pause] = []
    since: datetime | None = None
    for event in events:
        if event.new in PAUSING_STATUSES and since is None:
            since = event.at
        elif event.new not in PAUSING_STATUSES and since is not None:
            pauses.append(clock.Pause(since, max(event.at, since)))
            since = None
    if since is not None:
        pauses.append(clock.Pause(since))
    elif ticket.status in PAUSING_STATUSES and ticket.waiting_since is not None:
        # A ticket put on hold without a status event (imported data) still pauses.
        pauses.append(clock.Pause(ticket.waiting_since))
    return pauses


def refresh_deadlines(
    ticket: Ticket, product: ProductSettings, now: datetime, pauses: list[clock.Pause] | None = None
) -> bool:
    """Store the ticket's due times as they stand at `now`; True when they changed.

    The first-response due time is kept once the first response was given. Cheap (one query for
    the status events) and idempotent: call it after opening a ticket and after every change of
    status or priority, inside the same transaction. Saves only the two due-time columns, so it
    never overwrites a change another writer made to the rest of the ticket. Give `pauses` when
    they are already read.
    """
    if pauses is None:
        pauses = pauses_of(ticket)
    cal = product.calendar
    changed = []
    if ticket.first_response_at is None and product.first_response > timedelta(0):
        due = clock.due_time(cal, ticket.created_at, product.first_response, pauses, now)
        if ticket.due_first_response != due:
            ticket.due_first_response = due
            changed.append(Ticket.due_first_response)
    target = product.sla.get(ticket.priority)
    if target is not None:
        due = clock.due_time(cal, ticket.created_at, target, pauses, _stop(ticket) or now)
        if ticket.due_resolution != due:
            ticket.due_resolution = due
            changed.append(Ticket.due_resolution)
    if changed:
        statements.save(ticket, only=changed)
    return bool(changed)


def sla_state(
    ticket: Ticket, product: ProductSettings, now: datetime, pauses: list[clock.Pause] | None = None
) -> SlaState:
    """Both clocks of the ticket at `now` (give `pauses` when they are already read)."""
    if pauses is None:
        pauses = pauses_of(ticket)
    first = None
    if product.first_response > timedelta(0):
        first = _clock(
            ticket,
            product,
            FIRST_RESPONSE,
            FIRST_RESPONSE,
            product.first_response,
            ticket.first_response_at,
            pauses,
            now,
        )
    resolution = None
    target = product.sla.get(ticket.priority)
    if target is not None:
        resolution = _clock(
            ticket, product, RESOLUTION, f"{RESOLUTION}:{ticket.priority}", target, _stop(ticket), pauses, now
        )
    return SlaState(first, resolution)


def _stop(ticket: Ticket) -> datetime | None:
    """When the resolution clock stopped, or None while it runs."""
    if ticket.status not in DONE_STATUSES:
        return None
    stopped: datetime | None = ticket.resolved_at or ticket.closed_at or ticket.updated_at
    return stopped


def _clock(
    ticket: Ticket,
    product: ProductSettings,
    kind: str,
    key: str,
    target: timedelta,
    stopped_at: datetime | None,
    pauses: list[clock.Pause],
    now: datetime,
) -> ClockState:
    end = stopped_at if stopped_at is not None else now
    cal = product.calendar
    # A stopped clock ignores what happened after it stopped (a later wait must not move it).
    pauses = [
        clock.Pause(p.start, p.end if p.end is None or p.end < end else end) for p in pauses if p.start < end
    ]
    return ClockState(
        kind=kind,
        key=key,
        target=target,
        due=clock.due_time(cal, ticket.created_at, target, pauses, end),
        used=clock.elapsed(cal, ticket.created_at, end, pauses),
        running=stopped_at is None,
    )
