"""Which mails were written by a machine, and what a bounce says.

Small rule functions in the style of GNU Mailman's: each looks at the headers and top-level
parts of a parsed mail (`email.message.Message`, as built by `mailbot.parse`) and answers a short
reason, or "" when it does not apply. `classify` returns the first reason; a non-empty reason
means the mail must never get an automatic answer (RFC 3834). `read_bounce` pulls the original
Message-ID and the failed recipients out of a delivery status notification (RFC 3464).

Reasons, most specific first: `own-loop`; `bounce:failed` and `bounce:delayed` (the only ones
that make `InboundMessage.bounce` true); `auto-submitted:<value>`; `precedence:<value>`; the
auto-reply header's name (`x-autoreply`, `x-apple-action`, ...); `x-auto-response-suppress`;
`report:<type>` (read receipts, abuse reports); `list-server`; `auto-reply-subject`; and
`noreply-sender` for mailer-daemon, no-reply and role addresses.

What it leaves to others: this module only describes the mail. Whether an automatic mail opens a
ticket, is attached to one, or is only logged, and which acknowledgement a list mail suppresses,
is the router's decision. A forwarded message (message/rfc822) is never looked into, except for
the returned original inside a bounce.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser

LOOP_HEADER = "X-Mailbot-Loop"
"""The header mailbot puts on every mail it sends; seeing it on inbound mail means a loop."""

Rule = Callable[[Message], str]

_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-AutoReply-From", "X-Mail-Autoreply")
_PRECEDENCE_AUTO = frozenset({"bulk", "junk", "list", "auto_reply"})
_SUPPRESS_AUTO = frozenset({"all", "oof", "autoreply", "dr"})
_LIST_HEADERS = ("List-Id", "List-Unsubscribe")
_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster", "post_master"})
_NOREPLY_LOCAL = re.compile(
    r"(?:mailer-daemon|postmaster|abuse|root"
    r"|(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?)(?:[-+=_.].*)?)",
    re.IGNORECASE,
)

# Leading prefixes that vacation responders put in front of the subject they answer. Only a
# prefix followed by ":" (or nothing) counts, so "Re: out of office hours question" or
# "Out of office hours?" written by a person stays human.
_VACATION_SUBJECT = re.compile(
    r"^\s*(?:out\s+of\s+(?:the\s+)?office(?:\s+auto-?reply)?|automatic\s+reply|auto[-\s]?reply"
    r"|auto[-\s]?response|automatische\s+antwort|abwesenheitsnotiz|abwesenheit|afwezig"
    r"|automatisch\s+antwoord|r[ée]ponse\s+automatique|absence\s+du\s+bureau"
    r"|vacation\s+(?:reply|notice|auto-?reply))\s*(?::|$)",
    re.IGNORECASE,
)

# Subjects of delivery failures from servers that send neither a DSN nor a tell-tale sender.
# Last resort, like the vacation subjects.
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:able|ed)\b|undelivered\s+mail\s+returned\s+to\s+sender"
    r"|delivery\s+status\s+notification|delivery\s+(?:failure|failed|notification)"
    r"|mail\s+delivery\s+(?:failed|failure|system)|returned\s+mail\b|failure\s+notice"
    r"|non-?delivery|nondeliverable|warning:\s+could\s+not\s+send|could\s+not\s+send\s+message"
    r"|message\s+(?:not\s+delivered|delivery\s+failure)|delivery\s+has\s+failed"
    r"|unzustellbar|nicht\s+zustellbar|onbestelbaar|non\s+remis)",
    re.IGNORECASE,
)

_DELAY_SUBJECT = re.compile(
    r"\bdelay(?:ed)?\b|still\s+being\s+retried|will\s+(?:be\s+)?retr(?:y|ied)"
    r"|warning:\s+could\s+not\s+send|verz[öo]gert",
    re.IGNORECASE,
)
_SUBJECT_PREFIX = 400
_MSGID = re.compile(r"<([^<>\s\x00-\x1f]+)>")
_MSGID_LINE = re.compile(r"^\s*Message-ID:\s*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)
_QMAIL_RECIPIENT = re.compile(r"^<([^<>\s@]+@[^<>\s]+)>:\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Bounce:
    """What a bounce tells: the Message-ID of the mail that bounced (brackets stripped, "" when
    the report does not say) and the recipients that failed for good (empty for a delay)."""

    message_id: str = ""
    failed_recipients: tuple[str, ...] = ()


def _values(msg: Message, name: str) -> list[str]:
    """Every raw value of header `name`, as text (8-bit bytes become replacement characters)."""
    lname = name.lower()
    return [str(value) for key, value in msg.raw_items() if key.lower() == lname]


def _first(msg: Message, name: str) -> str:
    values = _values(msg, name)
    return values[0].strip() if values else ""


def _token(value: str) -> str:
    """The first word of a header value, lower-cased and safe to put into a log line."""
    word = re.split(r"[;,(\s]", value.strip(), maxsplit=1)[0].lower()
    return re.sub(r"[^a-z0-9_.-]", "", word)[:40]


def _sender_local_part(msg: Message) -> str:
    _, addr = email.utils.parseaddr(_first(msg, "From"))
    return addr.rpartition("@")[0].lower() if "@" in addr else addr.lower()


def _subject(msg: Message) -> str:
    """The start of the decoded subject: enough for the prefix rules, and the standard library's
    decoder is quadratic in the number of encoded words."""
    raw = _first(msg, "Subject")[:_SUBJECT_PREFIX]
    try:
        return str(make_header(decode_header(raw)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return raw


def _report_type(msg: Message) -> str:
    if msg.get_content_type() != "multipart/report":
        return ""
    return str(msg.get_param("report-type", "") or "").strip().lower()


def _top_parts(msg: Message) -> Iterator[Message]:
    """The mail and its MIME parts, never looking inside an enclosed message (message/*)."""
    stack = [msg]
    while stack:
        part = stack.pop()
        yield part
        if part.get_content_maintype() != "message":
            stack.extend(reversed(_children(part)))


def _children(part: Message) -> list[Message]:
    payload = part.get_payload() if part.is_multipart() else None
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


# --- rules -------------------------------------------------------------------------------------


def own_loop(msg: Message) -> str:
    """Our own mail came back (L6): it carries the loop header we put on everything we send."""
    return "own-loop" if _values(msg, LOOP_HEADER) else ""


def auto_submitted(msg: Message) -> str:
    """RFC 3834: any Auto-Submitted value but `no` marks machine mail."""
    value = _first(msg, "Auto-Submitted")
    if not value or _token(value) == "no":
        return ""
    return f"auto-submitted:{_token(value) or 'yes'}"


def precedence(msg: Message) -> str:
    """The old `Precedence` convention (and its X- twin) of list servers and responders."""
    for name in ("Precedence", "X-Precedence"):
        value = _token(_first(msg, name))
        if value in _PRECEDENCE_AUTO:
            return f"precedence:{value}"
    return ""


def autoreply_headers(msg: Message) -> str:
    """Headers that responders put on their own replies (osTicket's and Zammad's list, and
    iCloud's vacation marker)."""
    for name in _AUTOREPLY_HEADERS:
        values = _values(msg, name)
        if values and _token(values[0]) not in ("no", "false", "0"):
            return name.lower()
    return "x-apple-action" if _token(_first(msg, "X-Apple-Action")) == "vacation" else ""


def list_server_notice(msg: Message) -> str:
    """A notice written by the fml list server itself (loop alerts, command results): fml marks
    its own mail with X-MLServer, and the posts it distributes also carry Precedence: bulk."""
    return "list-server" if _values(msg, "X-MLServer") else ""


def auto_response_suppress(msg: Message) -> str:
    """Exchange's request not to be answered automatically (MS-OXCMAIL 2.1.3.2.20)."""
    words = {w.lower() for w in re.split(r"[\s,]+", _first(msg, "X-Auto-Response-Suppress"))}
    return "x-auto-response-suppress" if words & _SUPPRESS_AUTO else ""


def bounce(msg: Message) -> str:
    """A delivery report: `bounce:failed`, or `bounce:delayed` for a delay notice (RFC 3464).
    Seen from a DSN, X-Failed-Recipients, a mailer-daemon sender, or an empty return path that
    is not an RFC 3834 auto-reply (those use one too)."""
    return f"bounce:{_bounce_kind(msg)}" if _looks_like_bounce(msg) else ""


def _looks_like_bounce(msg: Message) -> bool:
    if _report_type(msg) == "delivery-status" or _values(msg, "X-Failed-Recipients"):
        return True
    if _sender_local_part(msg) in _BOUNCE_SENDERS:
        return True
    if any(p.get_content_type() == "message/delivery-status" for p in _top_parts(msg)):
        return True
    if _values(msg, "Return-Path") and _first(msg, "Return-Path").replace(" ", "") in ("<>", ""):
        return not (auto_submitted(msg) or autoreply_headers(msg) or vacation_subject(msg))
    return False


def _bounce_kind(msg: Message) -> str:
    actions = [
        _first(block, "Action").lower()
        for part in _top_parts(msg)
        if part.get_content_type() == "message/delivery-status"
        for block in _status_blocks(part)
    ]
    if any(a.startswith("failed") for a in actions) or _values(msg, "X-Failed-Recipients"):
        return "failed"
    if any(a.startswith("delayed") for a in actions) or _DELAY_SUBJECT.search(_subject(msg)):
        return "delayed"
    return "failed"


def other_report(msg: Message) -> str:
    """Any other multipart/report (read receipts, abuse feedback) is written by a machine."""
    kind = _report_type(msg)
    return f"report:{_token(kind) or 'unknown'}" if kind and kind != "delivery-status" else ""


def vacation_subject(msg: Message) -> str:
    """Last resort for responders that set no header: a vacation prefix on the subject."""
    return "auto-reply-subject" if _VACATION_SUBJECT.match(_subject(msg)) else ""


def bounce_subject(msg: Message) -> str:
    """Last resort for bounces without DSN or tell-tale sender: a delivery failure subject."""
    return f"bounce:{_bounce_kind(msg)}" if _BOUNCE_SUBJECT.match(_subject(msg)) else ""


def noreply_sender(msg: Message) -> str:
    """Mail from addresses no person reads (L8): never answer them."""
    _, addr = email.utils.parseaddr(_first(msg, "From"))
    return "noreply-sender" if addr and is_noreply_address(addr) else ""


RULES: tuple[Rule, ...] = (
    own_loop,
    bounce,
    auto_submitted,
    precedence,
    autoreply_headers,
    auto_response_suppress,
    other_report,
    list_server_notice,
    vacation_subject,
    bounce_subject,
    noreply_sender,
)
"""In order: the most specific reason first, subject guesses last."""


def classify(msg: Message, rules: tuple[Rule, ...] = RULES) -> str:
    """The first reason why `msg` is automatic, or "" for mail written by a person."""
    for rule in rules:
        reason = rule(msg)
        if reason:
            return reason
    return ""


def is_bounce_reason(reason: str) -> bool:
    """Whether a reason from `classify` means a delivery report (`bounce:failed`/`:delayed`)."""
    return reason.startswith("bounce:")


def is_list_mail(msg: Message) -> bool:
    """Sent through a mailing list (RFC 2919/2369). Not a reason by itself: a customer writing
    through a Google Group still opens a ticket; only the acknowledgement is suppressed."""
    return any(_values(msg, name) for name in _LIST_HEADERS)


def is_noreply_address(address: str) -> bool:
    """Whether `address` belongs to a machine or role that must never get an automatic mail
    (OTRS's SendNoAutoResponseRegExp and Zammad's send_no_auto_response_reg_exp)."""
    local = address.strip().strip("<>").rpartition("@")[0] if "@" in address else ""
    return bool(local) and _NOREPLY_LOCAL.fullmatch(local) is not None


# --- bounces -----------------------------------------------------------------------------------


def read_bounce(msg: Message) -> Bounce:
    """The original Message-ID and the failed recipients of a bounce.

    The Message-ID comes from the returned message or its headers, else In-Reply-To/References,
    else a `Message-ID:` line quoted in the text (qmail, Exim). Recipients are those whose
    Action is `failed`, plus X-Failed-Recipients; a delay notice has none.
    """
    return Bounce(message_id=_bounced_message_id(msg), failed_recipients=_failed_recipients(msg))


def _bounced_message_id(msg: Message) -> str:
    texts: list[str] = []
    for part in _top_parts(msg):
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global") and _children(part):
            found = _ids(_first(_children(part)[0], "Message-ID"))
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            found = _ids(_first(_parse_headers(part), "Message-ID"))
        else:
            if part.get_content_maintype() == "text":
                texts.append(_part_text(part))
            continue
        if found:
            return found[0]
    for name in ("In-Reply-To", "References"):
        found = _ids(_first(msg, name))
        if found:
            return found[0] if name == "In-Reply-To" else found[-1]
    quoted = _MSGID_LINE.search("\n".join(texts))
    return quoted.group(1) if quoted else ""


def _failed_recipients(msg: Message) -> tuple[str, ...]:
    found: list[str] = []
    for value in _values(msg, "X-Failed-Recipients"):
        found.extend(addr for _, addr in email.utils.getaddresses([value]) if "@" in addr)
    for part in _top_parts(msg):
        if part.get_content_type() == "message/delivery-status":
            found.extend(_failed_in_status(part))
    if not found and _looks_like_bounce(msg):
        # qmail writes no DSN, only "<user@host>:" lines before each failure.
        for part in _top_parts(msg):
            if part.get_content_type() == "text/plain":
                found.extend(_QMAIL_RECIPIENT.findall(_part_text(part)))
                break
    return tuple(dict.fromkeys(addr.strip() for addr in found))


def _failed_in_status(part: Message) -> list[str]:
    failed = []
    for block in _status_blocks(part):
        if not _first(block, "Action").lower().startswith("failed"):
            continue
        field = _first(block, "Final-Recipient") or _first(block, "Original-Recipient")
        addr = field.partition(";")[2].strip().strip("<>") if ";" in field else field.strip("<> ")
        if "@" in addr:
            failed.append(addr)
    return failed


def _status_blocks(part: Message) -> list[Message]:
    """The per-message and per-recipient field groups of a message/delivery-status part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = _part_text(part)
    return [HeaderParser().parsestr(block.strip() + "\n") for block in re.split(r"\n\s*\n", text)]


def _parse_headers(part: Message) -> Message:
    inner = _children(part)
    return inner[0] if inner else BytesHeaderParser().parsebytes(_part_bytes(part))


def _part_bytes(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _part_text(part: Message) -> str:
    return _part_bytes(part).decode("utf-8", "replace")


def _ids(value: str) -> list[str]:
    return _MSGID.findall(value)
