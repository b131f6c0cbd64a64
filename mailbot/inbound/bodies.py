"""The readable parts of a parsed mail: the text (plain preferred, HTML turned into text), the HTML
made safe to show, and attachment names safe to show. Used by `mailbot.inbound.parse`, which
decides which MIME parts are text, HTML or attachments."""

from __future__ import annotations

import unicodedata
from email.message import Message

import html2text
import nh3

from mailbot.inbound.charsets import decode_bytes, decode_header_value

MiB = 1024 * 1024
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_MAX_FILENAME = 150
_MAX_HTML_TO_TEXT = 1 * MiB  # html2text reads about 1 MB/s: the rest stays in the HTML only


def part_charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except (LookupError, UnicodeError, ValueError):
        return None


def text_and_html(plain_parts: list[Message], html_parts: list[Message]) -> tuple[str, str]:
    """The mail's text (its plain parts, else its HTML as text) and its sanitised HTML."""
    plain = "\n\n".join(t for t in map(_part_text, plain_parts) if t.strip())
    html = sanitize_html("\n".join(map(_part_text, html_parts)))
    text = plain if plain.strip() else html_to_text(html)
    return text.replace("\r\n", "\n").strip("\n"), html


def _part_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    return decode_bytes(data, part_charset(part)) if isinstance(data, bytes) else ""


def sanitize_html(html: str) -> str:
    """Customer HTML made safe to show (S7): no script or style, no on* handlers, no
    javascript: links, and no remote images (they are trackers); cid: images stay."""
    if not html.strip():
        return ""
    return nh3.clean(
        html,
        url_schemes={"http", "https", "mailto", "cid"},
        attribute_filter=_keep_attribute,
        strip_comments=True,
    )


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    is_cid = value.strip().lower().startswith("cid:")
    if attribute == "src":
        return value if is_cid else None
    return None if attribute == "href" and is_cid else value


def html_to_text(html: str) -> str:
    """Readable text from (already sanitised) HTML, for HTML-only mail."""
    if not html.strip():
        return ""
    converter = html2text.HTML2Text()
    converter.body_width = 0  # keep the writer's lines; wrapping belongs to whoever displays
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    return converter.handle(html[:_MAX_HTML_TO_TEXT]).strip()


def attachment_filename(part: Message) -> str:
    try:
        return decode_header_value(str(part.get_filename() or ""))
    except (LookupError, UnicodeError, ValueError, TypeError):
        return ""


def safe_filename(name: str) -> str:
    """An attachment name safe to show (S8): the last path element only, no control or
    direction-changing characters, at most 150 characters with the extension kept."""
    name = " ".join(name.replace("\\", "/").rsplit("/", 1)[-1].split())
    name = "".join(ch for ch in name if ch not in _BIDI and unicodedata.category(ch)[0] != "C")
    name = name.strip().rstrip(" .")  # Windows drops trailing dots and spaces
    if name in ("", ".", ".."):
        return "attachment"
    stem, dot, ext = name.rpartition(".")
    if len(name) <= _MAX_FILENAME:
        return name
    if dot and stem and len(ext) <= 16:
        return stem[: _MAX_FILENAME - len(ext) - 1] + "." + ext
    return name[:_MAX_FILENAME]
