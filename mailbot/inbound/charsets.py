"""Text from mail's bytes and headers whatever their labels say: charset fallbacks, RFC 2047
encoded words that never fail to decode, the charset of raw 8-bit header text that no label
names (charset-normalizer), and single clean lines for display and our own headers.

Pure functions on strings and bytes; `mailbot.inbound.parse` uses them to read a mail. They never raise
on bad input: a mail in a broken or unknown charset is still read (reliability P3, P4).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from itertools import groupby

import charset_normalizer

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?(.*?)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_SURROGATES = re.compile("[\udc80-\udcff]")
FOLD = re.compile(r"\r?\n(?=[ \t])")  # a folded header line break
# Labels that mail uses for a larger character set than they name; the WHATWG Encoding Standard
# decodes them the same way, so text from Outlook and Asian webmail reads right.
_SUPERSETS = dict(
    pair.split("=")
    for pair in "iso-8859-1=cp1252 latin1=cp1252 latin-1=cp1252 iso8859-1=cp1252"
    " iso-8859-9=cp1254 gb2312=gb18030 gbk=gb18030 x-gbk=gb18030 ks_c_5601-1987=cp949"
    " euc-kr=cp949 shift_jis=cp932 x-sjis=cp932 big5=big5hkscs tis-620=cp874"
    " unicode-1-1-utf-7=utf-7 x-mac-roman=mac_roman macintosh=mac_roman".split()
)
# Japanese mailers often label Shift_JIS or EUC-JP bytes as ISO-2022-JP.
_SIBLINGS = {"iso2022_jp": ("cp932", "euc_jp"), "euc_jp": ("cp932",), "cp932": ("euc_jp",)}
# Declared charsets that clients put on UTF-8 text by mistake; valid UTF-8 wins over them.
_OFTEN_MISLABELLED = frozenset({"ascii", "cp1252", "latin_1", "cp1254"})
# Stateful 7-bit charsets: a word cut short still decodes up to the cut, never as Latin-1.
_ESCAPED = frozenset({"iso2022_jp", "iso2022_jp_2", "iso2022_kr"})
# The legacy charsets raw 8-bit headers come in, for charset-normalizer to choose from.
_LEGACY = ["gb18030", "big5", "cp932", "euc_jp", "euc_kr", "koi8_r", "cp1251", "cp1252", "cp1250"]
_WORD = re.compile(r"\w+")


def codec_name(charset: str | None) -> str | None:
    label = (charset or "").strip().strip("\"'").lower().split("*", 1)[0]
    try:
        return codecs.lookup(_SUPERSETS.get(label, label)).name if label else None
    except (LookupError, ValueError):
        return None


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes whatever the label says: the declared charset (and its usual stand-ins),
    then UTF-8, then Latin-1, which cannot fail (reliability P3)."""
    declared = codec_name(charset)
    order = [declared, *_SIBLINGS.get(declared or "", ()), "utf-8"]
    if declared in _OFTEN_MISLABELLED or declared is None:
        order = ["utf-8", declared]
    for name in filter(None, order):
        try:
            return data.decode(name)
        except (UnicodeError, LookupError):
            if name == declared in _ESCAPED and data.isascii():  # cut short: read up to the cut
                return data.decode(declared, "ignore")
    return data.decode("latin-1")


def guess_charset(data: bytes) -> str | None:
    """The legacy charset that reads `data` (raw 8-bit header text without a label) best, or
    None when it is UTF-8 or ASCII. charset-normalizer ranks the readings; one that mixes
    scripts inside a word (`Tr鑣 bien` for `Très bien`) is taken only when nothing else reads."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    best: tuple[tuple[int, float], str] | None = None
    for match in charset_normalizer.from_bytes(data, cp_isolation=_LEGACY):
        key = (_mixed_words(str(match)), match.chaos)
        if best is None or key < best[0]:
            best = (key, match.encoding)
    return best[1] if best else None


def _mixed_words(text: str) -> int:
    return sum(len({_script(ch) for ch in word if ch.isalpha()}) > 1 for word in _WORD.findall(text))


def _script(ch: str) -> str:
    if ch.isascii():
        return "LATIN"
    name = unicodedata.name(ch, "")
    if name.startswith(("HIRAGANA", "KATAKANA", "CJK")):
        return "CJK"
    return name.split(" ", 1)[0]


def unescape_8bit(value: str, hint: str | None = None) -> str:
    """The standard library keeps raw 8-bit header bytes as surrogates; make them text."""
    if not _SURROGATES.search(value):
        return value
    return decode_bytes(value.encode("utf-8", "surrogateescape"), hint)


def decode_header_value(value: str, hint: str | None = None) -> str:
    """RFC 2047 decoding that never fails: unknown charsets and broken words fall back to
    UTF-8/Latin-1 or stay as written (P4). Raw 8-bit bytes are read in the `hint` charset."""
    value = FOLD.sub("", unescape_8bit(str(value), hint))
    out: list[str] = []
    run: list[tuple[str | None, bytes]] = []  # adjacent encoded words, not yet decoded
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        data = _word_bytes(match.group(2), match.group(3))
        # White space between two encoded words is not text (RFC 2047 section 6.2).
        if between.strip() or not run or data is None:
            out += [_decode_words(run), between]
            run = []
        if data is None:
            out.append(match.group(0))
        else:
            run.append((codec_name(match.group(1)), data))
        pos = match.end()
    return "".join([*out, _decode_words(run), value[pos:]])


def _word_bytes(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "bB":
            text = "".join(text.split()).rstrip("=")
            # A word cut short (a mailer truncated the header) decodes up to the cut.
            text = text[: len(text) - len(text) % 4] if len(text) % 4 == 1 else text
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        data = text.replace("_", " ").encode("utf-8", "surrogateescape")
        return _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)
    except (binascii.Error, ValueError):
        return None


def _decode_words(run: list[tuple[str | None, bytes]]) -> str:
    """Decode adjacent words, joining those of one charset as bytes first: mailers split
    multi-byte characters across words."""
    groups = groupby(run, key=lambda word: word[0])
    return "".join(decode_bytes(b"".join(d for _, d in words), cs) for cs, words in groups)


def clean_line(text: str) -> str:
    """One line for display and for our own headers: control characters and line breaks
    become spaces, runs of white space fold to one (S5: no header injection through CR/LF)."""
    chars = (" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs") else ch for ch in text)
    return " ".join("".join(chars).split())
