"""Turn the raw bytes of one mail into an `ParsedMail`, or refuse it with a QuarantineError.

This is the one place where third-party mail objects are touched. The standard library builds the
MIME tree, so that the size, depth and part caps are checked before anything else walks it;
mail-parser reads the date and the recipient lists; the rest is read here with strict rules of
our own: the sender (ambiguous means none), ids, decoded and cleaned headers, the text (plain
preferred, HTML turned into text), sanitised HTML and attachments with safe names. A forwarded
message (message/rfc822) is one attachment: its headers and body never become the outer mail's.

What it leaves to others: what an automatic mail means (`mailbot.inbound.automail` names the reason,
routing decides), storing raw bytes and attachments, trimming quoted history (`mailbot.inbound.trim`),
and any time limit on parsing (the worker that calls us).
"""

from __future__ import annotations

import email
import email.utils
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import Message
from email.policy import compat32

import mailparser

from mailbot.errors import QuarantineError
from mailbot.inbound import automail
from mailbot.inbound.bodies import attachment_filename, part_charset, safe_filename, text_and_html
from mailbot.inbound.charsets import clean_line, codec_name, decode_header_value, guess_charset, unescape_8bit
from mailbot.inbound.headblock import repair_head
from mailbot.inbound.message import Address, Attachment, ParsedMail
from mailbot.inbound.senders import read_sender
from mailbot.inbound.slices import decoded_payload, parse_tree

MiB = 1024 * 1024
_Addrs = tuple[Address, ...]


@dataclass(frozen=True)
class ParseLimits:
    """Caps that keep one hostile mail from exhausting the worker (reliability P1, P2, P6)."""

    max_bytes: int = 25 * MiB
    max_header_bytes: int = 256 * 1024
    max_parts: int = 500
    max_depth: int = 32
    max_attachment_bytes: int = 25 * MiB


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_LINE = re.compile(rb"(?:From |[!-9;-~]+[ \t]*:)")  # a header field or an mbox line
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")  # ESC is ISO-2022-JP
_OBSOLETE_FIELD = re.compile(rb"(?m)^([!-9;-~]+)[ \t]+:")  # "Subject : x", RFC 5322 section 4.5
_KNOWN_HEADERS = frozenset(
    "from sender to cc subject date message-id received return-path content-type mime-version"
    " delivered-to reply-to in-reply-to references".split()
)
_MSGID = re.compile(r"<([^<>\s\x00-\x1f\x7f]+)>")
_MAX_IDS = 100
_UNNAMED = {
    "message/rfc822": "message.eml",
    "message/global": "message.eml",
    "message/delivery-status": "delivery-status.txt",
    "text/rfc822-headers": "headers.txt",
}


def parse_mail(raw: bytes, limits: ParseLimits = ParseLimits()) -> ParsedMail:
    """Parse one raw mail. Raises QuarantineError (with a short reason) for anything that is not
    a mail, breaks a limit, or makes a parser fail; never any other exception."""
    if len(raw) > limits.max_bytes:  # before any repair looks at it
        raise QuarantineError("mail too large")
    raw, repairs = repair_head(raw)
    _check_raw(raw, limits)
    try:
        return _parse_checked(raw, limits, repairs)
    except QuarantineError:
        raise
    except RecursionError:
        raise QuarantineError("mail nested too deeply to parse") from None
    except Exception as exc:  # the per-message boundary: a parser bug must not kill the worker
        raise QuarantineError(f"parser failed: {type(exc).__name__}") from exc


def _check_raw(raw: bytes, limits: ParseLimits) -> None:
    if not raw or raw.isspace():  # not raw.strip(): that copies the whole mail
        raise QuarantineError("empty mail")
    if len(raw) > limits.max_bytes:
        raise QuarantineError("mail too large")
    end = _HEADER_END.search(raw)
    head = raw[: end.start()] if end else raw
    if len(head) > limits.max_header_bytes:
        raise QuarantineError("header section too large")
    if not _FIELD_LINE.match(raw):
        raise QuarantineError("not a mail: no header")
    # A stray NUL happens in real bounces; a header full of control bytes is binary data.
    if len(_CONTROL_BYTES.findall(head)) * 50 > len(head):
        raise QuarantineError("not a mail: binary header")


def _parse_checked(raw: bytes, limits: ParseLimits, repairs: tuple[str, ...] = ()) -> ParsedMail:
    end = _HEADER_END.search(raw)
    cut = end.start() if end else len(raw)
    msg, spliced = parse_tree(_OBSOLETE_FIELD.sub(rb"\1:", raw[:cut]), raw, cut)
    if not any(name.lower() in _KNOWN_HEADERS for name in msg.keys()):
        raise QuarantineError("not a mail: no known header")
    parts = _sort_parts(msg, limits)
    declared = next(filter(None, map(part_charset, [msg, *parts.plain, *parts.html])), None)
    hint, guessed = _header_charset(msg, declared)
    if guessed:
        repairs = (*repairs, f"8-bit header text read as {hint}")
    reading = read_sender(msg, hint)
    date, to, cc, reply_to = _read_with_mailparser(msg)
    verdict = automail.detect(msg)
    reason = verdict.reason
    bounce = automail.read_bounce(msg) if automail.is_bounce_reason(reason) else automail.Bounce()
    text, html = text_and_html(parts.plain, parts.html)
    return ParsedMail(
        sender=reading.sender,
        sender_alternatives=reading.alternatives,
        sender_note=reading.note,
        repairs=repairs,
        to=to,
        cc=cc,
        reply_to=reply_to,
        subject=clean_line(decode_header_value(_first(msg, "Subject"), hint)),
        message_id=_message_id(msg, raw),
        in_reply_to=_ids(_first(msg, "In-Reply-To")),
        references=_ids(_first(msg, "References")),
        date=date,
        text=text,
        html=html,
        attachments=tuple(_attachment(part, limits, raw, spliced.get(id(part))) for part in parts.files),
        automatic=reason,
        automatic_by=verdict.detector,
        bounce=automail.is_bounce_reason(reason),
        bounced_message_id=bounce.message_id,
        bounced_recipients=bounce.failed_recipients,
        list_mail=automail.is_list_mail(msg),
        headers=_headers(msg, hint),
    )


def _read_with_mailparser(msg: Message) -> tuple[datetime | None, _Addrs, _Addrs, _Addrs]:
    """Date and recipient lists through mail-parser, which reads broken ones best; where
    mail-parser itself fails (it has bugs on some defective trees), the standard library's."""
    try:
        # Only the header fields: given the whole mail, mail-parser would also decode every body
        # and base64-encode every attachment again (a third of the parse time, and three times
        # the largest attachment in memory), to read nothing of it.
        parsed = mailparser.MailParser(_header_fields(msg))
        date, lists = parsed.date, [parsed.to, parsed.cc, parsed.reply_to]
    except (AttributeError, TypeError, ValueError, IndexError, LookupError):
        date = _stdlib_date(_first(msg, "Date"))
        lists = [
            email.utils.getaddresses([unescape_8bit(str(v)) for v in msg.get_all(name, [])])
            for name in ("To", "Cc", "Reply-To")
        ]
    to, cc, reply_to = (_addresses(pairs) for pairs in lists)
    return date or None, to, cc, reply_to


# What mail-parser is asked for; it parses every field it is given (Received chains included).
_READ_BY_MAILPARSER = frozenset({"date", "to", "cc", "reply-to"})


def _header_fields(msg: Message) -> Message:
    """A message with the header fields of `msg` that mail-parser reads for us, exactly as
    parsed, and no body."""
    fields = Message()
    for name, value in msg.raw_items():
        if name.lower() in _READ_BY_MAILPARSER:
            fields[name] = value
    fields.set_payload("")
    return fields


def _stdlib_date(value: str) -> datetime | None:
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return date.astimezone(UTC) if date.tzinfo else date.replace(tzinfo=UTC)


# --- MIME structure ----------------------------------------------------------------------------


@dataclass
class _Parts:
    plain: list[Message] = field(default_factory=list)
    html: list[Message] = field(default_factory=list)
    files: list[Message] = field(default_factory=list)


def _sort_parts(msg: Message, limits: ParseLimits) -> _Parts:
    """Check the part and depth caps over the whole tree, without recursion, and sort the parts
    of the outer mail into text, HTML and attachments. Anything inside an enclosed message
    (message/rfc822, a bounce's status fields) belongs to that one attachment."""
    parts = _Parts()
    stack: list[tuple[Message, int, bool]] = [(msg, 0, False)]
    count = 0
    while stack:
        part, depth, enclosed = stack.pop()
        count += 1
        if count > limits.max_parts:
            raise QuarantineError("too many MIME parts")
        if depth > limits.max_depth:
            raise QuarantineError("MIME nesting too deep")
        is_message = part.get_content_maintype() == "message"
        if not enclosed and (is_message or not part.is_multipart()):
            _sort_leaf(part, parts, is_message)
        payload = part.get_payload() if part.is_multipart() else []
        children = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
        stack.extend((child, depth + 1, enclosed or is_message) for child in reversed(children))
    return parts


def _sort_leaf(part: Message, parts: _Parts, is_message: bool) -> None:
    ctype = part.get_content_type()
    attached = part.get_content_disposition() == "attachment" or bool(attachment_filename(part))
    if is_message or attached or ctype not in ("text/plain", "text/html"):
        parts.files.append(part)
    else:
        (parts.plain if ctype == "text/plain" else parts.html).append(part)


def _header_charset(msg: Message, declared: str | None) -> tuple[str | None, bool]:
    """The charset to read raw 8-bit header bytes in, and whether it was guessed: the body's
    declared one, else the one charset-normalizer finds for all of them together, else None
    (UTF-8, then Latin-1). ASCII declares nothing about 8-bit bytes."""
    if codec_name(declared) not in (None, "ascii"):
        return declared, False
    sample = b" ".join(
        v.encode("utf-8", "surrogateescape")
        for _, v in msg.raw_items()
        if isinstance(v, str) and not v.isascii()
    )
    guessed = guess_charset(sample) if sample else None
    return (guessed, True) if guessed else (declared, False)


def _headers(msg: Message, hint: str | None) -> tuple[tuple[str, str], ...]:
    """Every header of the outer mail in order, decoded and on one line."""
    items = msg.raw_items()
    return tuple((clean_line(unescape_8bit(k)), clean_line(decode_header_value(v, hint))) for k, v in items)


def _first(msg: Message, name: str) -> str:
    return next((str(v) for k, v in msg.raw_items() if k.lower() == name.lower()), "")


# --- addresses and ids -------------------------------------------------------------------------


def _addresses(pairs: list[tuple[str, str]]) -> tuple[Address, ...]:
    """Recipient lists as read; only what looks like a mailbox is kept."""
    found = ((clean_line(name), clean_line(addr)) for name, addr in pairs or [])
    return tuple(Address(email=a, name=n) for n, a in found if "@" in a and " " not in a)


def _ids(value: str) -> tuple[str, ...]:
    value = unescape_8bit(value)
    found = _MSGID.findall(value) or [t.strip("<>") for t in value.split() if "@" in t]
    # Capped, keeping the last ids: References lists the nearest ancestors at its end.
    return tuple(dict.fromkeys(filter(None, map(clean_line, found))))[-_MAX_IDS:]


def _message_id(msg: Message, raw: bytes) -> str:
    """The Message-ID without brackets; a mail without one gets a synthetic id from a hash of
    its bytes, so that the same mail delivered twice is still recognised (I9)."""
    found = _ids(_first(msg, "Message-ID"))
    return found[0] if found else f"{hashlib.sha256(raw).hexdigest()}@mailbot.invalid"


# --- bodies and attachments --------------------------------------------------------------------


def _attachment(part: Message, limits: ParseLimits, raw: bytes, span: tuple[int, int] | None) -> Attachment:
    ctype = part.get_content_type()
    enclosed = part.get_content_maintype() == "message"
    payload = _enclosed_bytes(part) if enclosed else decoded_payload(part, raw, span)
    payload = payload if isinstance(payload, bytes) else b""
    if len(payload) > limits.max_attachment_bytes:
        raise QuarantineError("attachment too large")
    content_id = next(iter(_ids(_first(part, "Content-ID"))), "")
    return Attachment(
        filename=safe_filename(attachment_filename(part) or _UNNAMED.get(ctype, "attachment")),
        content_type=ctype,
        payload=payload,
        content_id=content_id,
        # An image with a Content-ID that is not marked as a file is part of the HTML.
        inline=bool(content_id)
        and ctype.startswith("image/")
        and part.get_content_disposition() != "attachment",
    )


def _enclosed_bytes(part: Message) -> bytes:
    """The bytes of an enclosed message (or of a bounce's status fields)."""
    inner = part.get_payload()
    if not isinstance(inner, list):
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""
    chunks = []
    for message in (m for m in inner if isinstance(m, Message)):
        buffer = io.BytesIO()
        BytesGenerator(buffer, mangle_from_=False, policy=compat32).flatten(message)
        chunks.append(buffer.getvalue())
    return b"\n".join(chunks)
