"""Turn a rendered mail into RFC 5322 bytes that are safe to hand to any SMTP server.

`compose(OutgoingMail) -> bytes` writes the mail as the email package's `email.policy.SMTP` would,
only about thirty times faster: CRLF line ends, header lines folded to at most 78 characters,
non-ASCII headers RFC 2047-encoded, bodies 7-bit clean (quoted-printable or base64 where needed),
a text/plain part and, when there is HTML, a multipart/alternative, with attachments around it
written by `mailbot.outgoing.enclosures`. Addresses and Message-IDs (ours, the per-ticket thread
ref, the References list) are checked and made by `mailbot.outgoing.addressing`.

Safety is the point of this module (reliability rows S5, C6, L9): every header value has its
control characters removed *before* it is written, display names are written as atoms, one quoted
string or encoded words (never raw), and an address that is not exactly one plain addr-spec raises
`ValueError`, so a caller can never be tricked into adding a header or a recipient.

It leaves to others: choosing recipients and rendering the text (`mailbot.outgoing.render`), storing the
bytes in the outbox, the envelope sender, and talking SMTP (the transport).
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from mailbot.inbound.message import Address
from mailbot.outgoing.addressing import check_address, clean_message_id, require_message_id
from mailbot.outgoing.enclosures import Enclosure, write_mail

LOOP_HEADER = "X-Mailbot-Loop"
# 7bit: non-ASCII bodies go out quoted-printable or base64, so the bytes are plain ASCII and
# pass any server, even one that does not offer 8BITMIME.
_MAX_HEADER_LINE = 78  # RFC 5322 2.1.1's "should"; also the body's line length before encoding
_MAX_PLAIN_WORD = 70  # longer words cannot be folded: they go out as encoded words
_MAX_WORD_BYTES = 45  # UTF-8 bytes per encoded word: 60 base64 characters, 72 with the markers
_WORD_START, _WORD_END = "=?utf-8?b?", "?="
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
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
_HEADER_NAME = re.compile(r"[!-9;-~]+\Z")  # printable ASCII without ':' (RFC 5322 ftext)


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
    enclosures: tuple[Enclosure, ...] = ()

    def __post_init__(self) -> None:
        if self.automatic not in AUTOMATIC_VALUES:
            raise ValueError(f"automatic must be one of {AUTOMATIC_VALUES}: {self.automatic!r}")


def clean_header_value(value: str) -> str:
    """One safe header line: control characters become spaces, whitespace runs fold to one
    space, lone surrogates (from undecodable input) become U+FFFD."""
    value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return " ".join(_HEADER_CONTROLS.sub(" ", value).split())


def compose(mail: OutgoingMail) -> bytes:
    """The mail as RFC 5322 bytes with CRLF line ends. Raises ValueError for an invalid address,
    Message-ID, loop marker, naive date, or an extra header that is malformed or one of ours."""
    if not mail.to:
        raise ValueError("a mail needs at least one recipient")
    head = [_address_field("From", (mail.sender,)), _address_field("To", mail.to)]
    if mail.cc:
        head.append(_address_field("Cc", mail.cc))
    if mail.reply_to is not None:
        head.append(_address_field("Reply-To", (mail.reply_to,)))
    head += [
        _text_field("Subject", clean_header_value(mail.subject)),
        f"Date: {format_datetime(_aware(mail.date))}",
        f"Message-ID: <{require_message_id(mail.message_id)}>",
        *_thread_fields(mail),
        *_loop_fields(mail),
    ]
    for name, value in mail.extra_headers:
        head.append(_text_field(_check_extra_header_name(name), clean_header_value(value)))
    head.append("MIME-Version: 1.0")
    if mail.enclosures:
        html = _text_part("html", mail.html) if mail.html else None
        return write_mail(head, _text_part("plain", mail.text), html, mail.enclosures)
    body = _body(mail.text, mail.html)
    return _join(head + body[0], body[1])


# --- writing the bytes -------------------------------------------------------------------------
# The mail is written directly rather than through `email.message.EmailMessage`: the email
# package re-parses every header it is given, which made composing cost about 3 ms a mail,
# more than rendering, parsing and the database together. What it did for us is done here the
# same way: header lines of at most 78 characters, folded between words; non-ASCII, an "=?" that
# a reader could take for an encoded word, and words too long to fold, as RFC 2047 encoded
# words (UTF-8, base64); display names as atoms, a quoted string or encoded words; bodies in
# 7bit, or quoted-printable or base64, whichever is shorter, as the email package chooses.
# tests/test_compose.py reads the result back with the email package.


def _address_field(name: str, addresses: Sequence[Address]) -> str:
    field = _Field(name)
    for index, address in enumerate(addresses):
        addr_spec = check_address(address.email.strip())
        display = clean_header_value(address.name)
        if display:
            field.add_phrase(display)
            addr_spec = f"<{addr_spec}>"
        field.add(addr_spec + ("," if index < len(addresses) - 1 else ""))
    return field.text()


def _text_field(name: str, value: str) -> str:
    """An unstructured field (Subject, our X- headers): plain words stay as they are, runs of
    words that need it become encoded words. `value` is already one clean line."""
    field = _Field(name)
    run: list[str] = []
    for word in value.split(" ") if value else ():
        if _plain_word(word):
            if run:
                field.add_encoded(" ".join(run))
                run = []
            field.add(word)
        else:
            run.append(word)
    if run:
        field.add_encoded(" ".join(run))
    return field.text()


def _thread_fields(mail: OutgoingMail) -> list[str]:
    fields = []
    parent = clean_message_id(mail.in_reply_to)
    if parent:
        fields.append(f"In-Reply-To: <{parent}>")
    ids = [i for i in dict.fromkeys(map(clean_message_id, mail.references)) if i]
    if ids:
        field = _Field("References")
        for message_id in ids:
            field.add(f"<{message_id}>")
        fields.append(field.text())
    return fields


def _loop_fields(mail: OutgoingMail) -> list[str]:
    marker = clean_header_value(mail.loop_marker)
    if not marker:
        # Without it our own mail could come back and be answered: refuse rather than send.
        raise ValueError("loop_marker is required")
    fields = [_text_field(LOOP_HEADER, marker)]
    if mail.automatic:
        fields.append(f"Auto-Submitted: {mail.automatic}")
        fields += [f"{name}: {value}" for name, value in _AUTOMATIC_HEADERS]
    return fields


def _plain_word(word: str) -> bool:
    return word.isascii() and len(word) <= _MAX_PLAIN_WORD and "=?" not in word


class _Field:
    """One header field, folded: whitespace-separated tokens laid out on lines of at most 78
    characters, continuation lines starting with a space."""

    def __init__(self, name: str):
        self.lines: list[str] = []
        self.line = f"{name}:"  # "" right after a fold

    def add(self, token: str) -> None:
        if self.line and len(self.line) + 1 + len(token) > _MAX_HEADER_LINE:
            # Also right after the field name: a field body may start with folding white space.
            self.lines.append(self.line)
            self.line = ""
        self.line += " " + token

    def add_phrase(self, name: str) -> None:
        """A display name: atoms as they are, else one quoted string, else encoded words."""
        if name.isascii() and "=?" not in name:
            if _ATOMS.fullmatch(name) and all(len(w) <= _MAX_PLAIN_WORD for w in name.split(" ")):
                for word in name.split(" "):
                    self.add(word)
                return
            quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
            if len(quoted) <= _MAX_PLAIN_WORD:
                self.add(quoted)
                return
        data = name.encode("utf-8", "surrogatepass")
        if len(data) <= _MAX_WORD_BYTES:
            # One word where it fits: some readers (Python's address parser among them) keep the
            # space between adjacent encoded words in a name, which RFC 2047 says to drop.
            self.add(_encoded_word(data))
        else:
            self.add_encoded(name)

    def add_encoded(self, text: str) -> None:
        """`text` as UTF-8 base64 encoded words, each filling what is left of its line. Readers
        join adjacent encoded words without the white space between them (RFC 2047 6.2)."""
        data = text.encode("utf-8", "surrogatepass")
        start = 0
        while start < len(data):
            room = _MAX_HEADER_LINE - len(self.line) - 1 - len(_WORD_START) - len(_WORD_END)
            size = min(room // 4 * 3, _MAX_WORD_BYTES)
            if size < 6 and self.line:  # not even one four-byte character: a new line
                self.lines.append(self.line)
                self.line = ""
                continue
            end = min(start + max(size, 6), len(data))
            while end < len(data) and (data[end] & 0xC0) == 0x80:  # never split a character
                end -= 1
            self.line += " " + _encoded_word(data[start:end])
            start = end

    def text(self) -> str:
        return "\r\n".join([*self.lines, self.line])


def _encoded_word(data: bytes) -> str:
    return _WORD_START + binascii.b2a_base64(data, newline=False).decode("ascii") + _WORD_END


def _body(text: str, html: str) -> tuple[list[str], bytes]:
    """The text entity: its header fields and bytes; a multipart/alternative when there is HTML."""
    plain_part = _text_part("plain", text)
    if not html:
        return plain_part
    html_part = _text_part("html", html)
    boundary = _boundary(plain_part[1], html_part[1])
    body = (
        b"".join(
            # The CRLF before each delimiter belongs to the delimiter (RFC 2046 5.1.1).
            b"--%s\r\n%s\r\n\r\n%s\r\n" % (boundary.encode(), "\r\n".join(fields).encode(), data)
            for fields, data in (plain_part, html_part)
        )
        + b"--%s--\r\n" % boundary.encode()
    )
    return [f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"'], body


def _join(head: list[str], body: bytes) -> bytes:
    return "\r\n".join(head).encode("ascii") + b"\r\n\r\n" + body


def _text_part(subtype: str, content: str) -> tuple[list[str], bytes]:
    """Header fields and CRLF body of one UTF-8 text part, encoded as the email package would."""
    lines = _clean_body(content).encode("utf-8").splitlines()
    if all(len(line) <= _MAX_HEADER_LINE for line in lines) and all(line.isascii() for line in lines):
        cte, data = "7bit", b"\r\n".join(lines) + b"\r\n"
    else:
        normal = b"\n".join(lines) + b"\n"
        # The C encoder of the standard library (the email package's own is pure Python and cost
        # a fifth of composing); it also protects a line of a lone "." from SMTP's dot rule.
        qp = binascii.b2a_qp(normal, quotetabs=False, istext=True, header=False).decode("ascii")
        if len(qp) > len(normal) * 4 // 3 + 2:  # base64 is shorter
            cte = "base64"
            crlf = b"\r\n".join(lines) + b"\r\n"
            step = _MAX_HEADER_LINE // 4 * 3
            data = b"".join(
                binascii.b2a_base64(crlf[i : i + step]).replace(b"\n", b"\r\n")
                for i in range(0, len(crlf), step)
            )
        else:
            cte, data = "quoted-printable", qp.replace("\n", "\r\n").encode("ascii")
            if not data.endswith(b"\r\n"):
                data += b"\r\n"
    fields = [f'Content-Type: text/{subtype}; charset="utf-8"', f"Content-Transfer-Encoding: {cte}"]
    return fields, data


def _boundary(*bodies: bytes) -> str:
    """A boundary no body contains ("=_" cannot occur in quoted-printable or base64)."""
    while True:
        boundary = f"=_mailbot_{secrets.token_hex(12)}"
        if not any(boundary.encode() in body for body in bodies):
            return boundary


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
