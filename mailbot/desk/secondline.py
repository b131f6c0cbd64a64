"""The product's second line (BAS-IP's developers): an engineer's `#escalate [text]` sends them
the ticket (template `escalated`), and they answer it by replying, without an account of their
own. Their plain answer reaches the customers like an engineer's reply.

The second line is one address, MAILBOT_PRODUCT_<KEY>_ESCALATION_ADDRESS (the one that also gets
breach escalations), and it may write only to tickets escalated to it: being that product's
escalation address on that ticket is the whole authorisation. Its mail passes the same sender
checks as an engineer's (`mailbot.desk.inmail.staff_mail_verdict`); mail that fails them is
kept as an internal note and nothing reaches the customer. Commands are for engineers: a mail
from the second line with command lines (`#internal` above all) is passed to the team as an
internal note, never to the customer, so a developer's aside cannot leak by a mistyped command.

Called by `mailbot.desk.intake` (an answer) and `mailbot.desk.replies` (`#escalate`) inside the
ingest transaction; touches the ticket and the outbox only.
"""

from __future__ import annotations

import logging

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import accounts, changes, recipients, tickets
from mailbot.desk.commands import CommandError, Commands, error_for, read_commands
from mailbot.desk.inmail import Outcome, RoutedMail, last_public_message_id, staff_mail_verdict, store_inbound
from mailbot.desk.queries import public_history
from mailbot.inbound import authresults
from mailbot.outgoing import notify
from mailbot.store.models import Event, Ticket
from mailbot.vocabulary import Template

log = logging.getLogger(__name__)

ESCALATED = "escalated"
"""The event kind of `#escalate`; its `new` is the address the ticket went to."""


def check_escalation(parsed: Commands, product: ProductSettings) -> list[CommandError]:
    """`#escalate` on a product without a second line: nowhere to send it."""
    command = parsed.get("escalate")
    if command is None or product.escalation_address:
        return []
    return [error_for("no_second_line", command, product=product.key)]


def escalate(desk: Desk, mail: RoutedMail, ticket: Ticket, note: str) -> None:
    """Send the ticket to the second line with the engineer's note and the public history."""
    product, sender = mail.product, mail.sender
    assert sender is not None
    address = product.escalation_address.lower()
    tickets.record_event(ticket, ESCALATED, sender.email, new=address, detail=note, at=mail.now)
    notify.queue_mail(
        desk,
        Template.ESCALATED,
        product,
        ticket,
        [recipients.second_line(product)],
        context={"text": note, "history": public_history(ticket, product.calendar.zone)},
        actor=sender,
    )
    log.info("%s: escalated to %s by %s", ticket.reference, address, sender.email)


def is_second_line(ticket: Ticket, mail: RoutedMail) -> bool:
    """Whether the mail is from the product's escalation address, on a ticket escalated to it.
    An address that is one of the product's engineers writes as an engineer."""
    address = mail.product.escalation_address.lower()
    if not address or mail.msg.sender is None or mail.msg.sender.key != address:
        return False
    if accounts.is_staff(mail.sender, ticket.product):
        return False
    escalated = (Event.ticket == ticket) & (Event.kind == ESCALATED) & (Event.new == address)
    return bool(Event.select().where(escalated).exists())


def handle_answer(desk: Desk, mail: RoutedMail, ticket: Ticket) -> Outcome:
    """The second line's mail on an escalated ticket: plain text goes to the customers as the
    team's answer; anything else stays with the team."""
    verdict = staff_mail_verdict(desk, mail)
    if verdict != authresults.PASS:
        return _unverified(desk, mail, ticket, verdict)
    parsed = read_commands(mail.msg.reply_text)
    if parsed.commands:
        return _to_the_team(desk, mail, ticket, parsed)
    if not parsed.text:
        return Outcome("ignored", "second line: empty answer", ticket)
    return _relay(desk, mail, ticket, parsed.text)


def _relay(desk: Desk, mail: RoutedMail, ticket: Ticket, text: str) -> Outcome:
    product, now = mail.product, mail.now
    parent = last_public_message_id(ticket)
    store_inbound(desk, mail, ticket, text)
    tickets.mark_first_response(ticket, now)
    made: list[dict[str, str]] = []
    address = product.escalation_address.lower()
    if ticket.status == "new" and changes.change_status(
        desk, product, ticket, "open", None, address, now, tell=[]
    ):
        made.append({"field": "status", "old": "new", "new": "open"})
    context = {"text": text, "attachments": [a.filename for a in mail.msg.attachments], "changes": made}
    people = recipients.customers(ticket, product)
    notify.queue_mail(desk, "reply", product, ticket, people, context=context, parent_id=parent)
    return Outcome("message", "second line answer relayed", ticket)


def _to_the_team(desk: Desk, mail: RoutedMail, ticket: Ticket, parsed: Commands) -> Outcome:
    store_inbound(desk, mail, ticket, parsed.text, visibility="internal", kind="note")
    context = {"text": parsed.text, "attachments": [a.filename for a in mail.msg.attachments], "changes": []}
    team = recipients.team(mail.product, ticket)
    notify.queue_mail(desk, "internal_note", mail.product, ticket, team, context=context)
    names = ", ".join(f"#{c.name}" for c in parsed.commands)
    return Outcome("message", f"second line note ({names}): to the team only", ticket)


def _unverified(desk: Desk, mail: RoutedMail, ticket: Ticket, verdict: str) -> Outcome:
    """As for an engineer (`mailbot.desk.replies.unverified_staff_mail`): kept internal, nothing
    applied or relayed, and the second line hears why."""
    kind = "unauthenticated" if verdict == authresults.MISSING else "unverified"
    store_inbound(desk, mail, ticket, mail.msg.reply_text, visibility="internal", kind=kind)
    notify.queue_mail(
        desk,
        "command_not_trusted",
        mail.product,
        ticket,
        [recipients.second_line(mail.product)],
        context={"authentication": verdict},
        parent_id=mail.msg.message_id,
    )
    log.warning(
        "%s: second line mail %s not verified (%s): internal note",
        ticket.reference,
        mail.msg.message_id,
        verdict,
    )
    return Outcome("message", f"second line not verified ({verdict}): internal note, nothing relayed", ticket)
