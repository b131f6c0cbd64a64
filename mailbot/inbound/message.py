"""Our own value types for a mail that came in.

mail-parser's object is turned into an `ParsedMail` in one place (`mailbot.inbound.parse`); nothing
else in mailbot sees a third-party mail type. These are plain frozen values: routing, ticket rules
and tests build and read them without any I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from mailbot.inbound.trim import visible_text


@dataclass(frozen=True)
class Address:
    """One mailbox address. `email` is exactly as written (no case folding); `key` is for lookups."""

    email: str
    name: str = ""

    @property
    def key(self) -> str:
        return self.email.strip().lower()


@dataclass(frozen=True)
class Attachment:
    """An attachment as it came in. `filename` is the sender's name, already made safe for display
    (no path parts, no control characters, bounded length); it is never used as a path on disk.
    `inline`: an image the HTML shows by its `content_id`, rather than a file to open."""

    filename: str
    content_type: str
    payload: bytes
    content_id: str = ""
    inline: bool = False

    @property
    def size(self) -> int:
        return len(self.payload)


@dataclass(frozen=True)
class ParsedMail:
    """A parsed mail.

    `sender` is None when no sender can be made out (for example `a@evil.org@customer.com`):
    such a mail is never granted anything. `sender_note` says how the sender was read when not
    from one plain From mailbox (two From headers, a list, a repaired address, Reply-To...), and
    `sender_alternatives` are the other mailboxes it may be from: such a reading never carries
    an engineer's commands (`mailbot.inbound.senders`). `repairs` notes what the parser mended in the
    raw mail to read it (junk before the header, unindented header lines, a guessed charset).
    `automatic` holds the reason this mail must never get an automatic answer (an auto-reply,
    a bounce, a list, our own loop), or "" for mail written by a person.
    `automatic_by` names the detector that said so (`flufl.bounce: Postfix`, `mailbot: text rule`).
    `bounce` is True for delivery status notifications; `bounced_message_id` names the mail of
    ours that bounced, where the report says so.
    """

    sender: Address | None
    sender_alternatives: tuple[Address, ...] = ()
    sender_note: str = ""
    repairs: tuple[str, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    subject: str = ""
    message_id: str = ""
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    date: datetime | None = None
    text: str = ""
    html: str = ""
    attachments: tuple[Attachment, ...] = ()
    automatic: str = ""
    automatic_by: str = ""
    bounce: bool = False
    bounced_message_id: str = ""
    bounced_recipients: tuple[str, ...] = ()
    list_mail: bool = False
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @cached_property
    def reply_text(self) -> str:
        """The newest part of `text`, quoted history and signature cut (`mailbot.inbound.trim`). Worked
        out once; a helper process that parsed the mail works it out there, and the value
        travels back with the message (a cached property is pickled with the instance)."""
        return visible_text(self.text)

    def header(self, name: str) -> str:
        """The first value of header `name` (case-insensitive), or ""."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return ""

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this mail answers, nearest first."""
        return tuple(dict.fromkeys(self.in_reply_to + tuple(reversed(self.references))))
