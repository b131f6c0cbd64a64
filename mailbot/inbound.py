"""What an inbound mail means for the tickets of one product: a new ticket, a reply on the
right ticket, an automatic mail to record quietly, a bounce, or a refusal.

Runs inside the ingest transaction and touches only the database and the outbox (through
`mailbot.notify`). It never talks to a mail server and never decides when mail is fetched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot import accounts, notify, tickets
from mailbot.config import ProductSettings
from mailbot.desk import Desk
from mailbot.message import InboundMessage
from mailbot.models import Account, Message, Outbox, Ticket
from mailbot.routing import (
    clean_subject,
    find_reference,
    requested_category,
    requested_priority,
    strip_references,
)
from mailbot.trim import visible_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How a mail ended: `ticket` (opened one), `message` (joined one) or `ignored`."""

    outcome: str
    reason: str = ""
    ticket: Ticket | None = None


@dataclass(frozen=True)
class Mail:
    """An inbound mail with what we know about it, handed between the steps below."""

    msg: InboundMessage
    product: ProductSettings
    sender: Account | None
    raw_path: str
    now: datetime


def handle_mail(desk: Desk, product: ProductSettings, msg: InboundMessage, raw_path: str) -> Outcome:
    if msg.sender is None:
        return Outcome("ignored", "no single valid sender address")
    email = msg.sender.key
    if email in desk.settings.own_addresses or msg.automatic == "own-loop":
        log.warning("mail from our own address or loop marker ignored: %s", msg.message_id)
        return Outcome("ignored", "own-loop")
    mail = Mail(msg, product, accounts.find_account(email), raw_path, desk.clock())
    if msg.bounce:
        return handle_bounce(desk, mail)
    ticket = route(desk, mail)
    if msg.automatic:
        return handle_automatic(desk, mail, ticket)
    if ticket is not None:
        if not may_reply(ticket, mail.sender, product.key):
            return refuse(desk, mail, "not_authorised")
        return handle_reply(desk, mail, ticket)
    return handle_new(desk, mail)


def route(desk: Desk, mail: Mail) -> Ticket | None:
    """The subject's reference first, then the mails this one answers."""
    product = mail.product
    number = find_reference(mail.msg.subject, product.prefix)
    if number is not None:
        ticket = tickets.find_ticket(product.key, number)
        if ticket is not None:
            return ticket
    for mid in mail.msg.thread_ids:
        ticket = _ticket_of_message_id(mid, product, desk.settings.mail_domain)
        if ticket is not None:
            return ticket
    return None


def _ticket_of_message_id(mid: str, product: ProductSettings, domain: str) -> Ticket | None:
    sent = Outbox.get_or_none(Outbox.message_id == mid)
    if sent is not None and sent.ticket_id is not None and sent.product == product.key:
        return sent.ticket
    known = Message.select().join(Ticket).where(
        (Message.message_id == mid) & (Ticket.product == product.key)).first()
    if known is not None:
        return known.ticket
    local, _, host = mid.partition("@")
    if host.lower() == domain and local.lower().startswith("ticket-"):
        return Ticket.get_or_none(Ticket.reference == local[len("ticket-"):].upper())
    return None


def may_reply(ticket: Ticket, sender: Account | None, product: str) -> bool:
    """Requester, watchers who still have access, and the product's engineers."""
    if sender is None:
        return False
    if accounts.is_staff(sender, product):
        return True
    if accounts.role_of(sender, product) is None:
        return False
    return sender.id == ticket.requester_id or tickets.is_watcher(ticket, sender)


def handle_new(desk: Desk, mail: Mail, linked_to: Ticket | None = None) -> Outcome:
    product, msg = mail.product, mail.msg
    sender = admit_sender(mail)
    if sender is None:
        reason = "no_access" if mail.sender is not None else "unknown_sender"
        return refuse(desk, mail, reason)
    flags = contract_flags(sender, product, mail.now)
    if flags is None:
        return refuse(desk, mail, "contract_expired", sender)
    ticket = tickets.open_ticket(
        product.key, product.prefix, sender, clean_subject(msg.subject), mail.now,
        priority=requested_priority(msg.subject, msg.text) or "medium",
        category=requested_category(msg.subject) or "question",
        flags=flags, linked_to=linked_to,
    )
    # The first mail is kept whole: it may carry a forwarded history the team needs.
    store_inbound(desk, mail, ticket, msg.text)
    add_cc_watchers(mail, ticket)
    parent = msg.message_id
    if not msg.list_mail:
        notify.queue_mail(desk, "ticket_opened", product, ticket,
                          [notify.recipient_for(sender, "customer", product.language)], parent_id=parent)
    notify.queue_mail(desk, "new_ticket", product, ticket, staff_recipients(product),
                      context={"text": msg.text, "attachments": [a.filename for a in msg.attachments]},
                      actor=sender, parent_id=parent)
    return Outcome("ticket", "linked" if linked_to else "", ticket)


def admit_sender(mail: Mail) -> Account | None:
    """The account that may open a ticket on this product, creating it where the product is
    open to unknown senders; None when the sender has no access."""
    product, sender = mail.product, mail.sender
    if sender is not None and accounts.role_of(sender, product.key) is not None:
        return sender
    if product.unknown_senders != "open":
        return None
    name = mail.msg.sender.name if mail.msg.sender else ""
    account = accounts.upsert_account(accounts.AccountSpec(mail.msg.sender.email, name=name,
                                                           language=product.language))
    accounts.grant(account, product.key, "customer")
    return account


def contract_flags(sender: Account, product: ProductSettings, now: datetime) -> list[str] | None:
    """Flags for a new ticket, or None when the product's contract policy refuses it."""
    if not product.contract_required or accounts.is_staff(sender, product.key):
        return []
    valid = sender.contract_until is not None and sender.contract_until >= now.date()
    if valid:
        return []
    return None if product.contract_policy == "refuse" else ["contract_expired"]


def handle_reply(desk: Desk, mail: Mail, ticket: Ticket) -> Outcome:
    sender = mail.sender
    assert sender is not None  # may_reply checked it
    if accounts.is_staff(sender, mail.product.key):
        return handle_staff_reply(desk, mail, ticket)
    if ticket.status == "closed":
        return handle_new(desk, mail, linked_to=ticket)
    text = visible_text(mail.msg.text)
    store_inbound(desk, mail, ticket, text)
    if ticket.status in ("waiting", "resolved"):
        tickets.set_status(ticket, "open", sender.email, mail.now)
    notify.queue_mail(desk, "customer_reply", mail.product, ticket, staff_recipients(mail.product, ticket),
                      context={"text": text, "attachments": [a.filename for a in mail.msg.attachments]},
                      actor=sender, parent_id=mail.msg.message_id)
    return Outcome("message", "", ticket)


def handle_staff_reply(desk: Desk, mail: Mail, ticket: Ticket) -> Outcome:
    sender = mail.sender
    assert sender is not None
    text = visible_text(mail.msg.text)
    parent = last_public_message_id(ticket)
    store_inbound(desk, mail, ticket, text)
    tickets.mark_first_response(ticket, mail.now)
    if ticket.status in ("new", "waiting"):
        tickets.set_status(ticket, "open", sender.email, mail.now)
    notify.queue_mail(desk, "reply", mail.product, ticket, customer_recipients(ticket, mail.product),
                      context={"text": text, "attachments": [a.filename for a in mail.msg.attachments]},
                      actor=sender, parent_id=parent)
    return Outcome("message", "staff reply", ticket)


def handle_automatic(desk: Desk, mail: Mail, ticket: Ticket | None) -> Outcome:
    """Auto-replies are recorded on their ticket, never answered, never change its state."""
    reason = f"automatic: {mail.msg.automatic}"
    if ticket is None or not may_reply(ticket, mail.sender, mail.product.key):
        return Outcome("ignored", reason)
    store_inbound(desk, mail, ticket, visible_text(mail.msg.text), visibility="internal", kind="auto")
    return Outcome("message", reason, ticket)


def handle_bounce(desk: Desk, mail: Mail) -> Outcome:
    """A bounce goes on the ticket whose mail bounced and stops automatic mail to the address."""
    msg = mail.msg
    original = Outbox.get_or_none(Outbox.message_id == msg.bounced_message_id) if msg.bounced_message_id else None
    failed = list(msg.bounced_recipients) or ([original.recipient] if original and "fail" in msg.automatic else [])
    for address in failed:
        account = accounts.find_account(address)
        if account is not None and account.undeliverable_since is None:
            account.undeliverable_since = mail.now
            account.save()
    if original is None or original.ticket_id is None:
        return Outcome("ignored", "bounce: original mail unknown")
    ticket = original.ticket
    store_inbound(desk, mail, ticket, msg.text, visibility="internal", kind="bounce")
    if failed:
        tickets.record_event(ticket, "delivery_failed", "", new=", ".join(failed), at=mail.now)
        notify.queue_mail(desk, "delivery_failed", mail.product, ticket, staff_recipients(mail.product, ticket),
                          context={"failed_address": ", ".join(failed)})
    return Outcome("message", "bounce", ticket)


def refuse(desk: Desk, mail: Mail, reason: str, account: Account | None = None) -> Outcome:
    """A neutral refusal, at most one per address and day; nothing is attached to any ticket."""
    assert mail.msg.sender is not None
    email = mail.msg.sender.key
    since = mail.now - timedelta(days=1)
    already = Outbox.select().where((Outbox.recipient == email) & (Outbox.template == "refused")
                                    & (Outbox.created_at > since)).exists()
    if not already and not mail.msg.list_mail:
        language = account.language if account else mail.product.language
        recipient = notify.Recipient(mail.msg.sender.email, mail.msg.sender.name, "customer", language, account)
        notify.queue_mail(desk, "refused", mail.product, None, [recipient],
                          context={"reason": reason, "original_subject": strip_references(mail.msg.subject),
                                   "limit": ""},
                          parent_id=mail.msg.message_id)
    log.info("mail %s from %s refused: %s", mail.msg.message_id, email, reason)
    return Outcome("ignored", f"refused: {reason}")


def store_inbound(desk: Desk, mail: Mail, ticket: Ticket, text: str, *, visibility: str = "public",
                  kind: str = "mail") -> Message:
    msg = mail.msg
    new = tickets.NewMessage(
        direction="in", message_id=msg.message_id, author=mail.sender,
        author_email=msg.sender.email if msg.sender else "", subject=msg.subject, text=text,
        html=msg.html, visibility=visibility, kind=kind, raw_path=mail.raw_path,
    )
    return tickets.add_message(ticket, new, desk.store, msg.attachments, at=mail.now)


def add_cc_watchers(mail: Mail, ticket: Ticket) -> None:
    """Addresses in Cc (and To) of the opening mail that have access to the product."""
    for address in mail.msg.cc + mail.msg.to:
        account = accounts.find_account(address.key)
        if account is not None and accounts.role_of(account, mail.product.key) == "customer":
            tickets.add_watcher(ticket, account, mail.msg.sender.key if mail.msg.sender else "", mail.now)


def staff_recipients(product: ProductSettings, ticket: Ticket | None = None) -> list[notify.Recipient]:
    """The assignee when there is one, else the product's engineers and board."""
    if ticket is not None and ticket.assignee_id is not None:
        people = [ticket.assignee]
    else:
        people = accounts.staff_of(product.key)
    return [notify.recipient_for(a, accounts.role_of(a, product.key) or "engineer", product.language)
            for a in people]


def customer_recipients(ticket: Ticket, product: ProductSettings) -> list[notify.Recipient]:
    people = [notify.recipient_for(ticket.requester, "customer", product.language)]
    people += [notify.recipient_for(a, "watcher", product.language) for a in tickets.watchers_of(ticket)
               if accounts.role_of(a, product.key) is not None]
    return people


def last_public_message_id(ticket: Ticket) -> str:
    row = (Message.select().where((Message.ticket == ticket) & (Message.visibility == "public"))
           .order_by(Message.id.desc()).first())
    return row.message_id if row else ""
