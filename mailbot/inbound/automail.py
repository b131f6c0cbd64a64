"""Which mails were written by a machine, and what a bounce says.

Small rule functions in the style of GNU Mailman's: each looks at the headers and top-level
parts of a parsed mail (`email.message.Message`, as built by `mailbot.inbound.parse`) and answers a short
reason, or "" when it does not apply. `classify` returns the first reason; a non-empty reason
means the mail must never get an automatic answer (RFC 3834). `read_bounce` pulls the original
Message-ID and the failed recipients out of a delivery status notification (RFC 3464).

Reasons, most specific first: `own-loop`; `bounce:failed` and `bounce:delayed` (the only ones
that make `ParsedMail.bounce` true); `auto-submitted:<value>`; `precedence:<value>`; the
auto-reply header's name (`x-autoreply`, `x-apple-action`, ...); `x-auto-response-suppress`;
`report:<type>` (read receipts, abuse reports); `list-server`; `auto-reply-subject`; and
`moderation-notice` (a list holding a post for its moderator); and `noreply-sender` for
mailer-daemon, no-reply and role addresses. `detect` also names which detector fired: flufl.bounce
(GNU Mailman's bounce detectors, e.g. `flufl.bounce: Postfix`) for the bounces it knows, else the
mailbot rule (`mailbot: subject rule`), so the ledger can say why a mail was taken for a machine's.

flufl.bounce is asked only about mail whose envelope or sender is a machine's, or whose text opens
like a delivery report: Mailman runs it only on mail to a bounce address, and some of its
heuristics would take a person's mail that quotes a bounce, or lists addresses, for one. A mail
forwarded or answered by a person ("Fwd: Returned mail" with their own text) is never a bounce.

What it leaves to others: this module only describes the mail. Whether an automatic mail opens a
ticket, is attached to one, or is only logged, and which acknowledgement a list mail suppresses,
is the router's decision. A forwarded message (message/rfc822) is never looked into, except for
the returned original inside a bounce.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

from mailbot.inbound import ndr
from mailbot.inbound.mimeview import first as _first
from mailbot.inbound.mimeview import part_text as _part_text
from mailbot.inbound.mimeview import report_type as _report_type
from mailbot.inbound.mimeview import sender_local_part as _sender_local_part
from mailbot.inbound.mimeview import subject as _subject
from mailbot.inbound.mimeview import token as _token
from mailbot.inbound.mimeview import top_parts as _top_parts
from mailbot.inbound.mimeview import values as _values
from mailbot.inbound.ndr import Bounce

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

# A person's answer or forward, in the languages mail clients write it: never a report itself.
_PERSON_PREFIX = re.compile(
    r"^\s*(?:re|aw|sv|vs|antw|wg|fwd?|tr|rv|doorst|enc|i)\s*(?:\[\d+\])?\s*:", re.IGNORECASE
)
_OPENING = 65536  # how much of the first text part the text rules read (SES's JSON can be long)

# A list server holding a post for its moderator (Mailman 2 and 3, Sympa, Google Groups).
_MODERATION = re.compile(
    r"awaits\s+moderator\s+approval|(?:is\s+)?(?:being\s+)?held\s+(?:for|until\s+the\s+list)\s+moderat"
    r"|awaiting\s+moderat(?:or|ion)|wartet\s+auf\s+(?:die\s+)?(?:Freigabe|Genehmigung|Moderation)"
    r"|en\s+attente\s+(?:de\s+)?(?:mod[ée]ration|validation|l'approbation\s+du\s+mod[ée]rateur)",
    re.IGNORECASE,
)
_LIST_ROBOT = re.compile(
    r"(?:.+-(?:owner|request|bounces|admin)|mailman|sympa|listserv|majordomo)(?:\+.*)?", re.IGNORECASE
)

_DELAY_SUBJECT = re.compile(
    r"\bdelay(?:ed)?\b|still\s+being\s+retried|will\s+(?:be\s+)?retr(?:y|ied)"
    r"|warning:\s+could\s+not\s+send|verz[öo]gert",
    re.IGNORECASE,
)

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
    `find_bounce` says which detector recognised it."""
    found = find_bounce(msg)
    return f"bounce:{_kind_of(msg, found)}" if found else ""


def find_bounce(msg: Message) -> ndr.Finding | None:
    """Which detector takes `msg` for a delivery report, or None.

    Mail with a report's own marks (a DSN, X-Failed-Recipients, a mailer-daemon sender or
    return path, an empty return path on anything but an auto-reply), or from an address no
    person reads, is shown to flufl.bounce, whose detector is named when one recognises it; then
    to mailbot's rules. Other mail is a report only when its text opens like one, and never
    when a person forwards or answers it ("Fwd: Returned mail" with their own words)."""
    own = _report_marks(msg)
    if not own and (_written_by_person(msg) or _auto_reply(msg)):
        return None
    text = _opening_text(msg)
    by_text = ndr.text_reports_failure(text)
    if own:
        recipients = by_text.recipients if by_text else ()
        return ndr.scan_with_library(msg) or ndr.Finding(f"mailbot: {own}", recipients=recipients)
    if by_text is None and not noreply_sender(msg):
        return None
    return ndr.scan_with_library(msg) or ndr.ses_notification(text) or by_text


def _report_marks(msg: Message) -> str:
    """The name of mailbot's rule that sees a delivery report's own marks, or ""."""
    if _report_type(msg) == "delivery-status" or _values(msg, "X-Failed-Recipients"):
        return "DSN rule"
    if _sender_local_part(msg) in _BOUNCE_SENDERS:
        return "sender rule"
    if any(p.get_content_type() == "message/delivery-status" for p in _top_parts(msg)):
        return "DSN rule"
    if _values(msg, "Return-Path"):
        path = _first(msg, "Return-Path").replace(" ", "")
        _, addr = email.utils.parseaddr(path)
        machine = path in ("<>", "") or addr.rpartition("@")[0].lower() in _BOUNCE_SENDERS
        if machine and not _auto_reply(msg):  # RFC 3834 auto-replies use an empty one too
            return "return-path rule"
    return ""


def _looks_like_bounce(msg: Message) -> bool:
    return bool(_report_marks(msg))


def _auto_reply(msg: Message) -> bool:
    return bool(auto_submitted(msg) or autoreply_headers(msg) or vacation_subject(msg))


def _written_by_person(msg: Message) -> bool:
    """A person's forward or answer ("Fwd: Returned mail", "Re: ..."), by its subject."""
    return _PERSON_PREFIX.match(_subject(msg)) is not None


def _opening_text(msg: Message) -> str:
    """The start of the first text part outside any enclosed message: where a report says
    what happened."""
    for part in _top_parts(msg):
        if part.get_content_type() == "text/plain" and part.get_content_disposition() != "attachment":
            return _part_text(part)[:_OPENING]
    return ""


def _kind_of(msg: Message, found: ndr.Finding) -> str:
    return "delayed" if found.delayed and not _values(msg, "X-Failed-Recipients") else _bounce_kind(msg)


def _bounce_kind(msg: Message) -> str:
    actions = ndr.status_actions(msg)
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


def moderation_notice(msg: Message) -> str:
    """A list server holding a post for its moderator ("Your message to X awaits moderator
    approval"): by its subject, or by its text when a list robot sent it."""
    if _written_by_person(msg):
        return ""
    robot = _LIST_ROBOT.fullmatch(_sender_local_part(msg)) is not None
    if _MODERATION.search(_subject(msg)) or (robot and _MODERATION.search(_opening_text(msg)[:2000])):
        return "moderation-notice"
    return ""


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
    moderation_notice,
    vacation_subject,
    bounce_subject,
    noreply_sender,
)
"""In order: the most specific reason first, subject guesses last."""


_RULE_NAMES: dict[Rule, str] = {
    bounce_subject: "subject rule",
    vacation_subject: "subject rule",
    noreply_sender: "sender rule",
}


@dataclass(frozen=True)
class Verdict:
    """Why a mail is automatic (`reason`, "" for a person's mail) and which detector said so:
    `flufl.bounce: <its detector>` or `mailbot: <rule>`."""

    reason: str = ""
    detector: str = ""


def detect(msg: Message, rules: tuple[Rule, ...] = RULES) -> Verdict:
    """The first rule that finds `msg` automatic, and the detector behind it."""
    for rule in rules:
        if rule is bounce:
            found = find_bounce(msg)
            if found is not None:
                return Verdict(f"bounce:{_kind_of(msg, found)}", found.detector)
            continue
        reason = rule(msg)
        if reason:
            name = _RULE_NAMES.get(rule) or rule.__name__.replace("_", " ") + " rule"
            return Verdict(reason, f"mailbot: {name}")
    return Verdict()


def classify(msg: Message, rules: tuple[Rule, ...] = RULES) -> str:
    """The first reason why `msg` is automatic, or "" for mail written by a person."""
    return detect(msg, rules).reason


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


def read_bounce(msg: Message) -> Bounce:
    """The original Message-ID and the failed recipients of a bounce (`ndr.read_report`)."""
    return ndr.read_report(msg, find_bounce(msg))
