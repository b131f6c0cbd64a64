"""A generated corpus that looks like a support mailbox: customers opening tickets and replying,
engineers answering, in plain text and HTML, some with attachments and non-ASCII subjects.

Deterministic (seeded), so the floor and mailbot read the very same bytes, run after run. The
mix, per the benchmark's brief:
- half of the mails are replies carrying the ticket's reference (`Re: [VISI-12] ...`, with
  In-Reply-To and References), three in four from the customer, one in four from an engineer;
- about 40 % have an HTML alternative, 5 % are HTML only;
- a fifth carry one 50-200 KB attachment (PDF, PNG, ZIP, log), unless `attachments=False`;
- a third have a non-ASCII subject, RFC 2047-encoded (French, Dutch, German, Japanese,
  Czech), and some of their bodies are non-ASCII too.

Ticket numbers: the n-th new mail of the corpus becomes VISI-n when mailbot reads the mails
in order, so replies name tickets that exist by the time they are read.
"""

from __future__ import annotations

import email.policy
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

SUPPORT = "visi.support@produsoft.test"
PREFIX = "VISI"
ENGINEERS = ("erin@produsoft.test", "frank@produsoft.test")
BOARD = ("bob@produsoft.test",)
_POLICY = email.policy.SMTP

_TOPICS = [
    "Licence server does not start",
    "Crash when exporting to STEP",
    "Slow rendering of large assemblies",
    "Question about floating licences",
    "Toolpath preview shows wrong stock",
    "Installer fails on Windows 11",
    "Postprocessor outputs wrong feed rates",
    "Cannot open file from version 2024",
    "Network licence timeout",
    "Feature request: batch export",
    "Error 0x80040154 at start-up",
    "Update to 2026.3 broke our macros",
]
_NON_ASCII_TOPICS = [
    "Problème de licence après la mise à jour",
    "Fehler beim Öffnen der Baugruppe – dringend",
    "Vraag over de licentieserver (ë, ï)",
    "ライセンスサーバーが起動しません",
    "Chyba při exportu – prosím o pomoc",
    "Crédit de support épuisé ?",
    "Größenänderung funktioniert nicht",
    "Ошибка при запуске программы",
]
_WORDS = (
    "the licence server stops after a few minutes and the log shows a timeout while the client "
    "keeps retrying we restarted the service twice and checked the firewall rules but nothing "
    "changed our engineers cannot work this afternoon please advise which version fixes this "
    "issue and whether a patch is available for the current release"
).split()
_NON_ASCII_WORDS = "déjà über größe naïve façade ça été prüfen geöffnet français Übersicht".split()
_ATTACHMENT_TYPES = [
    ("report.pdf", "application/pdf"),
    ("screenshot.png", "image/png"),
    ("logs.zip", "application/zip"),
    ("licence-server.log", "text/plain"),
]


@dataclass(frozen=True)
class CorpusMail:
    raw: bytes
    message_id: str
    sender: str
    is_reply: bool
    has_attachment: bool


@dataclass
class _Ticket:
    number: int
    requester: str
    subject: str
    message_id: str


def customers(count: int) -> list[str]:
    return [f"customer{i:05d}@client{i % 97:02d}.test" for i in range(count)]


def customer_count(mails: int) -> int:
    """Enough customers that none reaches mailbot's daily cap of 40 automatic mails."""
    return max(50, mails // 4)


def generate(
    count: int, *, seed: int = 6, attachments: bool = True, start_number: int = 1, tag: str = "m"
) -> Iterator[CorpusMail]:
    """`count` mails in the order they arrive. `start_number` is the ticket number the first new
    mail will get (for a corpus appended to a mailbox that already has tickets)."""
    rng = random.Random(seed)
    people = customers(customer_count(count))
    opened: list[_Ticket] = []
    when = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    for index in range(count):
        when += timedelta(seconds=rng.randint(5, 300))
        message_id = f"{tag}{seed}.{index}@mua.client.test"
        reply = bool(opened) and rng.random() < 0.5
        with_file = attachments and rng.random() < 0.2
        if reply:
            ticket = rng.choice(opened)
            sender = ticket.requester if rng.random() < 0.75 else rng.choice(ENGINEERS)
            subject = f"Re: [{PREFIX}-{ticket.number}] {ticket.subject}"
            body = _paragraphs(rng, 1, 3) + "\n\n" + _quoted(ticket.subject, ticket.requester, rng)
            raw = _mail(
                rng, sender, subject, body, message_id, when, parent=ticket.message_id, with_file=with_file
            )
        else:
            sender = rng.choice(people)
            subject = rng.choice(_NON_ASCII_TOPICS if rng.random() < 1 / 3 else _TOPICS)
            subject = f"{subject} ({index})"
            body = _paragraphs(rng, 2, 6)
            raw = _mail(rng, sender, subject, body, message_id, when, with_file=with_file)
            opened.append(_Ticket(start_number + len(opened), sender, subject, message_id))
        yield CorpusMail(raw, message_id, sender, reply, with_file)


def big_mail(attachment_bytes: int, *, seed: int = 25) -> bytes:
    """One customer mail with one attachment of `attachment_bytes` random bytes (base64 makes
    the mail about 1.37 times that)."""
    rng = random.Random(seed)
    msg = _headers(
        customers(1)[0],
        "Full crash dump of the licence server",
        f"big{seed}@mua.client.test",
        datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )
    msg.set_content("The crash dump is attached, as asked.\n\nDana\n")
    msg.add_attachment(
        rng.randbytes(attachment_bytes),
        maintype="application",
        subtype="octet-stream",
        filename="licence-server.dmp",
    )
    return msg.as_bytes(policy=_POLICY)


def live_mail(sender: str, message_id: str, index: int) -> bytes:
    """A customer's new request, as the IDLE latency case sends one at a time."""
    rng = random.Random(index)
    subject = f"{rng.choice(_NON_ASCII_TOPICS if index % 3 == 0 else _TOPICS)} (live {index})"
    return _mail(rng, sender, subject, _paragraphs(rng, 2, 4), message_id, datetime.now(UTC))


def _headers(sender: str, subject: str, message_id: str, when: datetime) -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = f"{sender.split('@')[0].title()} <{sender}>"
    msg["To"] = f"Produsoft Support <{SUPPORT}>"
    msg["Subject"] = subject  # non-ASCII becomes RFC 2047 encoded words
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{message_id}>"
    return msg


def _mail(
    rng: random.Random,
    sender: str,
    subject: str,
    body: str,
    message_id: str,
    when: datetime,
    *,
    parent: str = "",
    with_file: bool = False,
) -> bytes:
    msg = _headers(sender, subject, message_id, when)
    if parent:
        msg["In-Reply-To"] = f"<{parent}>"
        msg["References"] = f"<{parent}>"
    msg["User-Agent"] = rng.choice(["Thunderbird/128.3", "Microsoft Outlook 16.0", "Apple Mail (2.3776)"])
    style = rng.random()
    if style < 0.05:  # HTML only, as some webmail sends it
        msg.set_content(_html(body), subtype="html")
    else:
        msg.set_content(body)
        if style < 0.45:
            msg.add_alternative(_html(body), subtype="html")
    if with_file:
        name, ctype = rng.choice(_ATTACHMENT_TYPES)
        size = rng.randint(50_000, 200_000)
        maintype, subtype = ctype.split("/")
        if maintype == "text":
            line = "2026-03-02 10:00:00 licsrv[1234]: lease renewal failed: timeout\n"
            msg.add_attachment((line * (size // len(line) + 1))[:size], subtype=subtype, filename=name)
        else:
            msg.add_attachment(rng.randbytes(size), maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=_POLICY)


def _paragraphs(rng: random.Random, low: int, high: int) -> str:
    paragraphs = []
    for _ in range(rng.randint(low, high)):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(20, 70))]
        if rng.random() < 0.3:
            words[rng.randrange(len(words))] = rng.choice(_NON_ASCII_WORDS)
        paragraphs.append(" ".join(words).capitalize() + ".")
    return "Hello,\n\n" + "\n\n".join(paragraphs) + "\n\nBest regards,\nA customer"


def _quoted(subject: str, who: str, rng: random.Random) -> str:
    lines = [f"> {line}" for line in _paragraphs(rng, 1, 2).splitlines()]
    return f"On Mon, 2 Mar 2026 at 10:00, {who} wrote:\n" + "\n".join(lines) + "\n"


def _html(text: str) -> str:
    paragraphs = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
    return f"<html><head><style>p {{ margin: 0 }}</style></head><body>{paragraphs}</body></html>"
