"""`python -m bench.corpus_rates [CORPUS]`: how much of the real-world corpus mailbot reads right.

Prints one row per measure, each as matched / total and a percentage:
- bounces: sisimai's delivery failures and delays (`EXPECTED.sisimai.dev.json`, less vacation
  replies, ARF abuse reports, and the feedback and delivery notices that are not failures) that
  `mailbot.parse` marks as a bounce;
- auto-replies: sisimai's vacation replies and abuse reports marked automatic and not a bounce;
- quote trimming: the reply bodies of email_reply_parser (GitHub), email-reply-parser (Zapier)
  and mail-parser-reply (alfonsrv) whose visible text is what a person would expect (`trim_ok`);
- senders: `bench.rate_senders.sender_subject_rate` when that module exists, else "n/a".

CORPUS defaults to $MAILBOT_CORPUS, else ../shared/corpus beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mailbot.errors import QuarantineError
from mailbot.inbound.parse import parse_mail
from mailbot.inbound.trim import visible_text

REPLY_BODY_FOLDERS = ("email_reply_parser-github", "email-reply-parser-zapier", "mail-parser-reply-alfonsrv")
TARGETS = {"bounces": 0.99, "auto-replies": 0.99, "quote trimming": 0.90}
_NOT_FAILURES = frozenset({"vacation", "feedback", "delivered"})

# Where quoted history starts, for the check only: a `>` line, a forward or "original message"
# separator, a line ending like a quote header, or two header lines in a row (From/Sent/To/
# Subject in the corpus's languages). Broader and simpler than mailbot.trim on purpose: it marks
# the history, it does not have to find the reply.
_QUOTED = re.compile(r"^\s*>")
_SEPARATOR = re.compile(
    r"^\s*[-_]{2,}\s*(?:original message|forwarded message|oprindelig meddelelse|ursprüngliche nachricht"
    r"|oorspronkelijk bericht|message d'origine|ursprungligt meddelande|wiadomość oryginalna)",
    re.IGNORECASE,
)
_HEADER_END = re.compile(
    r"\b(?:wrote|schrieb|a écrit|skrev|schreef|napisał\(a\)|napisał|escribió|scrisse|написал|пишет)\b.*:\s*$"
    r"|^\s*\d{4}[/年.-].*(?:<[^>]+>|@)[^:]*:\s*$",
    re.IGNORECASE,
)
_RULE = re.compile(r"^\s*(?:[-_=*]\s*){5,}$")
_HEADER_OPENER = re.compile(r"^\s*(?:on|am|le|op|den|d\.|w dniu|el|il|em|\d{4}[/年.-])\b", re.IGNORECASE)
_SIGNATURE = re.compile(r"^--\s*$")
_SENT_FROM = re.compile(
    r"^(?:sent from|sent with|get outlook|von meinem|envoyé de|verzonden met)\b", re.IGNORECASE
)
_HEADER_FIELD = re.compile(
    r"^\s*\*?(?:from|sent|to|cc|subject|date|von|gesendet|an|betreff|van|verzonden|aan|onderwerp|de|envoyé"
    r"|à|objet|fra|sendt|til|emne|från|skickat|till|ämne|od|wysłano|do|temat)\*?\s?:",
    re.IGNORECASE,
)


@dataclass
class Rate:
    matched: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, ok: bool, name: str) -> None:
        self.total += 1
        self.matched += ok
        if not ok:
            self.misses.append(name)

    @property
    def share(self) -> float:
        return self.matched / self.total if self.total else 0.0


def machine_rates(corpus: Path) -> tuple[Rate, Rate]:
    """(bounces recognised as bounces, auto-replies and abuse reports recognised as automatic
    and not as bounces) over sisimai's mails."""
    folder = corpus / "sisimai"
    expected = json.loads((folder / "EXPECTED.sisimai.dev.json").read_text(encoding="utf-8"))
    bounces, replies = Rate(), Rate()
    for name, facts in sorted(expected.items()):
        reason = facts["recipients"][0]["reason"]
        try:
            msg = parse_mail((folder / name).read_bytes())
            bounce, automatic = msg.bounce, bool(msg.automatic)
        except QuarantineError:
            bounce = automatic = False
        if reason == "vacation" or facts["engine"] == "ARF":
            replies.add(automatic and not bounce, name)
        elif reason not in _NOT_FAILURES:
            bounces.add(bounce, name)
    return bounces, replies


def history_start(lines: list[str]) -> int:
    """Index of the first line of quoted history (len(lines) when there is none): the first
    marker, with a quote header wrapped over the lines above it ("On ..., Name" / "<address>" /
    "wrote:") and a separator line above a header block."""
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        above = index
        while above > max(0, index - 2) and lines[above - 1].strip() and not _QUOTED.match(lines[above - 1]):
            above -= 1
        if line.rstrip().endswith(":") and _HEADER_END.search(" ".join(lines[above : index + 1])):
            return _wrapped_header_start(lines, index)
        if (
            _QUOTED.match(line)
            or _SEPARATOR.match(line)
            or (_HEADER_FIELD.match(line) and _HEADER_FIELD.match(following))
        ):
            while index > 0 and (not lines[index - 1].strip() or _RULE.match(lines[index - 1])):
                index -= 1
            return index
    return len(lines)


def _wrapped_header_start(lines: list[str], index: int) -> int:
    start = index
    while (
        start > index - 2
        and start > 0
        and lines[start - 1].strip()
        and not _HEADER_OPENER.match(lines[start])
    ):
        start -= 1
    return start


def trim_ok(body: str) -> bool:
    """A person's expectation of the visible text of a reply `body`, made precise:
    - top-posted (the reply above the history): the visible text keeps every line of the reply
      but its signature (what follows a "-- " line, and a closing "Sent from my ..." line: see
      mailbot.trim) and shows no line of the history (lines of the history that also occur in
      the reply, such as a bare "Thanks", are not held against it);
    - bottom-posted (the body opens with the history): the visible text shows no quoted (`>`)
      line;
    - no history at all: the visible text keeps the first line."""
    lines = body.replace("\r\n", "\n").split("\n")
    shown = {line.strip() for line in visible_text(body).split("\n") if line.strip()}
    if not shown:
        return False
    start = history_start(lines)
    reply = [line.strip() for line in lines[:start] if line.strip()]
    if not reply:
        return not any(_QUOTED.match(line) for line in shown)
    history = {line.strip() for line in lines[start:] if line.strip()} - set(reply)
    return set(_without_signature(reply)) <= shown and not (shown & history)


def _without_signature(reply: list[str]) -> list[str]:
    for index, line in enumerate(reply):
        if index and (line == "--" or _SIGNATURE.match(line)):
            return reply[:index]
    return reply[:-1] if len(reply) > 1 and _SENT_FROM.match(reply[-1]) else reply


def trim_rate(corpus: Path) -> Rate:
    rate = Rate()
    for folder in REPLY_BODY_FOLDERS:
        for path in sorted((corpus / folder).rglob("*.txt")):
            body = path.read_bytes().decode("utf-8", "replace")
            rate.add(trim_ok(body), str(path.relative_to(corpus)))
    return rate


def sender_rate(corpus: Path) -> Rate | None:
    """The sender and subject row, from bench/rate_senders.py when it exists."""
    try:
        from bench.rate_senders import sender_subject_rate  # type: ignore[import-not-found]
    except ImportError:
        return None
    matched, total = sender_subject_rate(corpus)
    return Rate(matched, total)


def rates(corpus: Path) -> dict[str, Rate | None]:
    bounces, replies = machine_rates(corpus)
    return {
        "bounces": bounces,
        "auto-replies": replies,
        "quote trimming": trim_rate(corpus),
        "senders and subjects": sender_rate(corpus),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus_rates", description=__doc__.split("\n")[0])
    beside = Path(__file__).resolve().parents[2] / "shared" / "corpus"
    default = os.environ.get("MAILBOT_CORPUS") or str(beside)
    parser.add_argument("corpus", nargs="?", default=default)
    parser.add_argument("--misses", action="store_true", help="list what was not matched")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"corpus not found at {corpus}", file=sys.stderr)
        return 66  # EX_NOINPUT
    for name, rate in rates(corpus).items():
        if rate is None:
            print(f"{name:22} n/a")
            continue
        target = f"  (target {TARGETS[name]:.0%})" if name in TARGETS else ""
        print(f"{name:22} {rate.matched:4} / {rate.total:<4} {rate.share:7.1%}{target}")
        if args.misses:
            print("".join(f"    miss: {miss}\n" for miss in rate.misses), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
