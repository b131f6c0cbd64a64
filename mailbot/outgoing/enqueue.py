"""The one door into the outbox: every outbox row is written here, by `enqueue`.

Mail about tickets (`mailbot.outgoing.notify`) comes in as a draft, rendered when it is sent;
an alert (`mailbot.outgoing.alerts`) comes in as finished bytes, composed around the Message-ID
made here. Either way the row gets the same things the sender relies on: a new Message-ID of
`make_message_id`'s shape, the recipient in lower case, `pending`, unclaimed, no attempts, and
due at once. A test (tests/test_architecture.py) checks that no other module writes outbox rows.

Runs in the caller's transaction; deciding whether a mail may go at all is the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mailbot.outgoing.addressing import make_message_id
from mailbot.store import statements
from mailbot.store.models import Outbox, Ticket
from mailbot.vocabulary import OutboxState


@dataclass(frozen=True)
class Envelope:
    """Who a row goes to, as what, and about what."""

    template: str  # a vocabulary.Template, or "alert-<kind>"
    recipient: str
    envelope_from: str  # "" is the null sender: a bounce of the mail is thrown away
    automatic: bool  # sent with Auto-Submitted: counts towards the daily limit of automatic mail
    product: str = ""  # "" for mail about no product (alerts)
    ticket: Ticket | None = None
    about: str = ""  # the reference the Message-ID carries (a ticket's, a product's prefix), or ""


@dataclass(frozen=True)
class Draft:
    """What to say, rendered when the row is sent (`mailbot.outgoing.drafts`)."""

    language: str
    context: str  # JSON
    headers: str  # JSON
    attachments: str = ""  # JSON list of stored Attachment ids to enclose


def enqueue(
    envelope: Envelope, domain: str, now: datetime, content: Draft | Callable[[str], bytes]
) -> Outbox:
    """Write one outbox row, due at `now`, with a new Message-ID at `domain`. `content` is a
    draft, or a function that writes the finished mail around the Message-ID it is given."""
    message_id = make_message_id(envelope.about, domain)
    draft = content if isinstance(content, Draft) else Draft("", "", "")
    data = b"" if isinstance(content, Draft) else content(message_id)
    if not isinstance(content, Draft) and not data:
        raise ValueError(f"{envelope.template} to {envelope.recipient}: a finished mail without bytes")
    return statements.add(
        Outbox,
        message_id=message_id,
        ticket=envelope.ticket,
        product=envelope.product,
        template=envelope.template,
        recipient=envelope.recipient.lower(),
        envelope_from=envelope.envelope_from,
        data=data,
        language=draft.language,
        context=draft.context,
        headers=draft.headers,
        attachments=draft.attachments,
        automatic=envelope.automatic,
        status=OutboxState.PENDING,
        attempts=0,
        claimed_by="",
        claimed_until=None,
        created_at=now,
        next_attempt_at=now,
    )
