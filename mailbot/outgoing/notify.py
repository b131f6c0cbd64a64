"""Turning a ticket change into outgoing mail: who gets which template, in which language, with
which headers. Each mail becomes one outbox row per recipient, written in the caller's
transaction through the outbox's one door (`mailbot.outgoing.enqueue`), holding what to say
(`mailbot.outgoing.drafts`); `mailbot.outgoing.outbox` renders and delivers them later, so a
broken template never undoes the change that caused the mail.

Rules that keep mailbot from ever starting a loop live here too: no automatic mail to our own
addresses, to no-reply style senders, to addresses that bounced, or past the daily limit of
automatic mail per address (`mailbot.desk.caps`); and no mail at all from a quiet desk (mail older than
the cut-over).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import accounts, caps, tickets
from mailbot.inbound.automail import is_noreply_address
from mailbot.inbound.message import Address
from mailbot.outgoing import enclosures
from mailbot.outgoing.addressing import build_references, check_address
from mailbot.outgoing.drafts import Headers, context_json
from mailbot.outgoing.enqueue import Draft, Envelope, enqueue
from mailbot.outgoing.formats import desk_name, machine_moment
from mailbot.store import statements
from mailbot.store.models import Account, Attachment, Message, Outbox, Ticket
from mailbot.vocabulary import STAFF_ROLES, Role, Template

log = logging.getLogger(__name__)

# What each template is (opted out of, relayed from a person, kept on the ticket) are its
# attributes in `mailbot.vocabulary.Template`.
CUSTOMER_ROLES = (Role.CUSTOMER, Role.WATCHER)
# The kinds of mail a person may opt out of (Account.notify).
OPTIONAL = frozenset(template.value for template in Template if template.optional)


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    role: str  # customer, watcher, engineer, board
    language: str
    account: Account | None = None


def recipient_for(account: Account, role: str, fallback_language: str = "en") -> Recipient:
    return Recipient(account.email, account.name, role, account.language or fallback_language, account)


def queue_mail(
    desk: Desk,
    template: str,
    product: ProductSettings,
    ticket: Ticket | None,
    recipients: Iterable[Recipient],
    *,
    context: Mapping[str, Any] | None = None,
    actor: Account | None = None,
    parent_id: str = "",
    enclose: Sequence[Attachment] = (),
) -> list[Outbox]:
    """Add `template` for each recipient to the outbox (rendered when sent); returns the rows.
    `enclose`: stored attachments the mail carries, as many as `MAILBOT_FORWARD_ATTACHMENTS_MAX`
    allows; the template is told the rest (`kept_back`)."""
    if desk.quiet:
        log.debug("quiet: %s about %s not queued", template, ticket.reference if ticket else product.key)
        return []
    choice = enclosures.choose(enclose, desk.settings.forward_attachments_max)
    if enclose:
        context = {**(context or {}), "kept_back": list(choice.kept_back)}
    rows = []
    now = desk.clock()
    enclosed = json.dumps(list(choice.enclosed)) if choice.enclosed else ""
    seen: set[str] = set()
    shared: dict[str, Any] | None = None
    for recipient in recipients:
        key = recipient.email.lower()
        if key in seen or not _may_send(desk, template, recipient, now):
            continue
        seen.add(key)
        if shared is None:  # the same for every recipient: read once per mail, not per row
            shared = _shared_context(context or {}, product, ticket, actor)
        rows.append(
            _queue_one(desk, template, product, ticket, recipient, shared, actor, parent_id, now, enclosed)
        )
    return rows


def _shared_context(
    context: Mapping[str, Any], product: ProductSettings, ticket: Ticket | None, actor: Account | None
) -> dict[str, Any]:
    full = dict(context)
    full.update(product=product_context(product), actor=_actor_context(actor, product))
    if ticket is not None:
        full["ticket"] = ticket_context(ticket, product)
    return full


def _sendable(email: str) -> bool:
    """A sender read from a fax gateway (`"fax 42"@gw`) has a ticket, but no mail goes back."""
    try:
        check_address(email)
    except ValueError:
        return False
    return True


def _may_send(desk: Desk, template: str, recipient: Recipient, now: datetime) -> bool:
    email = recipient.email.lower()
    if email in desk.settings.own_addresses:
        log.warning("not mailing %s to our own address %s", template, email)
        return False
    account = recipient.account
    if account is not None and Template(template).optional and not _wants(account, template):
        return False
    if not _sendable(email):
        log.warning("not mailing %s to %s: not an address mail can be sent to", template, email)
        return False
    if not Template(template).automatic:
        return True
    if is_noreply_address(email):
        log.info("no automatic %s to no-reply address %s", template, email)
        return False
    if account is not None and account.undeliverable_since is not None:
        log.info("no automatic %s to %s: earlier mail bounced", template, email)
        return False
    if recipient.role not in STAFF_ROLES and caps.over_automatic_limit(desk, email, now):
        log.warning(
            "limit of %d automatic mails a day reached for %s; %s not sent",
            desk.settings.limits.automatic_limit,
            email,
            template,
        )
        return False
    return True


def parse_notify(value: str) -> str:
    """Read a notification preference: `all`, `none`, or a comma list of the mails in OPTIONAL
    (the rest always go out). ValueError names the valid values: a typo stored here would
    silently stop a person's mail."""
    text = value.strip().lower() or "all"
    if text in ("all", "none"):
        return text
    kinds = [part.strip() for part in text.split(",") if part.strip()]
    wrong = [kind for kind in kinds if kind not in OPTIONAL]
    if wrong or not kinds:
        raise ValueError(
            f"{', '.join(wrong) or value!r} is not a kind of mail; expected all, none, or a comma list of "
            + ", ".join(sorted(OPTIONAL))
        )
    return ",".join(dict.fromkeys(kinds))


def _wants(account: Account, template: str) -> bool:
    prefs = (account.notify or "all").lower()
    if prefs == "all":
        return True
    if prefs == "none":
        return False
    return template in {p.strip() for p in prefs.split(",")}


def _queue_one(
    desk: Desk,
    template: str,
    product: ProductSettings,
    ticket: Ticket | None,
    recipient: Recipient,
    context: Mapping[str, Any],
    actor: Account | None,
    parent_id: str,
    now: datetime,
    enclosed: str,
) -> Outbox:
    """One outbox row holding what to say (`context`: `_shared_context` of the mail); it is
    rendered when it is sent (`mailbot.outgoing.drafts`)."""
    settings = desk.settings
    full = {**context, "recipient": _recipient_context(recipient)}
    automatic = Template(template).auto_submitted
    # The From name is the name the mail signs with, in the recipient's language.
    signed_as = desk_name(product.name, recipient.language)
    headers = Headers(
        sender=Address(product.address, signed_as),
        to=Address(recipient.email, recipient.name),
        loop_marker=settings.mail_domain,
        reply_to=Address(product.address, signed_as),
        in_reply_to=parent_id,
        references=_references(ticket, parent_id, settings.mail_domain),
        automatic=automatic,
        extra=_staff_headers(ticket, product) if recipient.role not in CUSTOMER_ROLES else (),
    )
    envelope = Envelope(
        template=template,
        recipient=recipient.email,
        envelope_from=product.address,
        automatic=bool(automatic),
        product=product.key,
        ticket=ticket,
        about=ticket.reference if ticket is not None else product.prefix,
    )
    draft = Draft(recipient.language, context_json(full), headers.to_json(), enclosed)
    row = enqueue(envelope, settings.mail_domain, now, draft)
    if ticket is not None and recipient.role in CUSTOMER_ROLES and Template(template).kept:
        # Its place in the conversation is now; subject and text are filled in when the mail is
        # rendered (`mailbot.outgoing.outbox`).
        statements.add(
            Message,
            ticket=ticket,
            direction="out",
            message_id=row.message_id,
            author=actor,
            author_email=product.address,
            kind=template,
            created_at=now,
        )
    return row


def _references(ticket: Ticket | None, parent_id: str, domain: str) -> tuple[str, ...]:
    if ticket is None:
        return (parent_id,) if parent_id else ()
    return build_references((), parent_id, ticket.reference, domain)


def _staff_headers(ticket: Ticket | None, product: ProductSettings) -> tuple[tuple[str, str], ...]:
    """Machine-readable headers so engineers can filter in their mail client."""
    headers = [("X-Mailbot-Product", product.key)]
    if ticket is not None:
        headers += [
            ("X-Mailbot-Ticket", ticket.reference),
            ("X-Mailbot-Status", ticket.status),
            ("X-Mailbot-Priority", ticket.priority),
            ("X-Mailbot-Category", ticket.category),
        ]
    return tuple(headers)


def product_context(product: ProductSettings) -> dict[str, str]:
    return {"key": product.key, "name": product.name, "address": product.address}


def ticket_context(ticket: Ticket, product: ProductSettings) -> dict[str, Any]:
    zone = product.calendar.zone
    requester = ticket.requester
    assignee = ticket.assignee

    def when(moment: datetime | None) -> str:
        # The machine form; the template writes it in the recipient's language (`|datetime`).
        return machine_moment(moment, zone)

    return {
        "reference": ticket.reference,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "category": ticket.category,
        "requester": {"name": requester.name, "email": requester.email},
        "assignee": {"name": assignee.name, "email": assignee.email} if assignee else None,
        "created_at": when(ticket.created_at),
        "due_first_response": when(ticket.due_first_response),
        "due_resolution": when(ticket.due_resolution),
        "flags": tickets.flags_of(ticket),
        "linked_reference": ticket.linked_to.reference if ticket.linked_to_id else "",
        "related": statements.related_references(ticket),
    }


def _recipient_context(recipient: Recipient) -> dict[str, str]:
    return {
        "name": recipient.name,
        "email": recipient.email,
        "role": recipient.role,
        "language": recipient.language,
    }


def _actor_context(actor: Account | None, product: ProductSettings) -> dict[str, str] | None:
    """Who acted, with their role on the product ("" for none): mails to the team say whether a
    customer, a watcher or a colleague wrote."""
    if actor is None:
        return None
    return {"name": actor.name, "email": actor.email, "role": accounts.role_of(actor, product.key) or ""}
