"""Turn a rendered mail into RFC 5322 bytes that are safe to hand to any SMTP server.

`compose(OutgoingMail) -> bytes` builds an `email.message.EmailMessage` with `email.policy.SMTP`:
CRLF line ends, headers folded (never a line over 998 octets), non-ASCII headers RFC 2047-encoded,
bodies 7-bit clean (quoted-printable or base64 where needed), a text/plain part and, when there is
HTML, a multipart/alternative. It also owns our Message-IDs
(`make_message_id`, `is_our_message_id`), the stable per-ticket pseudo Message-ID that keeps a
thread together when the subject is edited (`thread_ref`), and the capped References list
(`build_references`).

Safety is the point of this module (reliability rows S5, C6, L9): every header value has its
control characters removed *before* it reaches the email package, display names are quoted or
encoded by `email.headerregistry`, and an address that is not exactly one plain addr-spec raises
`ValueError`, so a caller can never be tricked into adding a header or a recipient.

It leaves to others: choosing recipients and rendering the text (`mailbot.render`), storing the
bytes in the outbox, the envelope sender, and talking SMTP (the transport).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import headerregistry
from email.message import EmailMessage
from email.policy import SMTP

from mailbot.message import Address

LOOP_HEADER = "X-Mailbot-Loop"
# 7bit: non-ASCII bodies go out quoted-printable or base64, so the bytes are plain ASCII and
# pass any server, even one that does not offer 8BITMIME.
_POLICY = SMTP.clone(cte_type="7bit")
AUTOMATIC_VALUES = ("", "auto-replied", "auto-generated")

# RFC 3834 §5 and the Microsoft and list conventions: tells auto-responders not to answer us.
_AUTOMATIC_HEADERS = (("X-Auto-Response-Suppress", "All"), ("Precedence", "bulk"))

# Headers compose() writes itself; an extra header must never replace or repeat them.
_RESERVED_HEADERS = frozenset(
    (
        "from sender to cc bcc reply-to subject date message-id in-reply-to references "
        "mime-version content-type content-transfer-encoding auto-submitted "
        "x-auto-response-suppress precedence return-path " + LOOP_HEADER.lower()
    ).split()
)

# C0 and C1 controls plus the Unicode line and paragraph separators: anything a mail client or
# parser might take as the end of a header line.
_HEADER_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# In bodies, tab and line ends are content; the other controls are junk some servers refuse.
_BODY_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*\Z")
_DOMAIN_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
# Printable ASCII without "@" on each side of the one "@", and none of the characters that
# would end or break the angle-bracketed form.
_MESSAGE_ID = re.compile(r"[!-?A-~]+@[!-?A-~]+\Z")
_MESSAGE_ID_FORBIDDEN = re.compile(r'[<>"\\]')
_MAX_MESSAGE_ID = 250  # longer ids from other mailers are dropped: one could not be folded
_HEADER_NAME = re.compile(r"[!-9;-~]+\Z")  # printable ASCII without ':' (RFC 5322 ftext)
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_OUR_ID = re.compile(r"(?:[a-z0-9-]+\.)?[0-9a-f]{16}@(?P<domain>[^@]+)\Z")
_THREAD_REF = re.compile(r"ticket-(?P<ref>[A-Za-z0-9][A-Za-z0-9._-]*)@(?P<domain>[^@]+)\Z")
_KEEP_FIRST, _KEEP_LAST = 4, 6


@dataclass(frozen=True, kw_only=True)
class OutgoingMail:
    """Everything compose() needs. Message-IDs are given without angle brackets.

    `automatic` is "" for mail a person wrote (an engineer's relayed reply), "auto-replied" for
    answers to a customer's mail (acknowledgements, info requests), "auto-generated" for notices.
    `loop_marker` is the value of our loop header, checked on inbound mail to break loops.
    """

    sender: Address
    to: tuple[Address, ...]
    subject: str
    text: str
    message_id: str
    loop_marker: str
    date: datetime
    cc: tuple[Address, ...] = ()
    html: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    automatic: str = ""
    reply_to: Address | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.automatic not in AUTOMATIC_VALUES:
            raise ValueError(f"automatic must be one of {AUTOMATIC_VALUES}: {self.automatic!r}")


def clean_header_value(value: str) -> str:
    """One safe header line: control characters become spaces, whitespace runs fold to one
    space, lone surrogates (from undecodable input) become U+FFFD."""
    value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return " ".join(_HEADER_CONTROLS.sub(" ", value).split())


def check_address(email: str) -> str:
    """Return `email` as one plain, sendable addr-spec (the domain in ASCII), or raise ValueError.

    Stricter than RFC 5322 on purpose: no display name, no comments, no quoted local part, no
    second `@`, no list, no non-ASCII local part (that would need SMTPUTF8). Callers never send to
    an address this refuses."""
    if not isinstance(email, str) or len(email) > 254 or email.count("@") != 1:
        raise ValueError(f"not a single email address: {email!r}")
    local, domain = email.split("@")
    if len(local) > 64 or not _LOCAL_PART.match(local):
        raise ValueError(f"not a valid local part: {email!r}")
    return f"{local}@{_ascii_domain(domain)}"


def make_message_id(reference: str, domain: str) -> str:
    """A new, unique Message-ID (no brackets): `visi-42.<16 hex>@domain`, or `<16 hex>@domain` for
    mail about no ticket. The reference makes our ids readable in logs and mail sources."""
    random_part = secrets.token_hex(8)
    ref = reference.strip().lower()
    if ref and not _REFERENCE.match(ref):
        raise ValueError(f"not a ticket reference: {reference!r}")
    left = f"{ref}.{random_part}" if ref else random_part
    return f"{left}@{_ascii_domain(domain)}"


def is_our_message_id(message_id: str, domain: str) -> bool:
    """Whether `message_id` (with or without brackets) has the shape make_message_id() gives,
    at our `domain`. A hint for threading, not proof: permission checks still apply."""
    match = _OUR_ID.match(_clean_message_id(message_id).lower())
    return match is not None and match["domain"] == _ascii_domain(domain).lower()


def thread_ref(reference: str, domain: str) -> str:
    """The stable pseudo Message-ID of a ticket, `ticket-VISI-42@domain` (no brackets). It is in
    the References of every mail about the ticket, so replies thread even with an edited subject."""
    if not _REFERENCE.match(reference):
        raise ValueError(f"not a ticket reference: {reference!r}")
    return f"ticket-{reference}@{_ascii_domain(domain)}"


def reference_from_thread_ref(message_id: str, domain: str) -> str:
    """The ticket reference in one of our thread refs, or "" when `message_id` is not one."""
    match = _THREAD_REF.match(_clean_message_id(message_id))
    if not match or match["domain"].lower() != _ascii_domain(domain).lower():
        return ""
    return match["ref"]


def build_references(existing: Sequence[str], parent: str, reference: str, domain: str) -> tuple[str, ...]:
    """References for a new mail: the ticket's thread ref first, then the existing ids and the
    `parent` (last, as RFC 5322 §3.6.4 wants) capped to the first 4 and last 6, no duplicates.

    Keeping the first ids preserves the thread root for clients that thread by it; keeping the
    last ones the nearest ancestors (RT keeps ≤ 10 the same way). Invalid ids are dropped."""
    pseudo = thread_ref(reference, domain)
    parent_id = _clean_message_id(parent)
    skip = {pseudo, parent_id, ""}
    ids = list(dict.fromkeys(i for i in map(_clean_message_id, existing) if i not in skip))
    if parent_id:
        ids.append(parent_id)
    if len(ids) > _KEEP_FIRST + _KEEP_LAST:
        ids = ids[:_KEEP_FIRST] + ids[-_KEEP_LAST:]
    return (pseudo, *ids)


def compose(mail: OutgoingMail) -> bytes:
    """The mail as RFC 5322 bytes with CRLF line ends. Raises ValueError for an invalid address,
    Message-ID, loop marker, naive date, or an extra header that is malformed or one of ours."""
    message = EmailMessage(policy=_POLICY)
    _set_addresses(message, mail)
    message["Subject"] = clean_header_value(mail.subject)
    message["Date"] = _aware(mail.date)
    message["Message-ID"] = f"<{_require_message_id(mail.message_id)}>"
    _set_thread_headers(message, mail)
    _set_loop_headers(message, mail)
    for name, value in mail.extra_headers:
        message[_check_extra_header_name(name)] = clean_header_value(value)
    _set_body(message, mail.text, mail.html)
    return message.as_bytes()


def _set_addresses(message: EmailMessage, mail: OutgoingMail) -> None:
    if not mail.to:
        raise ValueError("a mail needs at least one recipient")
    message["From"] = _header_address(mail.sender)
    message["To"] = tuple(_header_address(a) for a in mail.to)
    if mail.cc:
        message["Cc"] = tuple(_header_address(a) for a in mail.cc)
    if mail.reply_to is not None:
        message["Reply-To"] = _header_address(mail.reply_to)


def _set_thread_headers(message: EmailMessage, mail: OutgoingMail) -> None:
    parent = _clean_message_id(mail.in_reply_to)
    if parent:
        message["In-Reply-To"] = f"<{parent}>"
    ids = [i for i in dict.fromkeys(map(_clean_message_id, mail.references)) if i]
    if ids:
        message["References"] = " ".join(f"<{i}>" for i in ids)


def _set_loop_headers(message: EmailMessage, mail: OutgoingMail) -> None:
    marker = clean_header_value(mail.loop_marker)
    if not marker:
        # Without it our own mail could come back and be answered: refuse rather than send.
        raise ValueError("loop_marker is required")
    message[LOOP_HEADER] = marker
    if mail.automatic:
        message["Auto-Submitted"] = mail.automatic
        for name, value in _AUTOMATIC_HEADERS:
            message[name] = value


def _set_body(message: EmailMessage, text: str, html: str) -> None:
    message.set_content(_clean_body(text), subtype="plain", charset="utf-8")
    if html:
        message.add_alternative(_clean_body(html), subtype="html", charset="utf-8")


def _header_address(address: Address) -> headerregistry.Address:
    local, domain = check_address(address.email.strip()).split("@")
    # headerregistry quotes or RFC 2047-encodes the display name; we only make sure it is one line.
    return headerregistry.Address(
        display_name=clean_header_value(address.name), username=local, domain=domain
    )


def _ascii_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"not a valid domain: {domain!r}") from exc
    labels = ascii_domain.split(".")
    if not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise ValueError(f"not a valid domain: {domain!r}")
    return ascii_domain


def _clean_message_id(value: str) -> str:
    """`<id@host>` or `id@host` → `id@host`; "" when it is not a usable Message-ID."""
    candidate = value.strip()
    if candidate.startswith("<") and candidate.endswith(">"):
        candidate = candidate[1:-1].strip()
    if (
        len(candidate) > _MAX_MESSAGE_ID
        or _MESSAGE_ID_FORBIDDEN.search(candidate)
        or not _MESSAGE_ID.match(candidate)
    ):
        return ""
    return candidate


def _require_message_id(value: str) -> str:
    message_id = _clean_message_id(value)
    if not message_id or message_id != value:
        raise ValueError(f"not a Message-ID without brackets: {value!r}")
    return message_id


def _check_extra_header_name(name: str) -> str:
    if not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS:
        raise ValueError(f"not an allowed extra header: {name!r}")
    return name


def _aware(date: datetime) -> datetime:
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    return date


def _clean_body(body: str) -> str:
    body = body.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return _BODY_CONTROLS.sub("", body)
