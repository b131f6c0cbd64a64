"""Reading a standard-library `email.message.Message` the way the automatic-mail rules need:
raw header values, the decoded start of the subject, the parts of the mail without entering an
enclosed message, and a part's text.

What it leaves to others: what any of it means (`mailbot.inbound.automail`, `mailbot.inbound.ndr`). The full
parse of a mail into an `ParsedMail` is `mailbot.inbound.parse`.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message

SUBJECT_PREFIX = 400


def values(msg: Message, name: str) -> list[str]:
    """Every raw value of header `name`, as text (8-bit bytes become replacement characters)."""
    lname = name.lower()
    return [str(value) for key, value in msg.raw_items() if key.lower() == lname]


def first(msg: Message, name: str) -> str:
    """The first value of header `name`, stripped; "" when there is none."""
    found = values(msg, name)
    return found[0].strip() if found else ""


def token(value: str) -> str:
    """The first word of a header value, lower-cased and safe to put into a log line."""
    word = re.split(r"[;,(\s]", value.strip(), maxsplit=1)[0].lower()
    return re.sub(r"[^a-z0-9_.-]", "", word)[:40]


def sender_local_part(msg: Message) -> str:
    _, addr = email.utils.parseaddr(first(msg, "From"))
    return addr.rpartition("@")[0].lower() if "@" in addr else addr.lower()


def subject(msg: Message) -> str:
    """The start of the decoded subject: enough for the prefix rules, and the standard library's
    decoder is quadratic in the number of encoded words."""
    raw = first(msg, "Subject")[:SUBJECT_PREFIX]
    try:
        return str(make_header(decode_header(raw)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return raw


def report_type(msg: Message) -> str:
    if msg.get_content_type() != "multipart/report":
        return ""
    return str(msg.get_param("report-type", "") or "").strip().lower()


def top_parts(msg: Message) -> Iterator[Message]:
    """The mail and its MIME parts, never looking inside an enclosed message (message/*)."""
    stack = [msg]
    while stack:
        part = stack.pop()
        yield part
        if part.get_content_maintype() != "message":
            stack.extend(reversed(children(part)))


def children(part: Message) -> list[Message]:
    payload = part.get_payload() if part.is_multipart() else None
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def part_bytes(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def part_text(part: Message) -> str:
    return part_bytes(part).decode("utf-8", "replace")
