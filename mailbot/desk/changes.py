"""Changes to a ticket that people are told about: status, priority, assignee and category.

Shared by engineers' and customers' mail commands (`mailbot.desk.replies`) and the admin's
`mailbot ticket set`, so that a change made either way records the same event, recomputes the
same deadlines and sends the same mails. Runs inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import recipients, tickets
from mailbot.outgoing import notify
from mailbot.sla import deadlines
from mailbot.store import statements
from mailbot.store.models import Account, Message, Ticket
from mailbot.vocabulary import Status, Template

# Status changes the customer is mailed about (all of them, as the policies promise).
STATUS_MAILS = (Status.OPEN, Status.WAITING, Status.RESOLVED, Status.CLOSED)


def change_status(
    desk: Desk,
    product: ProductSettings,
    ticket: Ticket,
    status: str,
    actor: Account | None,
    actor_email: str,
    now: datetime,
    *,
    tell: list[notify.Recipient] | None = None,
) -> bool:
    """Set the status; `tell` defaults to the customers (requester and watchers)."""
    old = ticket.status
    if not tickets.set_status(ticket, status, actor_email, now):
        return False
    deadlines.refresh_deadlines(ticket, product, now)
    if status in STATUS_MAILS:
        people = recipients.customers(ticket, product) if tell is None else tell
        notify.queue_mail(
            desk,
            Template.STATUS_CHANGED,
            product,
            ticket,
            people,
            context={"old": old, "new": status},
            actor=actor,
        )
    return True


def change_priority(
    desk: Desk,
    product: ProductSettings,
    ticket: Ticket,
    priority: str,
    actor: Account | None,
    actor_email: str,
    now: datetime,
    *,
    tell: list[notify.Recipient],
) -> bool:
    """Set the priority and recompute the deadlines; `tell` learns the old and new priority."""
    old = ticket.priority
    if not tickets.set_field(ticket, "priority", priority, actor_email, now):
        return False
    deadlines.refresh_deadlines(ticket, product, now)
    notify.queue_mail(
        desk,
        Template.PRIORITY_CHANGED,
        product,
        ticket,
        tell,
        context={"old": old, "new": priority},
        actor=actor,
    )
    return True


def assign(
    desk: Desk,
    product: ProductSettings,
    ticket: Ticket,
    target: Account,
    actor: Account | None,
    actor_email: str,
    now: datetime,
) -> bool:
    """Assign the ticket; an engineer assigned by someone else gets the ticket by mail."""
    if ticket.assignee_id == target.id:
        return False
    old = ticket.assignee.email if ticket.assignee is not None else ""
    ticket.assignee = target
    ticket.updated_at = now
    statements.save(ticket)
    tickets.record_event(ticket, "assignee", actor_email, old=old, new=target.email, at=now)
    if actor is None or actor.id != target.id:
        notify.queue_mail(
            desk,
            Template.NEW_TICKET,
            product,
            ticket,
            recipients.team(product, ticket),
            context={"text": first_text(ticket), "attachments": []},
            actor=actor,
        )
    return True


def first_text(ticket: Ticket) -> str:
    first = ticket.messages.where(Message.direction == "in").order_by(Message.id).first()
    return first.text if first is not None else ""
