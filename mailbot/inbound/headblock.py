"""Repairs of a raw mail's header block before it is parsed, each one noted.

Two shapes of real mail that a strict parser misreads, so that it never reaches `From:`:
- something in front of the headers: a line such as `---- Original email message ----`, lines
  of spaces, an mbox `From ` line followed by a blank line; the junk is skipped when a normal
  header block follows it;
- header lines that lost their indentation (Exchange writes `Received:` continuations at the
  start of a line): inside the header block, a line that is not a `Name:` field but is followed
  by more fields is a continuation, and is indented.

Pure functions on bytes; `mailbot.inbound.parse` calls `repair_head` first. A mail that needs neither is
returned as it is, without a copy.
"""

from __future__ import annotations

import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD = rb"[!-9;-~]+[ \t]*:"  # a header field name (obsolete space before the colon allowed)
_FIELD_LINE = re.compile(_FIELD)
# A line inside the header block that is neither a field, a continuation nor an mbox line.
_STRAY_LINE = re.compile(rb"(?m)^(?![ \t]|" + _FIELD + rb"|From |\r?$)")
# A header block worth skipping junk for: a known field, then at least two more field lines.
_KNOWN = rb"(?i:from|to|subject|date|message-id|received|return-path|mime-version|delivered-to)[ \t]*:"
_BLOCK_START = re.compile(
    rb"(?m)^" + _KNOWN + rb"[^\n]*\n(?:[ \t][^\n]*\n)*" + _FIELD + rb"[^\n]*\n(?:[ \t][^\n]*\n)*" + _FIELD
)
_JUNK_SCAN = 4096  # junk in front is a line or a few, never a whole mail


def repair_head(raw: bytes) -> tuple[bytes, tuple[str, ...]]:
    """`raw` with junk in front skipped and unindented continuation lines indented, and a note
    for each repair made."""
    notes = []
    start = _header_start(raw)
    if start:
        lines = raw[:start].count(b"\n") or 1
        notes.append(f"skipped {lines} line(s) before the header")
        raw = raw[start:]
    fixed, count = _indent_strays(raw)
    if count:
        notes.append(f"{count} unindented header continuation line(s) joined")
    return fixed, tuple(notes)


def _header_start(raw: bytes) -> int:
    """Where the header block starts: 0 for a mail that starts with a field (or an mbox line
    directly followed by one), else the start of a header block found near the top."""
    if _FIELD_LINE.match(raw):
        return 0
    if raw.startswith(b"From "):
        line_end = raw.find(b"\n") + 1
        if line_end and _FIELD_LINE.match(raw, line_end):
            return 0
    found = _BLOCK_START.search(raw, 0, _JUNK_SCAN)
    return found.start() if found else 0


def _indent_strays(raw: bytes) -> tuple[bytes, int]:
    """Indent the stray lines of the header block that have more fields after them."""
    end = _HEADER_END.search(raw)
    if end is None:  # no blank line: where the header ends is anyone's guess, leave it
        return raw, 0
    cut = end.start()
    first = raw.find(b"\n") + 1 if raw.startswith(b"From ") else 0  # the mbox line stays
    strays = [m.start() for m in _STRAY_LINE.finditer(raw, first, cut)]
    if not strays:
        return raw, 0
    last_field = max((m.start() for m in re.finditer(rb"(?m)^" + _FIELD, raw[:cut])), default=-1)
    strays = [pos for pos in strays if pos < last_field and pos > first]
    if not strays:
        return raw, 0
    pieces, position = [], 0
    for pos in strays:
        pieces += [raw[position:pos], b" "]
        position = pos
    pieces.append(raw[position:])
    return b"".join(pieces), len(strays)
