"""A reply on an existing ticket, from the customer, a watcher or an engineer, with the commands
at its top: all of them apply together, or none does and the sender is told what was wrong.

An engineer's mail acts on the ticket only when it is verified: where the site names its mail
server's authserv-id (MAILBOT_TRUSTED_AUTHSERV_ID), that server's own Authentication-Results must
show the sender passed (`mailbot.inbound.authresults`). Otherwise the mail is kept as an internal note,
nothing is applied or relayed to the customer, and the engineer is told. Customers' mail is
never asked for this: what a customer may do is harmless to the ticket's other readers.

Called by `mailbot.inbound` inside the ingest transaction, after routing and the permission
check. Talks to the ticket record, the deadlines and the outbox; never to a mail server.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from mailbot.context import Desk
from mailbot.desk import accounts, changes, credit, links, prepaid, recipients, tickets
from mailbot.desk.commands import (
    CommandError,
    Commands,
    check_commands,
    describe_error,
    error_for,
    read_commands,
    time_minutes,
    valid_commands,
)
from mailbot.desk.inmail import (
    Outcome,
    RoutedMail,
    carries_files,
    last_public_message_id,
    staff_mail_verdict,
    store_inbound,
    stored_files,
)
from mailbot.desk.secondline import check_escalation, escalate
from mailbot.desk.summary import Made, tell_changes
from mailbot.inbound import authresults
from mailbot.outgoing import notify
from mailbot.store.models import Event, Grant, Message, Ticket
from mailbot.vocabulary import Role, Status, Template

# A sender refused more often than this within the window, for writing to tickets that are not
# theirs, is guessing references: further attempts get no answer at all (reliability S2).
GUESSES_ALLOWED = 5
GUESS_WINDOW = timedelta(hours=1)
log = logging.getLogger(__name__)
UNAUTHENTICATED = "unauthenticated"
"""The kind of an engineer's mail kept without our server's Authentication-Results."""


def handle_reply(desk: Desk, mail: RoutedMail, ticket: Ticket) -> Outcome:
    sender = mail.sender
    assert sender is not None  # the permission check came first
    staff = accounts.is_staff(sender, ticket.product)  # the ticket's own product decides
    verdict = staff_mail_verdict(desk, mail) if staff else authresults.PASS
    if verdict != authresults.PASS:
        return unverified_staff_mail(desk, mail, ticket, verdict)
    parsed = read_commands(mail.msg.reply_text)
    errors = check_commands(parsed, staff)
    if staff:
        errors += check_escalation(parsed, mail.product)
    if staff and not errors:
        errors = _check_assignee(parsed, ticket) + links.check_link_commands(parsed, ticket)
    if errors:
        return command_error(desk, mail, ticket, errors, staff)
    if staff:
        return staff_reply(desk, mail, ticket, parsed)
    return customer_reply(desk, mail, ticket, parsed)


def refusal_reason(mail: RoutedMail) -> str:
    """Why a reply from someone who may not write to the ticket is refused. A sender without
    access to the product hears what a new mail from them would get, so the answer never tells
    whether the reference they wrote belongs to a ticket."""
    if accounts.role_of(mail.sender, mail.product.key) is not None or mail.product.unknown_senders == "open":
        return "not_authorised"
    return "no_access" if mail.sender is not None else "unknown_sender"


def note_refused_reply(mail: RoutedMail, ticket: Ticket) -> bool:
    """Record on the ticket, for its team, that a sender who may not write to it tried; True
    (and nothing recorded) when that sender was already refused GUESSES_ALLOWED times within
    GUESS_WINDOW, on any ticket: throttled. So a ticket's history gains at most a few such
    events an hour, however hard someone knocks. The event names the sender only."""
    assert mail.msg.sender is not None
    email = mail.msg.sender.key
    earlier = _refused_replies(email, mail.now)
    if earlier >= GUESSES_ALLOWED:
        return True
    tickets.record_event(ticket, "reply_refused", email, at=mail.now)
    if earlier + 1 == GUESSES_ALLOWED:
        log.warning(
            "%s was refused %d times within %s for writing to tickets not theirs: further mails"
            " from that address are throttled (recorded, never answered)",
            email,
            GUESSES_ALLOWED,
            GUESS_WINDOW,
        )
    return False


def _refused_replies(email: str, now: datetime) -> int:
    recent = (Event.kind == "reply_refused") & (Event.actor_email == email) & (Event.at > now - GUESS_WINDOW)
    return Event.select().where(recent).count()


def unverified_staff_mail(desk: Desk, mail: RoutedMail, ticket: Ticket, verdict: str) -> Outcome:
    """An engineer's address that our server did not see pass: anyone may have written it. The
    whole visible text, command lines included, goes on the ticket as an internal note; no
    command applies, nothing reaches the customer, and the engineer hears why. A mail without
    our server's header at all is kept as kind `unauthenticated` (`mailbot check` counts them:
    a server that stopped writing the header silences every engineer), one that failed as
    `unverified`."""
    sender, product = mail.sender, mail.product
    assert sender is not None
    missing = verdict == authresults.MISSING
    store_inbound(
        desk,
        mail,
        ticket,
        mail.msg.reply_text,
        visibility="internal",
        kind=UNAUTHENTICATED if missing else "unverified",
    )
    role = accounts.role_of(sender, ticket.product) or Role.ENGINEER
    notify.queue_mail(
        desk,
        Template.COMMAND_NOT_TRUSTED,
        product,
        ticket,
        [recipients.as_role(sender, role, product)],
        context={"authentication": verdict},
        parent_id=mail.msg.message_id,
    )
    why = "carries no Authentication-Results of our server" if missing else "failed sender authentication"
    log.warning(
        "%s: mail %s from %s %s: kept as an internal note, nothing applied",
        ticket.reference,
        mail.msg.message_id,
        sender.email,
        why,
    )
    return Outcome("message", f"sender not verified ({verdict}): internal note, nothing applied", ticket)


def unauthenticated_share(last: int = 50) -> tuple[int, int]:
    """Of the last `last` mails engineers sent to tickets, how many carried no Authentication-
    Results of our server: (without, looked at). For `mailbot check`."""
    by_staff = (Grant.account == Message.author) & (Grant.product == Ticket.product)
    recent = (
        Message.select(Message.kind)
        .join(Ticket)
        .join(Grant, on=by_staff)
        .where((Message.direction == "in") & Grant.role.in_(accounts.STAFF_ROLES))
        .order_by(Message.id.desc())
        .limit(last)
    )
    kinds = [row.kind for row in recent]
    return sum(kind == UNAUTHENTICATED for kind in kinds), len(kinds)


def _check_assignee(parsed: Commands, ticket: Ticket) -> list[CommandError]:
    command = parsed.get("assign")
    if command is None or command.argument.strip().lower() == "me":
        return []
    target = accounts.find_account(command.argument)
    if target is None or not accounts.is_staff(target, ticket.product):
        return [error_for("not_engineer", command, address=command.argument.strip(), product=ticket.product)]
    return []


def command_error(
    desk: Desk, mail: RoutedMail, ticket: Ticket, errors: list[CommandError], staff: bool
) -> Outcome:
    """No command applies; the sender learns what was wrong and what is valid, in their own
    language. A customer's text is kept on the ticket all the same (for the engineers to read):
    only the commands were wrong, and what they wrote must not be lost. An engineer's is not:
    they resend it, and a public message the customer never received would mislead."""
    sender = mail.sender
    assert sender is not None
    kept = ""
    text = read_commands(mail.msg.reply_text).text
    if not staff and text:
        store_inbound(desk, mail, ticket, text)
        kept = "; text kept on the ticket"
    role = accounts.role_of(sender, mail.product.key) or Role.CUSTOMER
    notify.queue_mail(
        desk,
        Template.COMMAND_ERROR,
        mail.product,
        ticket,
        [recipients.as_role(sender, role, mail.product)],
        context={"errors": errors, "valid_commands": valid_commands(staff), "text_kept": bool(kept)},
        parent_id=mail.msg.message_id,
    )
    return Outcome("ignored", "command error: " + "; ".join(map(describe_error, errors)) + kept, ticket)


def staff_reply(desk: Desk, mail: RoutedMail, ticket: Ticket, parsed: Commands) -> Outcome:
    """Apply every command, then send one mail: the customers get the text (a reply, or a
    request for information) listing every change it made, with the ticket as it is after
    them; commands without text get one mail of the changes (`mailbot.desk.summary`). A
    `#merge` makes it the mail that says where the request continues."""
    sender, product, now = mail.sender, mail.product, mail.now
    assert sender is not None
    internal = "internal" in parsed
    answers = not internal and ("info" in parsed or bool(parsed.text) or carries_files(mail))
    parent = last_public_message_id(ticket)
    stored = store_inbound(
        desk,
        mail,
        ticket,
        parsed.text,
        visibility="internal" if internal else "public",
        kind="note" if internal else "mail",
    )
    files = stored_files(mail, stored)
    customers = recipients.customers(ticket, product)
    if answers:
        tickets.mark_first_response(ticket, now)
    made = Made()
    news = _apply_fields(desk, mail, ticket, parsed, made)
    if "info" in parsed:
        made.status(desk, product, ticket, Status.WAITING, sender, now)
    elif (command := parsed.get("status")) is not None:
        made.status(desk, product, ticket, command.argument.strip().lower(), sender, now)
    elif answers and ticket.status == Status.NEW:
        made.status(desk, product, ticket, Status.OPEN, sender, now)
    if (command := parsed.get("escalate")) is not None:  # with the ticket as this mail left it
        escalate(desk, mail, ticket, command.argument.strip())
    money = prepaid.credit_context(product, ticket, news, now)
    context = {
        "text": parsed.text,
        "attachments": [a.filename for a in mail.msg.attachments],
        "changes": list(made),
        "prepaid": money,
    }
    if internal:
        # The board's note written with `#assign` is for the new assignee above all.
        team = recipients.team(product) + recipients.team(product, ticket)
        others = [r for r in team if r.email != sender.email]
        notify.queue_mail(
            desk,
            Template.INTERNAL_NOTE,
            product,
            ticket,
            others,
            context=context,
            actor=sender,
            enclose=files,
        )
    if money is not None:
        prepaid.tell_engineers(desk, product, ticket, money, sender)
    template = None
    if (command := parsed.get("merge")) is not None:
        # The one mail says where the request continues, with the engineer's text if any.
        merged_into = _merge(mail, ticket, command.argument)
        context.update(text=parsed.text if answers else "", merged_into=merged_into)
        template = Template.TICKET_MERGED
    elif answers:
        template = Template.INFO_REQUESTED if "info" in parsed else Template.REPLY
    if template is not None:
        notify.queue_mail(
            desk,
            template,
            product,
            ticket,
            customers,
            context=context,
            actor=sender,
            parent_id=parent,
            enclose=files,
        )
    elif made:
        tell_changes(desk, product, ticket, customers, made, sender, prepaid=money)
    elif money is not None:
        prepaid.tell_alone(desk, product, ticket, customers, money, sender)
    return Outcome("message", "staff reply", ticket)


def _merge(mail: RoutedMail, ticket: Ticket, reference: str) -> dict[str, str]:
    """Move the ticket into `reference` (or where that one was merged into); returns what the
    customers' mail names of it."""
    assert mail.sender is not None
    target = links.find_in_product(ticket.product, reference)
    assert target is not None  # checked with the other commands
    target = links.merged_target(target)
    links.merge_ticket(ticket, target, mail.sender.email, mail.now)
    return {"reference": target.reference, "subject": target.subject}


def _apply_fields(
    desk: Desk, mail: RoutedMail, ticket: Ticket, parsed: Commands, made: Made
) -> prepaid.CreditNews:
    sender, product, now = mail.sender, mail.product, mail.now
    assert sender is not None
    news = prepaid.CreditNews()
    if (command := parsed.get("assign")) is not None:
        arg = command.argument.strip().lower()
        target = sender if arg == "me" else accounts.find_account(arg)
        if target is not None:
            changes.assign(desk, product, ticket, target, sender, sender.email, now)
    # Category before time: `#category bug` with `#time` in one mail is not charged.
    if (command := parsed.get("category")) is not None:
        news.refunded = prepaid.change_category(ticket, command.argument.strip().lower(), sender.email, now)
    if (command := parsed.get("priority")) is not None:
        made.priority(desk, product, ticket, command.argument.strip().lower(), sender, now)
    if (command := parsed.get("time")) is not None:
        charge = credit.charge_time(desk, ticket, sender, time_minutes(command.argument), now, mail=False)
        news.add_charge(charge)
    if (command := parsed.get("link")) is not None:
        other = links.find_in_product(ticket.product, command.argument)
        if other is not None:
            links.link_tickets(ticket, other, links.RELATED, sender.email, now)
    return news


def customer_reply(desk: Desk, mail: RoutedMail, ticket: Ticket, parsed: Commands) -> Outcome:
    """The team gets one mail: the customer's text listing what their commands changed (or,
    without text, the changes alone); a customer who signs off with #close gets the
    confirmation."""
    sender, product, now = mail.sender, mail.product, mail.now
    assert sender is not None
    stored = store_inbound(desk, mail, ticket, parsed.text)
    staff = recipients.team(product, ticket)
    made = Made()
    if (command := parsed.get("priority")) is not None:
        made.priority(desk, product, ticket, command.argument.strip().lower(), sender, now)
    if "close" in parsed:
        made.status(desk, product, ticket, Status.CLOSED, sender, now)
        notify.queue_mail(
            desk,
            Template.TICKET_CLOSED,
            product,
            ticket,
            recipients.customers(ticket, product),
            actor=sender,
            parent_id=mail.msg.message_id,
        )
    elif ticket.status in (Status.WAITING, Status.RESOLVED):
        # Reopened by the answer itself: the team reads it in the relayed text.
        changes.change_status(desk, product, ticket, Status.OPEN, sender, sender.email, now, tell=[])
    if parsed.text or carries_files(mail):
        context = {
            "text": parsed.text,
            "attachments": [a.filename for a in mail.msg.attachments],
            "changes": list(made),
        }
        notify.queue_mail(
            desk,
            Template.CUSTOMER_REPLY,
            product,
            ticket,
            staff,
            context=context,
            actor=sender,
            parent_id=mail.msg.message_id,
            enclose=stored_files(mail, stored),
        )
    else:
        tell_changes(desk, product, ticket, staff, made, sender)
    return Outcome("message", "", ticket)
