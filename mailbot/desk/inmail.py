"""An inbound mail on its way through the ticket rules.

Shared by `mailbot.desk.intake` (what a mail is) and `mailbot.desk.replies` (what a reply does): the
values handed between them and storing a mail on its ticket. Who is told about a change is
`mailbot.desk.recipients`'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import tickets
from mailbot.inbound import authresults
from mailbot.inbound.message import ParsedMail
from mailbot.store.models import Account, Attachment, Message, Ticket


@dataclass(frozen=True)
class Outcome:
    """How a mail ended: `ticket` (opened one), `message` (joined one) or `ignored`."""

    outcome: str
    reason: str = ""
    ticket: Ticket | None = None


@dataclass(frozen=True)
class RoutedMail:
    """An inbound mail with what we know about it, handed between the steps below."""

    msg: ParsedMail
    product: ProductSettings
    sender: Account | None
    raw_path: str
    now: datetime


def store_inbound(
    desk: Desk, mail: RoutedMail, ticket: Ticket, text: str, *, visibility: str = "public", kind: str = "mail"
) -> Message:
    msg = mail.msg
    new = tickets.NewMessage(
        direction="in",
        message_id=msg.message_id,
        author=mail.sender,
        author_email=msg.sender.email if msg.sender else "",
        subject=msg.subject,
        text=text,
        html=msg.html,
        visibility=visibility,
        kind=kind,
        raw_path=mail.raw_path,
    )
    return tickets.add_message(ticket, new, desk.store, msg.attachments, at=mail.now)


def staff_mail_verdict(desk: Desk, mail: RoutedMail) -> str:
    """FAIL for a sender read with a note (several mailboxes, a repaired or borrowed address:
    `mailbot.inbound.senders`); else PASS where the site checks nothing, else what our own server's
    Authentication-Results say about the From domain: PASS, FAIL, or MISSING (our server's
    header is not there)."""
    if mail.msg.sender_note:
        return authresults.FAIL
    trusted = desk.settings.trusted_authserv_id
    if not trusted:
        return authresults.PASS
    domain = mail.msg.sender.email.rpartition("@")[2] if mail.msg.sender else ""
    return authresults.sender_verdict(mail.msg.headers, trusted, domain)


def carries_files(mail: RoutedMail) -> bool:
    """Whether the mail has files of its own to pass on, so that it is relayed even without text.
    Images shown in its HTML (a signature's logo) do not count."""
    return any(not a.inline for a in mail.msg.attachments)


def stored_files(mail: RoutedMail, message: Message) -> list[Attachment]:
    """The files `message` (the mail as stored) keeps, in the order they came: what travels on
    with the mail it causes. No query for a mail without attachments."""
    if not mail.msg.attachments:
        return []
    return list(message.added_files)


def last_public_message_id(ticket: Ticket) -> str:
    row = (
        Message.select()
        .where((Message.ticket == ticket) & (Message.visibility == "public"))
        .order_by(Message.id.desc())
        .first()
    )
    return row.message_id if row else ""
