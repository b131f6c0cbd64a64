"""The part of a reply a person just wrote: quoted history and signature taken away.

`visible_text` keeps the newest part of a reply. It cuts at mailbot's own reply marker, at the
quote header of any language mail-parser-reply knows ("On ... wrote:", "Am ... schrieb",
"Op ... schreef", "Le ... a écrit", "-----Original Message-----"), also when the client wrapped
it over two or three lines or put dashes before it (Yahoo's "--- On ... wrote:"), at a Russian
"... написал:", at a block of three Outlook header lines in any of the languages Outlook writes
(`OUTLOOK_FIELDS`), at a trailing `>`-quoted block, and at a signature. mail-parser-reply is asked
only where the quote starts; the cut is made on the text as written, so indentation, pasted logs
and lines such as "Thanks, that worked" stay as they are.

Signatures: what follows an RFC 3676 "-- " line is not shown (a signature block repeats on every
mail). A "Sent from my iPhone" line is part of what the person sent; it is not shown when it
closes the reply (a footer the phone added), and stays when text follows it.

What it leaves to others: the whole text is kept by the caller (the ticket stores the original);
this is only the view. Commands at the top of a reply are read by the command parser, from the
text this returns.
"""

from __future__ import annotations

import re
import warnings
from functools import cache

from mailparser_reply.constants import MAIL_LANGUAGES
from mailparser_reply.parser import EmailMessage

REPLY_MARKERS = (
    "-- Reply above this line --",
    "-- Antwoord boven deze regel --",
    "-- Répondez au-dessus de cette ligne --",
)
"""The line mailbot puts at the top of its mails (en, nl, fr), as `mailbot.outgoing.render` writes it."""

# Mail clients and HTML-to-text conversion change the dashes (an escaped "\--", an en dash) or
# drop them, so the phrase alone is what is matched, at any quote depth.
_MARKER_LINE = re.compile(
    r"^[>\s]*\\?[-\u2013\u2014]*\s*(?:reply above this line|antwoord boven deze regel"
    r"|r[ée]pondez au-dessus de cette ligne)\s*[-\u2013\u2014]*\s*$",
    re.IGNORECASE,
)
# A separator line above a quote: Outlook's underscores, a dashed line, and html2text's "* * *"
# for an HTML <hr>.
_SEPARATOR = re.compile(r"^\s*(?:[_\-=*]{10,}|-+\s*original message\s*-+|(?:\*\s*){3,})\s*$", re.IGNORECASE)
# Quote headers the library does not know: Russian (Gmail, Yandex, Outlook's mobile apps).
_EXTRA_HEADER = re.compile(r"^.{0,160}\b(?:написал|написала|пишет)\s*\(?[а-я]*\)?\s*:\s*$", re.IGNORECASE)
_DASHES = re.compile(r"^-{1,3}\s+(?=\w)")  # Yahoo's "--- On ... wrote:"

OUTLOOK_FIELDS: dict[str, tuple[str, ...]] = {
    # language: the words Outlook writes for From, Sent (or Date), To, Cc and Subject
    "en": ("from", "sent", "date", "to", "cc", "subject"),
    "nl": ("van", "verzonden", "datum", "aan", "cc", "onderwerp"),
    "fr": ("de", "envoyé", "date", "à", "a", "cc", "objet"),
    "de": ("von", "gesendet", "datum", "an", "cc", "betreff"),
    "es": ("de", "enviado el", "enviado", "fecha", "para", "cc", "asunto"),
    "it": ("da", "inviato", "data", "a", "cc", "oggetto"),
    "pt": ("de", "enviado", "enviada", "data", "para", "cc", "assunto"),
    "ru": ("от", "отправлено", "дата", "кому", "копия", "тема"),
    "pl": ("od", "wysłano", "data", "do", "dw", "temat"),
    "sv": ("från", "skickat", "datum", "till", "kopia", "ämne"),
    "da": ("fra", "sendt", "dato", "til", "cc", "emne"),
    "no": ("fra", "sendt", "dato", "til", "kopi", "emne"),
    "fi": ("lähettäjä", "lähetetty", "päivämäärä", "vastaanottaja", "kopio", "aihe"),
    "cs": ("od", "odesláno", "datum", "komu", "kopie", "předmět"),
    "ja": ("差出人", "送信日時", "日付", "宛先", "cc", "件名"),
    "zh": (
        "发件人",
        "發件人",
        "寄件者",
        "发送时间",
        "發送時間",
        "寄件日期",
        "收件人",
        "收件者",
        "抄送",
        "主题",
        "主旨",
    ),
}
"""Outlook's header block per language; three such lines in a row start the quoted history."""
_OUTLOOK_LINE = re.compile(
    r"^\s*\*?(?:"
    + "|".join(sorted({re.escape(w) for ws in OUTLOOK_FIELDS.values() for w in ws}, key=len, reverse=True))
    + r")\*?\s*[:：]",
    re.IGNORECASE,
)
_OUTLOOK_BLOCK = 3
_SIGNATURE = re.compile(r"^--\s?$")
_SENT_FROM = re.compile(
    r"^\s*(?:sent from my |sent from mail for |get outlook for |von meinem .* gesendet"
    r"|gesendet von meinem |verzonden (?:vanaf|met) mijn |envoy[ée] (?:de|depuis) mon )",
    re.IGNORECASE,
)
# The header patterns backtrack (quadratic in the line length): a quote header is never longer
# than this, nor further down than that.
_MAX_HEADER_LINE = 200
_MAX_SCAN = 50_000


def strip_reply_marker(text: str) -> str:
    """Everything above mailbot's reply marker line; the text unchanged when there is none.

    When the client quoted the marker (`> -- Reply above this line --`), the quote header it
    wrote just above ("On ..., Support wrote:") goes too: it belongs to the quoted history.
    """
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if _MARKER_LINE.match(line):
            kept = _strip_blank_tail(lines[:index])
            if line.lstrip().startswith(">") and kept and kept[-1].rstrip().endswith(":"):
                kept = _strip_blank_tail(kept[:-1])
            return "\n".join(kept).rstrip()
    return text


def visible_text(text: str) -> str:
    """The newest part of a reply. Never "" for a non-empty text: when trimming would leave
    nothing (a mail that is all quote), the stripped original is returned."""
    original = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not original:
        return ""
    lines = strip_reply_marker(original).split("\n")
    visible = _trim(lines)
    if not visible:
        # A reply written below the quote header (bottom-posting, answers between quoted
        # lines): what follows the header, without the quoted lines, is the reply.
        _, header_end = _header_span(lines)
        visible = _trim(lines[header_end:]) if header_end else ""
    return visible or original


def _trim(lines: list[str]) -> str:
    lines = lines[: _quote_start(lines)]
    lines = _cut_signature(lines)
    lines = [line for line in lines if not line.lstrip().startswith(">")]
    visible = "\n".join(_strip_blank_tail(lines)).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", visible) if visible.strip() else ""


def _quote_start(lines: list[str]) -> int:
    """Index of the first line of quoted history (len(lines) when there is none)."""
    start = min(_header_span(lines)[0], _trailing_quote(lines), _outlook_block(lines), _wrapped_header(lines))
    # Outlook puts a line of underscores above its header block; Thunderbird a dashed one.
    while start > 0 and (not lines[start - 1].strip() or _SEPARATOR.match(lines[start - 1])):
        start -= 1
    return start


def _header_span(lines: list[str]) -> tuple[int, int]:
    """First and last+1 line of the first quote header that any of mail-parser-reply's
    languages recognises; (len(lines), 0) when there is none."""
    normalized = "\n".join(_DASHES.sub("", line.strip()[:_MAX_HEADER_LINE]) for line in lines)[:_MAX_SCAN]
    found = [m for m in (_header_regex().search(normalized), _separator(normalized)) if m]
    if not found:
        return len(lines), 0
    match = min(found, key=lambda m: m.start())
    position = match.start()
    while position < match.end() and normalized[position] == "\n":
        position += 1
    return normalized.count("\n", 0, position), normalized.count("\n", 0, match.end()) + 1


def _separator(normalized: str) -> re.Match[str] | None:
    return re.search(r"^-+\s*original message\s*-+$", normalized, re.IGNORECASE | re.MULTILINE)


@cache
def _header_regex() -> re.Pattern[str]:
    """mail-parser-reply's quote-header patterns for every language it knows (a customer's client
    language is not ours to choose), behind a gate that finds the same matches sooner."""
    library = library_header_regex()
    # Each of the library's patterns starts at a line start or a newline (one at a dash line),
    # but half of them are not anchored, so the engine tried every pattern at every character:
    # 0.7 ms a reply. Asking first for a line start, or a newline or dash ahead, passes over the
    # middle of a line at once; a match can start nowhere else, so the matches are the same
    # (tests/test_trim.py and the corpus test check it against the library's own pattern).
    return re.compile(r"(?:^|(?=[\n-]))(?:" + library.pattern + ")", library.flags)


def library_header_regex() -> re.Pattern[str]:
    # Building an EmailMessage normalises its text with re.sub(..., re.MULTILINE) passed as the
    # count (a bug in mail-parser-reply; Python 3.13 warns about it). Our text is empty, so the
    # count changes nothing; the warning is the library's, not a fault of ours.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pattern: re.Pattern[str] = EmailMessage(text="", languages=list(MAIL_LANGUAGES)).HEADER_REGEX
        return pattern


def _outlook_block(lines: list[str]) -> int:
    """Where `_OUTLOOK_BLOCK` Outlook header lines in a row start (len(lines) when nowhere)."""
    run = 0
    for index, line in enumerate(lines[: _MAX_SCAN // 20]):
        run = run + 1 if _OUTLOOK_LINE.match(line[:_MAX_HEADER_LINE]) else 0
        if run == _OUTLOOK_BLOCK and index + 1 - run > 0:
            return index + 1 - run
    return len(lines)


def _wrapped_header(lines: list[str]) -> int:
    """Where a quote header that the mail client wrapped over two or three lines starts ("On
    Tue, 4 Jun 2024, Support" / "<s@example.com> wrote:"), or a Russian one (... написал:)."""
    for index, line in enumerate(lines[: _MAX_SCAN // 20]):
        if not line.rstrip().endswith(":") or len(line) > _MAX_HEADER_LINE:
            continue
        if _EXTRA_HEADER.match(line.strip()):
            return _header_top(lines, index)
        for above in (1, 2):
            if index - above <= 0 or not all(lines[i].strip() for i in range(index - above, index)):
                break
            joined = " ".join(_DASHES.sub("", x.strip()) for x in lines[index - above : index + 1])
            if _header_regex().match(joined):
                return index - above
    return len(lines)


def _header_top(lines: list[str], index: int) -> int:
    """A Russian header is often wrapped too: its first line starts with the date."""
    for above in (2, 1):
        if (
            index - above > 0
            and all(x.strip() for x in lines[index - above : index])
            and re.match(r"^\s*-*\s*\d", lines[index - above])
        ):
            return index - above
    return index


def _trailing_quote(lines: list[str]) -> int:
    """Where a `>`-quoted block that runs to the end starts, with the "... wrote:" line of an
    unknown language just above it (any line ending in ":")."""
    end = len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    start = end
    while start > 0 and (lines[start - 1].lstrip().startswith(">") or not lines[start - 1].strip()):
        start -= 1
    if start == end:
        return len(lines)
    above = start
    while above > 0 and not lines[above - 1].strip():
        above -= 1
    if above > 0 and lines[above - 1].rstrip().endswith(":"):
        return above - 1
    return start


def _cut_signature(lines: list[str]) -> list[str]:
    """Cut at an RFC 3676 "-- " line, or a "Sent from my phone" line that closes the reply, if
    text stays above."""
    written = False
    for index, line in enumerate(lines):
        closing = _SENT_FROM.match(line) and not any(x.strip() for x in lines[index + 1 :])
        if written and (_SIGNATURE.match(line) or closing):
            return lines[:index]
        written = written or bool(line.strip())
    return lines


def _strip_blank_tail(lines: list[str]) -> list[str]:
    end = len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    return lines[:end]
