"""Big mails parsed a slice at a time. The standard library makes some ten copies of a big
attachment while parsing and decoding it; here long base64 bodies are kept out of the parse tree
(a marker line each) and decoded from the raw bytes in slices, and the rest is fed to the parser
in slices too. Anything unusual falls back to the standard library's own way, defects and all.
Used by `mailbot.inbound.parse`."""

from __future__ import annotations

import binascii
import hashlib
import io
import re
from email.feedparser import BytesFeedParser
from email.message import Message

from mailbot.inbound.bodies import attachment_filename

MiB = 1024 * 1024
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FEED_SLICE = 1 * MiB  # big mails are parsed, and big attachments decoded, a slice at a time
_SPLICE_FROM = 1 * MiB  # base64 bodies longer than this are kept out of the parse tree
_DASH_LINE = re.compile(rb"(?m)^--")
_BASE64_LINES = re.compile(rb"[A-Za-z0-9+/=\r\n]*")
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/]*")
_BASE64_END = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
Spans = dict[int, tuple[int, int]]  # id of a part -> where its base64 text is in the raw mail


def parse_tree(head: bytes, raw: bytes, cut: int) -> tuple[Message, Spans]:
    """The MIME tree of `head + raw[cut:]`, and the big base64 bodies that were kept out of it.

    The standard library turns every line of a body into an object before joining them: ten
    times a big attachment's size in memory. So long runs of base64 lines are fed to it as one
    marker line each, and decoded from the raw bytes later (`spliced`: id of the part -> its
    base64 text). Where a marker does not end up as the whole body of an attachment outside
    any enclosed message, the mail is parsed again whole, the standard library's way.
    `spliced` maps the id of a part to where its base64 text is in `raw`."""
    view = memoryview(raw)
    runs = _base64_bodies(raw, cut) if len(raw) - cut > _SPLICE_FROM else []
    if runs:
        token = hashlib.sha256(view[cut : runs[0][0]]).hexdigest()[:16]  # not in the mail: hashes precede it
        markers: dict[str, tuple[int, int]] = {}
        pieces: list[bytes | memoryview] = [head]
        position = cut
        for number, (start, end) in enumerate(runs):
            marker = f"mailbot-splice-{token}-{number}"
            markers[marker] = (start, end)
            pieces += [view[position:start], marker.encode() + b"\r\n"]
            position = end
        msg = _message_from_slices([*pieces, view[position:]])
        spliced = _spliced_parts(msg, markers, f"mailbot-splice-{token}-")
        if spliced is not None:
            return msg, spliced
    return _message_from_slices([head, view[cut:]]), {}


def _base64_bodies(raw: bytes, cut: int) -> list[tuple[int, int]]:
    """Where raw[cut:] has a body of more than _SPLICE_FROM bytes that looks like base64: the
    text between a part's blank line and the next line that starts with "--" (a boundary, or
    else the parse shows it was none) holds nothing but base64 characters and line ends."""
    edges = [m.start() for m in _DASH_LINE.finditer(raw, cut)] + [len(raw)]
    found, start = [], cut
    for end in edges:
        if end - start > _SPLICE_FROM:
            blank = _HEADER_END.search(raw, start, end)
            body = blank.end() if blank else end
            if end - body > _SPLICE_FROM and _BASE64_LINES.fullmatch(raw, body, end):
                found.append((body, end))
        start = end
    return found


def _message_from_slices(pieces: list[bytes | memoryview]) -> Message:
    """`email.message_from_bytes(b"".join(pieces))`, fed a slice at a time. Given the whole mail
    at once, the standard library copies it as text, then again at four bytes a character
    (io.StringIO): a 34 MB mail took 265 MB to parse."""
    parser = BytesFeedParser()  # compat32, as message_from_bytes
    for piece in pieces:
        for start in range(0, len(piece), _FEED_SLICE):
            parser.feed(bytes(piece[start : start + _FEED_SLICE]))
    return parser.close()


def _spliced_parts(msg: Message, markers: dict[str, tuple[int, int]], prefix: str) -> Spans | None:
    """Part id -> base64 text, when every marker is the whole body of an attachment that is not
    inside an enclosed message (whose bytes are written out again); else None."""
    found: Spans = {}
    stack: list[tuple[Message, bool]] = [(msg, False)]
    while stack:
        part, enclosed = stack.pop()
        payload = part.get_payload()
        if isinstance(payload, list):
            inner = enclosed or part.get_content_maintype() == "message"
            stack.extend((child, inner) for child in payload if isinstance(child, Message))
        elif isinstance(payload, str) and prefix in payload:
            marker = payload.strip()
            if enclosed or marker not in markers or not _may_splice(part):
                return None
            found[id(part)] = markers.pop(marker)
    return found if not markers else None  # one left in a preamble, an epilogue, a header


def _may_splice(part: Message) -> bool:
    ctype = part.get_content_type()
    attached = part.get_content_disposition() == "attachment" or bool(attachment_filename(part))
    return (
        str(part.get("content-transfer-encoding", "")).strip().lower() == "base64"
        and part.get_content_maintype() not in ("message", "multipart")
        and ctype != "text/rfc822-headers"
        and (attached or ctype not in ("text/plain", "text/html"))
    )


def decoded_payload(part: Message, raw: bytes, span: tuple[int, int] | None) -> bytes | None:
    """`part.get_payload(decode=True)`; a big, well-formed base64 body is decoded slice by slice,
    since the standard library holds four copies of it at once (an ASCII copy, its lines, their
    join, the result). Anything unusual takes the standard library's way, defects and all."""
    if span is not None:  # kept out of the tree by parse_tree: raw[span] is its base64 text
        decoded = _base64_in_slices(raw, *span)
        if decoded is not None:
            return decoded
        part.set_payload(raw[span[0] : span[1]].decode("ascii"))
    body = part.get_payload()
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if isinstance(body, str) and len(body) > _FEED_SLICE and cte == "base64" and body.isascii():
        data = body.encode("ascii")
        decoded = _base64_in_slices(data, 0, len(data))
        if decoded is not None:
            return decoded
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else None


def _base64_in_slices(data: bytes, start: int, stop: int) -> bytes | None:
    """Standard base64 in lines (what every mailer writes) in data[start:stop], decoded a slice
    at a time; None when the text holds anything else, or its length is not a multiple of 4."""
    out = io.BytesIO()
    carry = b""
    while start < stop:
        end = data.find(b"\n", min(start + _FEED_SLICE, stop), stop)
        end = stop if end < 0 else end + 1
        text = carry + data[start:end].replace(b"\r", b"").replace(b"\n", b"")
        last = end == stop
        if not (_BASE64_END if last else _BASE64_TEXT).fullmatch(text):
            return None
        whole = len(text) if last else len(text) // 4 * 4
        if last and whole % 4:
            return None
        out.write(binascii.a2b_base64(text[:whole]))
        carry, start = text[whole:], end
    return out.getvalue()
