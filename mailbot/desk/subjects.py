"""Reading a subject: the ticket reference `[PREFIX-N]`, reply prefixes, and the priority and
category tags a customer may put in a first mail. Pure functions on strings."""

from __future__ import annotations

import re

from mailbot.vocabulary import Category, Priority, values

PRIORITIES = values(Priority)
CATEGORIES = values(Category)

_REFERENCE = re.compile(r"\[\s*([A-Za-z][A-Za-z0-9]{0,15})-(\d{1,9})\s*\]")
# Re:, RE[2]:, AW:, SV:, Antw:, Fwd:, FW:, WG:, TR:, Réf: ... repeated, as mail clients stack them.
_REPLY_PREFIX = re.compile(
    r"^(\s*(re|aw|sv|antw|fwd?|wg|tr|vs|r|ref|réf|rif)(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
_TAG = re.compile(r"\[\s*([A-Za-z]+)\s*\]")
_PRIORITY_LINE = re.compile(r"^\s*(priority|prioriteit|priorité|priorite)\s*:\s*(\w+)\s*$", re.I | re.M)
_TAG_ALIASES = {"urgent": "critical", "normal": "medium", "support": "question", "feature": "suggestion"}


def find_reference(subject: str, prefix: str) -> int | None:
    """The ticket number of the first `[PREFIX-N]` tag for this product's prefix, anywhere in
    the subject. Tags of other products are not ours to follow."""
    for match in _REFERENCE.finditer(subject):
        if match.group(1).upper() == prefix.upper():
            return int(match.group(2))
    return None


def clean_subject(subject: str) -> str:
    """The subject as a ticket title: reply prefixes, reference tags and the priority/category
    tags removed, whitespace folded."""
    text = _REPLY_PREFIX.sub("", subject)
    text = _REFERENCE.sub(" ", text)
    text = _TAG.sub(lambda m: " " if _tag_value(m.group(1)) else m.group(0), text)
    text = " ".join(text.split())
    return text or "(no subject)"


def strip_references(subject: str) -> str:
    """The subject with every `[PREFIX-N]` tag removed: a refusal must not confirm a reference."""
    return " ".join(_REFERENCE.sub(" ", subject).split())


def requested_priority(subject: str, text: str) -> str | None:
    """`[high]` in the subject, else a `Priority: high` line in the body."""
    for match in _TAG.finditer(subject):
        value = _tag_value(match.group(1))
        if value in PRIORITIES:
            return value
    line = _PRIORITY_LINE.search(text)
    if line:
        value = _TAG_ALIASES.get(line.group(2).lower(), line.group(2).lower())
        if value in PRIORITIES:
            return value
    return None


def requested_category(subject: str) -> str | None:
    for match in _TAG.finditer(subject):
        value = _tag_value(match.group(1))
        if value in CATEGORIES:
            return value
    return None


def _tag_value(word: str) -> str | None:
    value = _TAG_ALIASES.get(word.lower(), word.lower())
    return value if value in PRIORITIES or value in CATEGORIES else None
