"""A reply on an existing ticket, from the customer, a watcher or an engineer, with the commands
at its top: all of them apply together, or none does and the sender is told what was wrong.

Called by `mailbot.inbound` inside the ingest transaction, after routing and the permission
check. Talks to the ticket record, the deadlines and the outbox; never to a mail server.
"""

from __future__ import annotations

from mailbot import accounts, credit, deadlines, notify, tickets
from mailbot.commands import Commands, check_commands, read_commands, time_minutes, valid_commands
from mailbot.desk import Desk
from mailbot.inmail import (
    Mail,
    Outcome,
    customer_recipients,
    last_public_message_id,
    staff_recipients,
    store_inbound,
)
from mailbot.models import Account, Ticket
from mailbot.trim import visible_text

STATUS_MAILS = ("open", "waiting", "resolved", "closed")


def handle_reply(desk: Desk, mail: Mail, ticket: Ticket) -> Outcome:
    sender = mail.sender
    assert sender is not None  # the permission check came first
    staff = accounts.is_staff(sender, mail.product.key)
    parsed = read_commands(visible_text(mail.msg.text))
    errors = check_commands(parsed, staff) + _check_assignee(parsed, mail, sender)
    if errors:
        return command_error(desk, mail, ticket, errors, staff)
    if staff:
        return staff_reply(desk, mail, ticket, parsed)
    return customer_reply(desk, mail, ticket, parsed)


def _check_assignee(parsed: Commands, mail: Mail, sender: Account) -> list[str]:
    command = parsed.get("assign")
    if command is None or command.argument.strip().lower() == "me":
        return []
    target = accounts.find_account(command.argument)
    if target is None or not accounts.is_staff(target, mail.product.key):
        return [f"{command.line}: {command.argument} is not an engineer of {mail.product.key}"]
    return []


def command_error(desk: Desk, mail: Mail, ticket: Ticket, errors: list[str], staff: bool) -> Outcome:
    """Nothing changes; the sender learns what was wrong and what is valid."""
    sender = mail.sender
    assert sender is not None
    role = accounts.role_of(sender, mail.product.key) or "customer"
    notify.queue_mail(desk, "command_error", mail.product, ticket,
                      [notify.recipient_for(sender, role, mail.product.language)],
                      context={"errors": errors, "valid_commands": valid_commands(staff)},
                      parent_id=mail.msg.message_id)
    return Outcome("ignored", "command error: " + "; ".join(errors), ticket)


def staff_reply(desk: Desk, mail: Mail, ticket: Ticket, parsed: Commands) -> Outcome:
    sender, product, now = mail.sender, mail.product, mail.now
    assert sender is not None
    internal = "internal" in parsed
    parent = last_public_message_id(ticket)
    store_inbound(desk, mail, ticket, parsed.text, visibility="internal" if internal else "public",
                  kind="note" if internal else "mail")
    old_priority = ticket.priority
    _apply_fields(desk, mail, ticket, parsed)
    customers = customer_recipients(ticket, product)
    context = {"text": parsed.text, "attachments": [a.filename for a in mail.msg.attachments]}
    if internal:
        others = [r for r in staff_recipients(product) if r.email != sender.email]
        notify.queue_mail(desk, "internal_note", product, ticket, others, context=context, actor=sender)
    elif "info" in parsed:
        tickets.mark_first_response(ticket, now)
        _change_status(desk, mail, ticket, "waiting", mail_customers=False)
        notify.queue_mail(desk, "info_requested", product, ticket, customers, context=context,
                          actor=sender, parent_id=parent)
    elif parsed.text:
        tickets.mark_first_response(ticket, now)
        notify.queue_mail(desk, "reply", product, ticket, customers, context=context, actor=sender,
                          parent_id=parent)
    if "status" in parsed:
        _change_status(desk, mail, ticket, parsed.get("status").argument.strip().lower())  # type: ignore[union-attr]
    elif parsed.text and not internal and ticket.status == "new":
        _change_status(desk, mail, ticket, "open", mail_customers=False)
    if ticket.priority != old_priority:
        notify.queue_mail(desk, "priority_changed", product, ticket, customers,
                          context={"old": old_priority, "new": ticket.priority}, actor=sender)
    return Outcome("message", "staff reply", ticket)


def _apply_fields(desk: Desk, mail: Mail, ticket: Ticket, parsed: Commands) -> None:
    sender, now = mail.sender, mail.now
    assert sender is not None
    if (command := parsed.get("assign")) is not None:
        arg = command.argument.strip().lower()
        target = sender if arg == "me" else accounts.find_account(arg)
        if target is not None and ticket.assignee_id != target.id:
            old = ticket.assignee.email if ticket.assignee_id else ""
            ticket.assignee = target
            ticket.save()
            tickets.record_event(ticket, "assignee", sender.email, old=old, new=target.email, at=now)
    if (command := parsed.get("category")) is not None:
        tickets.set_field(ticket, "category", command.argument.strip().lower(), sender.email, now)
    if (command := parsed.get("priority")) is not None:
        if tickets.set_field(ticket, "priority", command.argument.strip().lower(), sender.email, now):
            deadlines.refresh_deadlines(ticket, mail.product, now)
    if (command := parsed.get("time")) is not None:
        credit.charge_time(desk, ticket, sender, time_minutes(command.argument), now)


def _change_status(desk: Desk, mail: Mail, ticket: Ticket, status: str, mail_customers: bool = True) -> None:
    old = ticket.status
    actor = mail.sender
    assert actor is not None
    if not tickets.set_status(ticket, status, actor.email, mail.now):
        return
    deadlines.refresh_deadlines(ticket, mail.product, mail.now)
    if mail_customers and status in STATUS_MAILS:
        notify.queue_mail(desk, "status_changed", mail.product, ticket, customer_recipients(ticket, mail.product),
                          context={"old": old, "new": status}, actor=actor)


def customer_reply(desk: Desk, mail: Mail, ticket: Ticket, parsed: Commands) -> Outcome:
    sender, product = mail.sender, mail.product
    assert sender is not None
    store_inbound(desk, mail, ticket, parsed.text)
    staff = staff_recipients(product, ticket)
    if (command := parsed.get("priority")) is not None:
        old = ticket.priority
        if tickets.set_field(ticket, "priority", command.argument.strip().lower(), sender.email, mail.now):
            deadlines.refresh_deadlines(ticket, product, mail.now)
            notify.queue_mail(desk, "priority_changed", product, ticket, staff,
                              context={"old": old, "new": ticket.priority}, actor=sender)
    if "close" in parsed:
        old = ticket.status
        tickets.set_status(ticket, "closed", sender.email, mail.now)
        deadlines.refresh_deadlines(ticket, product, mail.now)
        notify.queue_mail(desk, "ticket_closed", product, ticket, customer_recipients(ticket, product),
                          actor=sender, parent_id=mail.msg.message_id)
        notify.queue_mail(desk, "status_changed", product, ticket, staff,
                          context={"old": old, "new": "closed"}, actor=sender)
    elif ticket.status in ("waiting", "resolved"):
        tickets.set_status(ticket, "open", sender.email, mail.now)
        deadlines.refresh_deadlines(ticket, product, mail.now)
    if parsed.text:
        notify.queue_mail(desk, "customer_reply", product, ticket, staff,
                          context={"text": parsed.text, "attachments": [a.filename for a in mail.msg.attachments]},
                          actor=sender, parent_id=mail.msg.message_id)
    return Outcome("message", "", ticket)
