"""Customers who ask by mail: `#list` (my open tickets on this product) and `#show REF` (that
ticket's public history), written on the first lines of a mail to a product address.

A question changes no ticket and opens none; the answer (template `query_answer`) goes only to
the sender's own address, never to a Reply-To, so a forged From sends the answer to the real
owner. Nothing of a ticket the sender may not see is told, not even whether it exists: a
reference of another product, of another customer or of nothing gets the same "not found".
Who may see a ticket is `may_see`; there is no organisation-wide view (no product rule grants
one), so a customer sees the tickets they asked or watch, the product's engineers all of its.
A sender gets at most ANSWERS_PER_HOUR answers an hour, whatever they ask: guessing references
is slow, and the silence after the limit is the same for references that exist and that do not.

Called by `mailbot.desk.intake` before routing, inside the ingest transaction; reads tickets and
queues one mail through `mailbot.outgoing.notify`.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import accounts, recipients, tickets
from mailbot.desk.commands import read_commands
from mailbot.desk.inmail import Outcome, RoutedMail
from mailbot.outgoing import notify
from mailbot.outgoing.formats import machine_moment
from mailbot.store import statements
from mailbot.store.models import Account, Message, Outbox, Ticket, Watcher
from mailbot.vocabulary import Role, Template

log = logging.getLogger(__name__)

QUERY_COMMANDS = {"list": "#list", "show": "#show REF"}
"""The questions a mail may ask, with their syntax."""
# Answers per sender and hour: beyond, questions are logged and not answered. The same for
# every question, found or not, so that the silence tells nothing of which references exist.
ANSWERS_PER_HOUR = 10
HOUR = timedelta(hours=1)
_REFERENCE = re.compile(r"^([A-Za-z][A-Za-z0-9]*)-(\d{1,9})$")
# The messages that make up a ticket's public conversation: what the customers wrote and what
# the team answered (an engineer's reply is stored once, as it came in).
_CONVERSATION = ("mail", "folded")


def asked(mail: RoutedMail) -> str:
    """The question the mail asks ("list" or "show"), or "" when it asks none: the first command
    line decides, so a reply that happens to mention #list further down is an ordinary reply."""
    lowered = mail.msg.text.lower()
    if "#list" not in lowered and "#show" not in lowered:  # most mail: no need to trim it
        return ""
    commands = read_commands(mail.msg.reply_text).commands
    if commands and commands[0].name in QUERY_COMMANDS:
        return commands[0].name
    return ""


def answer_query(desk: Desk, mail: RoutedMail, question: str) -> Outcome:
    """Answer `question` to the sender alone; nothing is stored on any ticket."""
    msg, product = mail.msg, mail.product
    assert msg.sender is not None
    if msg.automatic or msg.list_mail:
        return Outcome("ignored", f"#{question} in automatic or list mail: not answered")
    if _answered_lately(msg.sender.key, mail.now) >= ANSWERS_PER_HOUR:
        log.warning(
            "%s: %s asked more than %d times within an hour: not answered",
            product.key,
            msg.sender.key,
            ANSWERS_PER_HOUR,
        )
        return Outcome("ignored", f"#{question}: over {ANSWERS_PER_HOUR} answers an hour, not answered")
    ticket, context = _answer(mail, question)
    notify.queue_mail(
        desk,
        Template.QUERY_ANSWER,
        product,
        ticket,
        [_asker(mail)],
        context=context,
        parent_id=msg.message_id,
    )
    what = f"#{question}" + (f" {context['reference']}" if question == "show" else "")
    log.info("%s: %s asked %s: answered", product.key, msg.sender.key, what)
    found = question == "list" or ticket is not None
    return Outcome("ignored", f"asked {what}: answered" + ("" if found else " (not found)"))


def _answer(mail: RoutedMail, question: str) -> tuple[Ticket | None, dict[str, Any]]:
    """The ticket the answer is about (a `#show` the sender may see) and what it says."""
    zone = mail.product.calendar.zone
    if question == "list":
        return None, {"asked": "list", "tickets": open_tickets(mail.sender, mail.product.key, zone)}
    ticket = _ticket_asked(mail, mail.sender)
    context: dict[str, Any] = {"asked": "show", "found": ticket is not None, "reference": _argument(mail)}
    if ticket is not None:
        context["history"] = public_history(ticket, zone)
    return ticket, context


def _asker(mail: RoutedMail) -> notify.Recipient:
    """The sender's own address (never a Reply-To), in their account's language."""
    msg, sender, product = mail.msg, mail.sender, mail.product
    assert msg.sender is not None
    role = accounts.role_of(sender, product.key)
    return recipients.writer(
        msg.sender, sender, role if role in accounts.STAFF_ROLES else Role.CUSTOMER, product
    )


def _answered_lately(email: str, now: datetime) -> int:
    equal = {Outbox.recipient: email, Outbox.template: Template.QUERY_ANSWER}
    return statements.count_rows(Outbox, equal, (Outbox.created_at, now - HOUR))


def _argument(mail: RoutedMail) -> str:
    command = read_commands(mail.msg.reply_text).get("show")
    return command.argument.strip().split(" ")[0][:40] if command is not None else ""


def _ticket_asked(mail: RoutedMail, sender: Account | None) -> Ticket | None:
    """The ticket `#show` names, when it is of this product and the sender may see it."""
    match = _REFERENCE.match(_argument(mail))
    if match is None or match.group(1).upper() != mail.product.prefix.upper():
        return None
    ticket = statements.ticket_by_number(mail.product.key, int(match.group(2)))
    if ticket is None:
        return None
    if not may_see(ticket, sender):
        # For the team's eyes only: the answer is the same as for a reference that does not exist.
        email = mail.msg.sender.key if mail.msg.sender is not None else ""
        tickets.record_event(ticket, "show_refused", email, at=mail.now)
        return None
    return ticket


def may_see(ticket: Ticket, account: Account | None) -> bool:
    """The product's engineers see all its tickets; a customer with access to the product sees
    the tickets they asked and the ones they watch. A role on another product grants nothing."""
    if account is None:
        return False
    if accounts.is_staff(account, ticket.product):
        return True
    if accounts.role_of(account, ticket.product) is None:
        return False
    return account.id == ticket.requester_id or tickets.is_watcher(ticket, account)


def may_ask(account: Account | None, product: ProductSettings) -> bool:
    """Anyone with a role on the product; on a product open to unknown senders, anyone (who
    then has no tickets to list)."""
    return accounts.role_of(account, product.key) is not None or product.unknown_senders == "open"


def open_tickets(account: Account | None, product: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    """The tickets of `product` the account asked or watches that are not closed, newest
    first, as the template lists them."""
    if account is None or accounts.role_of(account, product) is None:
        return []
    watched = Watcher.select(Watcher.ticket).where(Watcher.account == account)
    mine = (Ticket.requester == account) | Ticket.id.in_(watched)
    query = (
        Ticket.select()
        .where((Ticket.product == product) & (Ticket.status != "closed") & mine)
        .order_by(Ticket.id.desc())
    )
    rows = list(query)
    latest = _latest_messages([t.id for t in rows])
    return [_summary(t, max(t.updated_at, latest.get(t.id, t.updated_at)), zone) for t in rows]


def _latest_messages(ids: list[int]) -> dict[int, datetime]:
    """When each ticket last had a message (a customer's mail does not touch `updated_at`)."""
    latest: dict[int, datetime] = {}
    rows = Message.select(Message.ticket, Message.created_at).where(Message.ticket.in_(ids))
    pairs = cast(list[tuple[int, datetime]], list(rows.tuples()))
    for key, created in pairs:
        if key not in latest or created > latest[key]:
            latest[key] = created
    return latest


def _summary(ticket: Ticket, changed: datetime, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "reference": ticket.reference,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "changed_at": machine_moment(changed, zone),
    }


def public_history(ticket: Ticket, zone: ZoneInfo) -> list[dict[str, Any]]:
    """The ticket's conversation as its customers know it: the mails they and the team wrote,
    oldest first; internal notes, unverified mail and automatic replies are left out."""
    query = (
        Message.select()
        .where(
            (Message.ticket == ticket)
            & (Message.direction == "in")
            & (Message.visibility == "public")
            & Message.kind.in_(_CONVERSATION)
        )
        .order_by(Message.id)
    )
    return [_entry(m, ticket.product, zone) for m in query]


def _entry(message: Message, product: str, zone: ZoneInfo) -> dict[str, Any]:
    """One mail of the history. The team signs with a name only, as in the replies they send;
    the second line (no account) as the team."""
    author = message.author
    team = author is None or accounts.is_staff(author, product)
    name = author.name if author is not None else ""
    return {
        "author": {"name": name, "email": "" if team else message.author_email},
        "from_team": team,
        "at": machine_moment(message.created_at, zone),
        "text": message.text,
    }
