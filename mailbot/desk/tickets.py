"""The ticket record: opening tickets, numbering them per product, storing messages and their
attachments, and recording every change as an event.

These functions change the database inside the caller's transaction and decide nothing about
mail: which mails a change causes is `mailbot.outgoing.notify`'s job, what an inbound mail means is
`mailbot.desk.intake`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from peewee import Expression, fn

from mailbot.inbound.message import Attachment as InboundAttachment
from mailbot.store import statements
from mailbot.store.files import Store
from mailbot.store.models import (
    Account,
    Attachment,
    Event,
    Message,
    ProductCounter,
    Ticket,
    TicketFlag,
    Watcher,
)
from mailbot.vocabulary import Category, Priority, Status, values

STATUSES = values(Status)


@dataclass(frozen=True)
class NewMessage:
    """What a message on a ticket holds, independent of where it came from."""

    direction: str  # in, out
    message_id: str
    author: Account | None
    author_email: str
    subject: str
    text: str
    html: str = ""
    visibility: str = "public"
    kind: str = "mail"
    raw_path: str = ""


def next_number(product: str) -> int:
    """Take the next ticket number of `product` (inside the caller's transaction)."""
    if not statements.prepared(ProductCounter):
        return statements.take_number(product)
    # The caller's transaction is IMMEDIATE: nobody else writes between this read and the save.
    counter = statements.counter_of(product)
    if counter is None:
        counter = statements.add(ProductCounter, product=product, last_number=1)
    else:
        counter.last_number += 1
        statements.save(counter)
    return counter.last_number


def open_ticket(
    product: str,
    prefix: str,
    requester: Account,
    subject: str,
    now: datetime,
    *,
    priority: str = Priority.MEDIUM,
    category: str = Category.QUESTION,
    flags: Iterable[str] = (),
    linked_to: Ticket | None = None,
) -> Ticket:
    number = next_number(product)
    ticket = statements.add(
        Ticket,
        product=product,
        number=number,
        reference=f"{prefix}-{number}",
        subject=subject,
        requester=requester,
        priority=priority,
        category=category,
        linked_to=linked_to,
        created_at=now,
        updated_at=now,
    )
    for flag in dict.fromkeys(flags):  # each once, in the order given
        statements.add(TicketFlag, ticket=ticket, flag=flag)
    detail = f"linked to {linked_to.reference}" if linked_to else ""
    record_event(ticket, "created", requester.email, new=Status.NEW, detail=detail, at=now)
    return ticket


def flags_of(ticket: Ticket) -> list[str]:
    """The ticket's flags as plain strings (each equals its `Flag`), in the order they were set."""
    return [str(flag) for flag in statements.flags_of(ticket)]


def add_flag(ticket: Ticket, flag: str) -> bool:
    """Mark `ticket` with `flag`; False when it already had it."""
    if flag in statements.flags_of(ticket):
        return False
    statements.add(TicketFlag, ticket=ticket, flag=flag)  # the unique key keeps it to one row
    return True


def remove_flag(ticket: Ticket, flag: str) -> bool:
    """Take `flag` off `ticket`; False when it did not have it."""
    removed: int = (
        TicketFlag.delete().where((TicketFlag.ticket == ticket) & (TicketFlag.flag == flag)).execute()
    )
    return removed > 0


def flagged(flag: str) -> Expression:
    """A condition on Ticket: it has `flag` (for `.where`; `~flagged(...)` for those without)."""
    return Ticket.id.in_(TicketFlag.select(TicketFlag.ticket).where(TicketFlag.flag == flag))


def find_ticket(product: str, number: int) -> Ticket | None:
    return statements.ticket_by_number(product, number)


def add_message(
    ticket: Ticket,
    new: NewMessage,
    store: Store,
    attachments: Iterable[InboundAttachment] = (),
    at: datetime | None = None,
) -> Message:
    message = statements.add(
        Message,
        ticket=ticket,
        direction=new.direction,
        message_id=new.message_id,
        author=new.author,
        author_email=new.author_email,
        visibility=new.visibility,
        kind=new.kind,
        subject=new.subject,
        text=new.text,
        html=new.html,
        raw_path=new.raw_path,
        created_at=at or ticket.updated_at,
    )
    message.added_files = []
    for item in attachments:
        digest, path = store.save_attachment(item.payload)
        stored = statements.add(
            Attachment,
            message=message,
            filename=item.filename,
            content_type=item.content_type,
            size=item.size,
            sha256=digest,
            stored_path=str(path.relative_to(store.root)),
            content_id=item.content_id,
            inline=item.inline,
        )
        message.added_files.append(stored)
    return message


def record_event(
    ticket: Ticket, kind: str, actor: str, *, old: str = "", new: str = "", detail: str = "", at: datetime
) -> Event:
    return statements.add(
        Event, ticket=ticket, kind=kind, actor_email=actor, old=old, new=new, detail=detail, at=at
    )


def set_status(ticket: Ticket, status: str, actor: str, now: datetime) -> bool:
    """Move the ticket to `status`, keeping the lifecycle timestamps; False when unchanged."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    old = ticket.status
    if old == status:
        return False
    ticket.status = status
    ticket.updated_at = now
    ticket.waiting_since = now if status == Status.WAITING else None
    if status == Status.RESOLVED:
        ticket.resolved_at = now
    elif status == Status.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    else:
        ticket.resolved_at = ticket.closed_at = None
    statements.save(ticket)
    record_event(ticket, "status", actor, old=old, new=status, at=now)
    return True


def set_field(ticket: Ticket, field: str, value: str, actor: str, now: datetime) -> bool:
    """Change priority or category (or another plain field), recording the event."""
    old = getattr(ticket, field)
    if old == value:
        return False
    setattr(ticket, field, value)
    ticket.updated_at = now
    statements.save(ticket)
    record_event(ticket, field, actor, old=str(old), new=str(value), at=now)
    return True


def mark_first_response(ticket: Ticket, now: datetime) -> None:
    if ticket.first_response_at is None:
        ticket.first_response_at = now
        statements.save(ticket)


def add_watcher(ticket: Ticket, account: Account, actor: str, now: datetime) -> bool:
    if account.id == ticket.requester_id:
        return False
    if statements.watcher_of(ticket, account) is not None:
        return False
    statements.add(Watcher, ticket=ticket, account=account)
    record_event(ticket, "watcher", actor, new=account.email, at=now)
    return True


def watchers_of(ticket: Ticket) -> list[Account]:
    return list(Account.select().join(Watcher).where(Watcher.ticket == ticket).order_by(Account.email))


def is_watcher(ticket: Ticket, account: Account) -> bool:
    return Watcher.select().where((Watcher.ticket == ticket) & (Watcher.account == account)).exists()


def count_by_status(product: str) -> dict[str, int]:
    rows = (
        Ticket.select(Ticket.status, fn.COUNT(Ticket.id).alias("n"))
        .where(Ticket.product == product)
        .group_by(Ticket.status)
    )
    # The count is an alias peewee puts on each row; the stubs know only the model's fields.
    return {row.status: getattr(row, "n") for row in rows}  # noqa: B009
