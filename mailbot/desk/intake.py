"""What an inbound mail means for the tickets of one product: a new ticket, a reply on the
right ticket, an automatic mail to record quietly, a bounce, or a refusal.

Loops and floods are stopped here: our own mail coming back is only recorded; a robot's mail is
never answered and opens no ticket (a machine's notice does, unanswered, for a sender with access);
a bounce goes on the ticket of the mail that bounced and stops automatic mail to the address
(`mailbot.desk.bounces`); a
sender past the flood limit has further new mails folded into their last ticket; mail older than
the cut-over is recorded without sending anything. The limits themselves live in `mailbot.desk.caps`.

Runs inside the ingest transaction and touches only the database and the outbox (through
`mailbot.outgoing.notify`). It never talks to a mail server and never decides when mail is fetched.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import accounts, caps, links, queries, recipients, replies, secondline, tickets
from mailbot.desk.bounces import handle_bounce
from mailbot.desk.inmail import Outcome, RoutedMail, store_inbound, stored_files
from mailbot.desk.subjects import (
    clean_subject,
    find_reference,
    requested_category,
    requested_priority,
    strip_references,
)
from mailbot.inbound.message import ParsedMail
from mailbot.outgoing import alerts, notify
from mailbot.sla import deadlines
from mailbot.store import statements
from mailbot.store.models import Account, Event, Message, Outbox, Ticket
from mailbot.vocabulary import Role, Status, Template

log = logging.getLogger(__name__)


# Machine mail that may carry a request (a system's notice, a forward that Exchange marks
# auto-generated, a no-reply sender): it opens a ticket for a sender with access, unanswered.
# Everything else automatic is a robot's reply (auto-replies, read receipts, list servers) and
# never opens a ticket.
_NOTICES = frozenset({"precedence:bulk", "precedence:list", "x-auto-response-suppress", "noreply-sender"})


def handle_mail(
    desk: Desk, product: ProductSettings, msg: ParsedMail, raw_path: str, arrived: datetime | None = None
) -> Outcome:
    """What `msg` does to the tickets of `product`. `arrived` is when it reached the mailbox as
    the mailbox tells it (IMAP INTERNALDATE, the delivery time in a Maildir name; None: it
    arrives now): mail older than the cut-over sends nothing. Never the sender's Date header:
    a live mail dated 1970 is still a live mail."""
    msg = likeliest_sender(msg)
    if caps.arrived_before_cutover(desk, arrived or desk.clock()):
        outcome = _handle(replace(desk, quiet=True), product, msg, raw_path)
        reason = f"{outcome.reason}; {caps.BEFORE_CUTOVER}" if outcome.reason else caps.BEFORE_CUTOVER
        outcome = replace(outcome, reason=reason)
    else:
        outcome = _handle(desk, product, msg, raw_path)
    note_reading(outcome.ticket, msg, desk.clock())
    return outcome


def likeliest_sender(msg: ParsedMail) -> ParsedMail:
    """Where the mail may be from several mailboxes, the first that has an account wins (else
    the first as read); the reading keeps its note, so it never carries engineer commands."""
    if msg.sender is None or not msg.sender_alternatives:
        return msg
    readings = (msg.sender, *msg.sender_alternatives)
    known = next((a for a in readings if accounts.find_account(a.key) is not None), msg.sender)
    note = msg.sender_note if known is msg.sender else f"{msg.sender_note}; {known.email} has an account"
    return replace(
        msg, sender=known, sender_note=note, sender_alternatives=tuple(a for a in readings if a is not known)
    )


def note_reading(ticket: Ticket | None, msg: ParsedMail, now: datetime) -> None:
    """Put on the ticket how an uncertain sender was read, and what was mended to read the mail."""
    if ticket is None:
        return
    actor = msg.sender.key if msg.sender is not None else ""
    if msg.sender_note:
        tickets.record_event(
            ticket,
            "sender_uncertain",
            actor,
            new=msg.sender.email if msg.sender else "",
            detail=msg.sender_note,
            at=now,
        )
    if msg.repairs:
        tickets.record_event(ticket, "mail_repaired", actor, detail="; ".join(msg.repairs), at=now)


def _handle(desk: Desk, product: ProductSettings, msg: ParsedMail, raw_path: str) -> Outcome:
    email = msg.sender.key if msg.sender is not None else ""
    if _is_our_own(desk, email, msg):
        log.warning("%s: our own mail came back, recorded only: %s", product.key, msg.message_id)
        return Outcome("ignored", "own-loop")
    sender = accounts.find_account(email) if email else None
    mail = RoutedMail(msg, product, sender, raw_path, desk.clock())
    if msg.bounce:  # before the sender check: MAILER-DAEMON often has no valid address
        return handle_bounce(desk, mail)
    if msg.sender is None:  # a person's mail without one was quarantined before (mailbot.service.ingest)
        return Outcome("ignored", "automatic mail without a valid sender address")
    if question := queries.asked(mail):  # before routing: a question opens and joins nothing
        if not queries.may_ask(sender, mail.product):
            return refuse(desk, mail, "no_access" if sender is not None else "unknown_sender")
        return queries.answer_query(desk, mail, question)
    ticket = route(desk, mail)
    if msg.automatic and not (msg.automatic == "precedence:list" and msg.list_mail):
        return handle_automatic(desk, mail, ticket)
    if sender is not None and sender.undeliverable_since is not None and not desk.quiet:
        # A person writes from the address again: it works, automatic mail may go there again.
        log.info("%s writes again; automatic mail to the address resumes", email)
        sender.undeliverable_since = None
        statements.save(sender)
    if ticket is not None:
        if secondline.is_second_line(ticket, mail):
            return secondline.handle_answer(desk, mail, ticket)
        if not may_reply(ticket, mail.sender):
            if replies.note_refused_reply(mail, ticket):
                return Outcome("ignored", "throttled: keeps writing to tickets not theirs")
            return refuse(desk, mail, replies.refusal_reason(mail))
        return handle_reply(desk, mail, ticket)
    return handle_new(desk, mail)


def route(desk: Desk, mail: RoutedMail) -> Ticket | None:
    """The subject's reference first, then the mails this one answers; only tickets of the
    product whose mailbox received the mail. Our Message-IDs (`ticket-VISI-42@...`) travel in
    every mail we send, so anyone who got one can name another product's ticket: from this
    mailbox such a mail threads nowhere and becomes a new mail of this product. A ticket merged
    into another sends its mail on to that one."""
    product = mail.product
    number = find_reference(mail.msg.subject, product.prefix)
    if number is not None:
        ticket = tickets.find_ticket(product.key, number)
        if ticket is not None:
            return links.merged_target(ticket)
    for mid in mail.msg.thread_ids:
        ticket = _ticket_of_message_id(mid, product, desk.settings.mail_domain)
        if ticket is not None:
            return links.merged_target(ticket)
    return None


def _ticket_of_message_id(mid: str, product: ProductSettings, domain: str) -> Ticket | None:
    sent = statements.outbox_by_message_id(mid)
    if sent is not None and sent.ticket_id is not None and sent.product == product.key:
        return sent.ticket
    known = (
        Message.select()
        .join(Ticket)
        .where((Message.message_id == mid) & (Ticket.product == product.key))
        .first()
    )
    if known is not None:
        found: Ticket = known.ticket
        return found
    local, _, host = mid.partition("@")
    if host.lower() == domain and local.lower().startswith("ticket-"):
        reference = local[len("ticket-") :].upper()
        return statements.ticket_by_reference(product.key, reference)
    return None


def may_reply(ticket: Ticket, sender: Account | None) -> bool:
    """Requester, watchers who still have access, and the engineers of the ticket's own
    product (a role on another product grants nothing here)."""
    product = ticket.product
    if sender is None:
        return False
    if accounts.is_staff(sender, product):
        return True
    if accounts.role_of(sender, product) is None:
        return False
    return sender.id == ticket.requester_id or tickets.is_watcher(ticket, sender)


def _is_our_own(desk: Desk, email: str, msg: ParsedMail) -> bool:
    """Mail from a product address, with our loop header, or one we sent (its Message-ID)."""
    if email in desk.settings.own_addresses or msg.automatic == "own-loop":
        return True
    return statements.outbox_by_message_id(msg.message_id) is not None


def handle_new(desk: Desk, mail: RoutedMail, linked_to: Ticket | None = None) -> Outcome:
    product, msg = mail.product, mail.msg
    sender = admit_sender(mail)
    if sender is None:
        reason = "no_access" if mail.sender is not None else "unknown_sender"
        return refuse(desk, mail, reason)
    flags = contract_flags(sender, product, mail.now)
    if flags is None:
        return refuse(desk, mail, "contract_expired", sender)
    if desk.quiet:  # old mail: history, not a live flood, and not on the SLA clock
        flags = [*flags, caps.BEFORE_CUTOVER_FLAG]
    elif (flooded := caps.flood_ticket(desk, product.key, sender, mail.now)) is not None:
        return fold_into(desk, mail, flooded)
    ticket = tickets.open_ticket(
        product.key,
        product.prefix,
        sender,
        clean_subject(msg.subject),
        mail.now,
        priority=requested_priority(msg.subject, msg.text) or "medium",
        category=requested_category(msg.subject) or "question",
        flags=flags,
        linked_to=linked_to,
    )
    deadlines.refresh_deadlines(ticket, product, mail.now, pauses=[])  # new: it never stood still
    # The first mail is kept whole: it may carry a forwarded history the team needs.
    stored = store_inbound(desk, mail, ticket, msg.text)
    add_cc_watchers(mail, ticket)
    # "zie VISI-12": the earlier tickets it names, those the sender may see.
    links.link_mentions(ticket, product.prefix, msg.text, lambda t: may_reply(t, sender), sender, mail.now)
    parent = msg.message_id
    withheld = acknowledgement_withheld(desk, mail, sender)
    if withheld:
        log.info(
            "%s: no acknowledgement of %s to %s: %s", product.key, ticket.reference, sender.email, withheld
        )
    else:
        notify.queue_mail(
            desk,
            Template.TICKET_OPENED,
            product,
            ticket,
            [recipients.as_role(sender, Role.CUSTOMER, product)],
            parent_id=parent,
        )
    notify.queue_mail(
        desk,
        Template.NEW_TICKET,
        product,
        ticket,
        recipients.team(product),
        context={"text": msg.text, "attachments": [a.filename for a in msg.attachments]},
        actor=sender,
        parent_id=parent,
        enclose=stored_files(mail, stored),
    )
    return Outcome("ticket", "linked" if linked_to else "", ticket)


def acknowledgement_withheld(desk: Desk, mail: RoutedMail, sender: Account) -> str:
    """Why the sender of a new ticket gets no acknowledgement, or "" when they get one."""
    if mail.msg.list_mail:
        return "sent through a mailing list"
    if mail.msg.automatic:
        return f"automatic mail ({mail.msg.automatic})"
    if not caps.may_acknowledge(desk, mail.product.key, sender.email, mail.now):
        return f"limit of {desk.settings.limits.ack_limit} acknowledgements a day reached"
    return ""


def fold_into(desk: Desk, mail: RoutedMail, ticket: Ticket) -> Outcome:
    """A new mail from a sender past the flood limit: kept as a message on their last ticket,
    telling nobody. The first fold into a ticket is recorded as an event and raises one alert (a
    log line, and a mail to MAILBOT_ALERT_ADDRESS where set)."""
    store_inbound(desk, mail, ticket, mail.msg.text, kind="folded")
    if not Event.select().where((Event.ticket == ticket) & (Event.kind == "flood")).exists():
        limits = desk.settings.limits
        detail = (
            f"more than {limits.flood_limit} new tickets within {limits.flood_window}: "
            f"further new mails are added to {ticket.reference}"
        )
        tickets.record_event(ticket, "flood", "", new=ticket.requester.email, detail=detail, at=mail.now)
        summary = f"{ticket.requester.email} floods the mailbox of {mail.product.key}"
        alerts.raise_alert(desk, "flood", summary, detail)
    return Outcome("message", f"flood: folded into {ticket.reference}", ticket)


def admit_sender(mail: RoutedMail) -> Account | None:
    """The account that may open a ticket on this product, creating it where the product is
    open to unknown senders; None when the sender has no access."""
    product, sender = mail.product, mail.sender
    if sender is not None and accounts.role_of(sender, product.key) is not None:
        return sender
    if product.unknown_senders != "open":
        return None
    if mail.msg.sender is None:
        return None
    account = accounts.upsert_account(
        accounts.AccountSpec(mail.msg.sender.email, name=mail.msg.sender.name, language=product.language)
    )
    accounts.grant(account, product.key, Role.CUSTOMER)
    return account


def contract_flags(sender: Account, product: ProductSettings, now: datetime) -> list[str] | None:
    """Flags for a new ticket, or None when the product's contract policy refuses it."""
    if not product.contract_required or accounts.is_staff(sender, product.key):
        return []
    valid = sender.contract_until is not None and sender.contract_until >= now.date()
    if valid:
        return []
    return None if product.contract_policy == "refuse" else ["contract_expired"]


def handle_reply(desk: Desk, mail: RoutedMail, ticket: Ticket) -> Outcome:
    """A reply to a closed ticket from its customer opens a new ticket linked to it; any other
    reply goes to the ticket with its commands."""
    if ticket.status == Status.CLOSED and not accounts.is_staff(mail.sender, ticket.product):
        return handle_new(desk, mail, linked_to=ticket)
    return replies.handle_reply(desk, mail, ticket)


def handle_automatic(desk: Desk, mail: RoutedMail, ticket: Ticket | None) -> Outcome:
    """Auto-replies are recorded on their ticket, never answered, never change its state. A
    machine's notice from a sender with access that threads nowhere opens a ticket, unanswered."""
    reason = f"automatic: {mail.msg.automatic}"
    if (
        ticket is None
        and _is_notice(mail.msg.automatic)
        and mail.sender is not None
        and accounts.role_of(mail.sender, mail.product.key) is not None
    ):
        return handle_new(desk, mail)
    if ticket is None or not may_reply(ticket, mail.sender):
        return Outcome("ignored", reason)
    store_inbound(desk, mail, ticket, mail.msg.reply_text, visibility="internal", kind="auto")
    return Outcome("message", reason, ticket)


def _is_notice(reason: str) -> bool:
    kind = reason.partition(":")[2]
    return reason in _NOTICES or (reason.startswith("auto-submitted:") and kind != "auto-replied")


def refuse(desk: Desk, mail: RoutedMail, reason: str, account: Account | None = None) -> Outcome:
    """A neutral refusal, at most one per address and day, never to a list or a machine; nothing
    is attached to any ticket."""
    assert mail.msg.sender is not None
    email = mail.msg.sender.key
    since = mail.now - timedelta(days=1)
    already = (
        Outbox.select()
        .where(
            (Outbox.recipient == email) & (Outbox.template == Template.REFUSED) & (Outbox.created_at > since)
        )
        .exists()
    )
    if not already and not mail.msg.list_mail and not mail.msg.automatic:
        who = mail.msg.sender
        recipient = recipients.writer(who, account, Role.CUSTOMER, mail.product, name=who.name)
        notify.queue_mail(
            desk,
            Template.REFUSED,
            mail.product,
            None,
            [recipient],
            context={"reason": reason, "original_subject": strip_references(mail.msg.subject), "limit": ""},
            parent_id=mail.msg.message_id,
        )
    log.info("mail %s from %s refused: %s", mail.msg.message_id, email, reason)
    return Outcome("ignored", f"refused: {reason}")


def add_cc_watchers(mail: RoutedMail, ticket: Ticket) -> None:
    """Addresses in Cc (and To) of the opening mail that have access to the product."""
    for address in mail.msg.cc + mail.msg.to:
        account = accounts.find_account(address.key)
        if account is not None and accounts.role_of(account, mail.product.key) == Role.CUSTOMER:
            tickets.add_watcher(ticket, account, mail.msg.sender.key if mail.msg.sender else "", mail.now)
