"""Attachments that travel with an outgoing mail: which stored files a mail encloses, and writing
them into the mail.

When a mail is queued, `choose` picks the files that fit within `MAILBOT_FORWARD_ATTACHMENTS_MAX`
(in the order they came, each one that still fits) and names the rest as kept back; the outbox
row keeps the ids of the chosen ones. When the row is sent, `mailbot.outgoing.drafts` looks the
files up and `mailbot.outgoing.compose` writes the mail with `write_mail` below: the text (and
HTML) first, inline images beside the HTML in a multipart/related with their Content-IDs, the
other files after it in a multipart/mixed, each base64-encoded from its file a slice at a time
into the one buffer that becomes the mail, so that a big file is in memory about once, encoded.

Names and types come from the database, where they were made safe on the way in
(`mailbot.inbound.bodies.safe_filename`); they are checked again here, since a header is only as
safe as the last thing that wrote it: a name is written as RFC 2231 parameters (percent-encoded
UTF-8, never raw), a content type that is not `type/subtype` becomes application/octet-stream,
and a Content-ID that is not a plain msg-id gets one of ours.

It leaves reading the database and deciding what the text says to others; reading the files
happens here, at the moment the mail is written.
"""

from __future__ import annotations

import binascii
import io
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from mailbot.inbound.bodies import safe_filename

_SLICE = 57 * 1024  # bytes read and encoded at a time: 1,024 base64 lines of 76 characters
_LINE_CHARS = 76  # base64 characters per line, RFC 2045's limit
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*\Z")
# A msg-id's characters, less "%": the HTML names it in a cid: URL, where "%" starts an escape.
_CONTENT_ID = re.compile(r"[A-Za-z0-9!#$&'*+/=?^_`{|}~.@-]{1,200}\Z")
_PARAM_CHUNK = 48  # characters of one RFC 2231 parameter section: lines stay under 78


class Stored(Protocol):
    """What `choose` needs of a stored attachment (an `Attachment` row)."""

    id: int
    filename: str
    size: int


@dataclass(frozen=True)
class Choice:
    """The ids of the files a mail encloses, and the files kept back (name and size)."""

    enclosed: tuple[int, ...]
    kept_back: tuple[dict[str, object], ...]


def choose(files: Iterable[Stored], limit: int) -> Choice:
    """The files that fit within `limit` bytes together, in the order they came; a file that
    does not fit is kept back, and a smaller one after it may still go."""
    enclosed: list[int] = []
    kept_back: list[dict[str, object]] = []
    room = limit
    for item in files:
        if item.size <= room:
            enclosed.append(item.id)
            room -= item.size
        else:
            kept_back.append({"name": item.filename, "size": item.size})
    return Choice(tuple(enclosed), tuple(kept_back))


@dataclass(frozen=True)
class Enclosure:
    """One file to enclose: its safe name, type, place on disk and, for an image the HTML
    shows, its Content-ID."""

    filename: str
    content_type: str
    path: Path
    content_id: str = ""
    inline: bool = False


def enclosure(filename: str, content_type: str, path: Path, content_id: str, inline: bool) -> Enclosure:
    """An Enclosure with its name, type and Content-ID made safe to write; an inline image
    whose Content-ID cannot be written gets one of ours (the HTML refers to the new one)."""
    ctype = content_type.strip().lower()
    if not _CONTENT_TYPE.match(ctype):
        ctype = "application/octet-stream"
    cid = content_id.strip()
    if not _CONTENT_ID.match(cid):
        cid = f"part.{secrets.token_hex(8)}@mailbot.invalid" if inline else ""
    return Enclosure(safe_filename(filename), ctype, path, cid, inline)


Entity = tuple[list[str], bytes]  # a text part: its header fields and its body


@dataclass(frozen=True)
class _Multipart:
    subtype: str
    parts: tuple[Entity | Enclosure | _Multipart, ...]


def write_mail(head: list[str], plain: Entity, html: Entity | None, files: Sequence[Enclosure]) -> bytes:
    """The mail: `head` (its header lines), the text part and the HTML part (made by
    `mailbot.outgoing.compose`), and `files`. Inline images go beside the HTML in a
    multipart/related (`multipart/alternative` of the text and that), the other files after it
    in a multipart/mixed; without HTML an inline image is enclosed as a file. Raises OSError
    when a file cannot be read."""
    inline = [f for f in files if f.inline] if html is not None else []
    attached = [f for f in files if f not in inline]
    body: Entity | _Multipart = plain
    if html is not None:
        shown: Entity | _Multipart = _Multipart("related", (html, *inline)) if inline else html
        body = _Multipart("alternative", (plain, shown))
    tree = _Multipart("mixed", (body, *attached)) if attached else body
    texts = plain[1] + (html[1] if html is not None else b"")
    out = io.BytesIO()
    out.write("\r\n".join(head).encode("ascii") + b"\r\n")
    _write(out, tree, texts)
    # BytesIO hands over its buffer without a copy when nothing else refers to it.
    return out.getvalue()


def _write(out: io.BytesIO, node: Entity | Enclosure | _Multipart, texts: bytes) -> None:
    if isinstance(node, Enclosure):
        _write_file(out, node)
    elif isinstance(node, _Multipart):
        boundary = _boundary(texts)
        kind = ';\r\n type="text/html"' if node.subtype == "related" else ""  # RFC 2387's root type
        out.write(f'Content-Type: multipart/{node.subtype}{kind};\r\n boundary="{boundary}"\r\n\r\n'.encode())
        for part in node.parts:
            # The CRLF before each delimiter belongs to the delimiter (RFC 2046 5.1.1).
            out.write(f"--{boundary}\r\n".encode("ascii"))
            _write(out, part, texts)
            out.write(b"\r\n")
        out.write(f"--{boundary}--\r\n".encode("ascii"))
    else:
        fields, data = node
        out.write("\r\n".join(fields).encode("ascii") + b"\r\n\r\n" + data)


def _write_file(out: io.BytesIO, item: Enclosure) -> None:
    disposition = "inline" if item.inline else "attachment"
    fields = [
        f"Content-Type: {item.content_type};{_parameter('name', item.filename)}",
        f"Content-Disposition: {disposition};{_parameter('filename', item.filename)}",
        "Content-Transfer-Encoding: base64",
    ]
    if item.content_id:
        fields.append(f"Content-ID: <{item.content_id}>")
    out.write("\r\n".join(fields).encode("ascii") + b"\r\n\r\n")
    with item.path.open("rb") as handle:
        while chunk := handle.read(_SLICE):
            out.write(_base64_lines(chunk))


def _base64_lines(chunk: bytes) -> bytes:
    """`chunk` in base64 lines of 76 characters with CRLF: encoded in one call, then cut (seven
    times faster than a call per line)."""
    encoded = binascii.b2a_base64(chunk, newline=False)
    return b"\r\n".join([encoded[i : i + _LINE_CHARS] for i in range(0, len(encoded), _LINE_CHARS)]) + b"\r\n"


def _parameter(name: str, value: str) -> str:
    """`name` as RFC 2231 sections of percent-encoded UTF-8, each on its own line
    (`filename*0*=utf-8''...`): no quoting to get wrong, nothing raw, lines kept short."""
    encoded = quote(value, safe="", encoding="utf-8", errors="replace")
    sections = []
    start = 0
    while start < len(encoded):
        end = min(start + _PARAM_CHUNK, len(encoded))
        while end < len(encoded) and "%" in encoded[end - 2 : end]:  # never split a %XX
            end -= 1
        sections.append(encoded[start:end])
        start = end
    if len(sections) <= 1:
        return f"\r\n {name}*=utf-8''{encoded}"
    lines = [f"\r\n {name}*0*=utf-8''{sections[0]}"]
    lines += [f"\r\n {name}*{n}*={section}" for n, section in enumerate(sections[1:], 1)]
    return ";".join(lines)


def _boundary(data: bytes) -> str:
    """A boundary the text does not contain ("=_" cannot occur in base64, which the files are)."""
    while True:
        boundary = f"=_mailbot_{secrets.token_hex(12)}"
        if boundary.encode() not in data:
            return boundary


def without_file_bodies(data: bytes) -> bytes:
    """The mail as the outbox keeps it once sent: every enclosed file's body left out (the file
    stays with its ticket). Otherwise each recipient's row would keep its own copy of every file:
    three engineers and a 10 MB file would add 40 MB to the database."""
    kept, position = [], 0
    for head in _FILE_PART_HEAD.finditer(data):
        end = data.find(b"\r\n--", head.end())  # base64 has no '-': the next delimiter ends it
        if end < 0:
            break
        kept += [data[position : head.end() - 2], _OMITTED]
        position = end
    kept.append(data[position:])
    return b"".join(kept)


_OMITTED = b"X-Mailbot-Omitted: the file is kept with its ticket\r\n\r\n"
# The header block of a file part as `_write_file` writes it, up to and with its blank line.
_FILE_PART_HEAD = re.compile(
    rb"Content-Disposition: (?:attachment|inline);[^\r\n]*(?:\r\n[ \t][^\r\n]*)*(?:\r\n[^\r\n]+)*\r\n\r\n"
)
