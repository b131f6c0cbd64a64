"""Delivery reports read by what they say: GNU Mailman's bounce detectors (flufl.bounce), and
mailbot's own rules for reports that the library does not know.

`scan_with_library` asks flufl.bounce's detectors in the library's own order and answers which
one recognised the mail (`flufl.bounce: Postfix`), whether it reports only a delay, and the
recipients that failed for good. `text_reports_failure` is mailbot's rule for the plain-text
reports of gateways that send no DSN ("Your message could not be delivered to the following
recipients:", "Votre message n'a pas pu être remis ..."), and `ses_notification` reads Amazon
SES's bounce notifications (JSON in a mail from no-reply@sns.amazonaws.com).

What it leaves to others: whether a mail may be a delivery report at all. flufl.bounce was made
for mail sent to a list's bounce address; asked about any mail, some of its heuristics take a
person's mail that quotes a bounce, or lists addresses between commas, for a bounce. So
`mailbot.inbound.automail` asks only about mail that a machine sent, and names the detector on the ledger.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser

from flufl.bounce import BounceDetector

from mailbot.inbound.mimeview import children as _children
from mailbot.inbound.mimeview import first as _first
from mailbot.inbound.mimeview import part_bytes as _part_bytes
from mailbot.inbound.mimeview import part_text as _part_text
from mailbot.inbound.mimeview import top_parts as _top_parts
from mailbot.inbound.mimeview import values as _values

# LLNL's detector takes any line with ", someone@host," for a bounce: a person's text, a
# notification listing addresses. Mailman only runs it on mail to a bounce address; we skip it.
_SKIPPED_DETECTORS = frozenset({"LLNL"})
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_APOSTROPHE = "['\u2019]"
# The sentence a report opens with: "Your message could not be delivered ...", in the languages
# of the gateways we have seen. The line must start with it (or with "Your message", "The mail"
# and the like): a person mentions a failed delivery in the middle of their own sentence.
_UNDELIVERED = re.compile(
    r"^\s*(?:(?:your|the|this|following|votre|le|ce|ihre|die|diese|uw|het|dit|su|el|este)?\s*"
    r"(?:following\s+)?(?:message|mail|e-?mail|courriel|nachricht|bericht|mensaje|correo)\b.{0,100}?)?"
    r"(?:could\s+not\s+be\s+delivered|was\s+not\s+delivered|has\s+not\s+been\s+delivered"
    rf"|n{_APOSTROPHE}a\s+pas\s+pu\s+(?:être|etre)\s+(?:remis|distribu[ée])"
    rf"|n{_APOSTROPHE}a\s+pas\s+(?:été|ete)\s+(?:remis|distribu[ée])"
    r"|konnte\s+nicht\s+zugestellt|kon\s+niet\s+(?:worden\s+)?(?:bezorgd|afgeleverd)"
    r"|no\s+(?:se\s+)?(?:ha\s+)?pod(?:ido|ía)\s+(?:ser\s+)?entrega)",
    re.IGNORECASE,
)
_MSGID = re.compile(r"<([^<>\s\x00-\x1f]+)>")
_MSGID_LINE = re.compile(r"^\s*Message-ID:\s*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)
_QMAIL_RECIPIENT = re.compile(r"^<([^<>\s@]+@[^<>\s]+)>:\s*$", re.MULTILINE)
# Where the returned mail's headers start in a report: a dashed line, or its From/To lines.
_RETURNED_PART = re.compile(r"^\s*(?:-{3,}|_{3,}|(?:from|to|de|von|van|à|an|aan)\s?:)", re.IGNORECASE)
_REPORT_LINES = 15  # the statement opens a report: it is among its first non-blank lines
_ADDRESS_WITHIN = 4  # ... and the failed address follows within a few lines


@dataclass(frozen=True)
class Bounce:
    """What a bounce tells: the Message-ID of the mail that bounced (brackets stripped, "" when
    the report does not say) and the recipients that failed for good (empty for a delay)."""

    message_id: str = ""
    failed_recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """What a detector read: its name, whether only temporary failures were reported (a delay
    notice), and the recipients that failed for good (valid addresses only)."""

    detector: str
    delayed: bool = False
    recipients: tuple[str, ...] = ()


def library_detectors() -> list[type[BounceDetector]]:
    """flufl.bounce's detectors, in the order its own `all_failures` runs them. Its public
    functions do not say which detector fired, so the list is read from its scanning module
    (tests/test_automail.py pins that asking them one by one agrees with `all_failures`)."""
    from flufl.bounce import _scan

    return list(getattr(_scan, "_DETECTORS", ()))


def scan_with_library(msg: Message) -> Finding | None:
    """The first of flufl.bounce's detectors that finds failed recipients in `msg`, or None."""
    for detector in library_detectors():
        if detector.__name__ in _SKIPPED_DETECTORS:
            continue
        try:
            temporary, permanent = detector().process(msg)
        except Exception:  # noqa: BLE001 - a detector's bug on a strange mail (Yale's on an
            continue  # empty From) must not hide what the next detector sees
        if temporary or permanent:
            name = f"flufl.bounce: {detector.__name__}"
            return Finding(name, delayed=not permanent, recipients=_addresses(permanent))
    return None


def text_reports_failure(text: str) -> Finding | None:
    """mailbot's rule for a gateway's plain-text report: among the first lines of `text`, one
    opens with "... message could not be delivered" (or its French, German, Dutch or Spanish),
    and an address follows on that line or within the next few, before the returned headers."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(">")]
    for index, line in enumerate(lines[:_REPORT_LINES]):
        if _UNDELIVERED.match(line):
            window = [line]
            for below in lines[index + 1 : index + 1 + _ADDRESS_WITHIN]:
                if _RETURNED_PART.match(below):
                    break
                window.append(below)
            found = _ADDRESS.findall("\n".join(window))
            if found:
                return Finding("mailbot: text rule", recipients=tuple(dict.fromkeys(found)))
    return None


def ses_notification(text: str) -> Finding | None:
    """An Amazon SES bounce notification (SNS JSON): `notificationType` Bounce, with the
    bounced recipients; a transient bounce is a delay."""
    start = text.find("{")
    if start < 0 or '"notificationType"' not in text:
        return None
    try:  # SNS puts an unsubscribe footer after the JSON
        data, _ = json.JSONDecoder(strict=False).raw_decode(text, start)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("notificationType") != "Bounce":
        return None
    details = data["bounce"] if isinstance(data.get("bounce"), dict) else {}
    bounced = details.get("bouncedRecipients", ())
    recipients = [r.get("emailAddress", "") for r in bounced if isinstance(r, dict)]
    delayed = details.get("bounceType") == "Transient"
    return Finding(
        "mailbot: Amazon SES rule", delayed=delayed, recipients=() if delayed else _addresses(recipients)
    )


def _addresses(found: Iterable[bytes | str]) -> tuple[str, ...]:
    """The valid addresses among what a detector returned (they return bytes, sometimes junk)."""
    texts = (a.decode("ascii", "replace") if isinstance(a, bytes) else str(a) for a in found)
    return tuple(sorted({t.strip().strip("<>") for t in texts if _ADDRESS.fullmatch(t.strip().strip("<>"))}))


# --- reading a report -----------------------------------------------------------------------------------


def read_report(msg: Message, finding: Finding | None) -> Bounce:
    """The original Message-ID and the failed recipients of a bounce that `finding` recognised.

    The Message-ID comes from the returned message or its headers, else In-Reply-To/References,
    else a `Message-ID:` line quoted in the text (qmail, Exim). Recipients are those whose
    Action is `failed`, plus X-Failed-Recipients; else those the detector read; else qmail's
    "<user@host>:" lines. A delay notice has none.
    """
    return Bounce(message_id=_bounced_message_id(msg), failed_recipients=_failed_recipients(msg, finding))


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


def _failed_recipients(msg: Message, finding: Finding | None) -> tuple[str, ...]:
    found: list[str] = []
    for value in _values(msg, "X-Failed-Recipients"):
        found.extend(addr for _, addr in email.utils.getaddresses([value]) if "@" in addr)
    for part in _top_parts(msg):
        if part.get_content_type() == "message/delivery-status":
            found.extend(_failed_in_status(part))
    if not found and finding is not None and not finding.delayed:
        found.extend(finding.recipients)
    if not found and finding is not None:
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


def _ids(value: str) -> list[str]:
    return _MSGID.findall(value)


def status_actions(msg: Message) -> list[str]:
    """The Action of every recipient in the mail's delivery-status parts, lower-cased."""
    return [
        _first(block, "Action").lower()
        for part in _top_parts(msg)
        if part.get_content_type() == "message/delivery-status"
        for block in _status_blocks(part)
    ]
