"""The limits on automatic mail and on tickets per sender, and the cut-over for old mail.

Recognising machine mail (`mailbot.inbound.automail`) stops most loops. These limits stop the rest: a
robot that writes like a person, a sender that floods a mailbox, a first start on years of old
mail. Each function reads the outbox or the tickets and answers; none changes anything. They run
inside the ingest transaction, called by `mailbot.desk.intake` and `mailbot.outgoing.notify`, with the values
of `Settings.limits` (MAILBOT_ACK_LIMIT, _AUTOMATIC_LIMIT, _FLOOD_LIMIT, _FLOOD_WINDOW,
_ACK_CUTOVER; a limit of 0 is no limit).

Where the defaults come from (reliability research, "Numeric limits in trusted systems"):
- acknowledgements, 3 per sender and product in 24 h: RFC 3834 and OTRS answer a sender once a
  day; a support team wants each of a customer's few requests of a day acknowledged, so a little
  more, while a robot that answers every acknowledgement with a new mail still gets only three;
- automatic mails, 40 per address in 24 h: Znuny's PostmasterMaxEmails. The product's own staff
  are not counted: they must hear of every ticket, and their auto-replies are never answered;
- floods, more than 20 new tickets from one sender to one product within 2 h: Odoo's
  mail.gateway.loop defaults; further mails are folded into the last of those tickets;
- cut-over: no answer to mail that arrived before mailbot started (Zammad #539, reliability D2).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailbot.context import Desk
from mailbot.desk import tickets
from mailbot.store import statements
from mailbot.store.models import Account, Outbox, SchemaVersion, Ticket
from mailbot.vocabulary import Flag, Template

DAY = timedelta(days=1)
ACKNOWLEDGEMENT = Template.TICKET_OPENED
BEFORE_CUTOVER = "arrived before the cut-over"
"""Added to the ledger reason of every mail older than the cut-over."""
BEFORE_CUTOVER_FLAG = Flag.BEFORE_CUTOVER
"""The flag of a ticket opened by such mail: it is not on the SLA clock (no warning mail storm)."""


def may_acknowledge(desk: Desk, product: str, email: str, now: datetime) -> bool:
    """Whether `email` may get another acknowledgement from `product` (MAILBOT_ACK_LIMIT)."""
    limit = desk.settings.limits.ack_limit
    if not limit:
        return True
    equal = {Outbox.recipient: email.lower(), Outbox.product: product, Outbox.template: ACKNOWLEDGEMENT}
    return statements.count_rows(Outbox, equal, (Outbox.created_at, now - DAY)) < limit


def over_automatic_limit(desk: Desk, email: str, now: datetime) -> bool:
    """Whether `email` already got MAILBOT_AUTOMATIC_LIMIT automatic mails in the last 24 h."""
    limit = desk.settings.limits.automatic_limit
    if not limit:
        return False
    equal = {Outbox.recipient: email.lower(), Outbox.automatic: True}
    return statements.count_rows(Outbox, equal, (Outbox.created_at, now - DAY)) >= limit


def flood_ticket(desk: Desk, product: str, requester: Account, now: datetime) -> Ticket | None:
    """The ticket to fold a new mail into when `requester` already opened MAILBOT_FLOOD_LIMIT
    tickets with `product` within MAILBOT_FLOOD_WINDOW (the last of them), else None."""
    limits = desk.settings.limits
    if not limits.flood_limit:
        return None
    since = now - limits.flood_window
    equal = {Ticket.requester: requester, Ticket.product: product}
    if statements.count_rows(Ticket, equal, (Ticket.created_at, since)) < limits.flood_limit:
        return None  # the common case, in one cheap statement; below, the exact count
    # A first start's backlog is history, not a flood: its tickets do not count.
    recent = (
        (Ticket.requester == requester)
        & (Ticket.product == product)
        & (Ticket.created_at > since)
        & ~tickets.flagged(BEFORE_CUTOVER_FLAG)
    )
    if Ticket.select(Ticket.number).where(recent).count() < limits.flood_limit:
        return None
    return Ticket.select().where(recent).order_by(Ticket.number.desc()).first()  # type: ignore[no-any-return]


def cutover(desk: Desk) -> datetime:
    """MAILBOT_ACK_CUTOVER, else the moment the database was created (its first schema
    version), to the whole second: INTERNALDATE and Date headers have no finer resolution."""
    moment = desk.settings.limits.cutover
    if moment is None:
        first = SchemaVersion.select(SchemaVersion.applied_at).order_by(SchemaVersion.version).first()
        moment = first.applied_at if first is not None else datetime.min.replace(tzinfo=UTC)
    return moment.replace(microsecond=0)


def arrived_before_cutover(desk: Desk, arrived: datetime | None) -> bool:
    """Whether a mail that arrived at `arrived` (None: unknown, taken as now) is old mail."""
    if arrived is None:
        return False
    if arrived.tzinfo is None:
        arrived = arrived.replace(tzinfo=UTC)
    return arrived < cutover(desk)
