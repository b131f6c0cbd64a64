"""Who wrote a mail: the sender read from its From header, or, where From names nobody, from
Sender, Reply-To or Return-Path.

One From header with one mailbox in an RFC 5322 form (`Name <a@b>`, `a@b (Name)`, a quoted local
part such as a fax gateway's `"fax #42"@gw.example`) is a plain reading. Anything else that still
names a person is read with a `note` saying how, and the other mailboxes the mail may be from:
two From headers, several mailboxes in one, an address written outside the syntax (a local
part with bare spaces, `Name a@b` without brackets, a domain ending in a dot, a display name
that is only a quoted address), or no usable From at all. The caller picks among them (an
existing account wins) and never trusts a noted reading with an engineer's commands.

Refused outright, as before (S9), because a reader could take them for someone else: an address
inside a comment, a display name that holds another address, a second "@", an RFC 2047-encoded
address, unbalanced brackets. Pure functions on header values; `mailbot.inbound.parse` calls them.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.message import Message
from email.policy import default as default_policy

from mailbot.inbound.charsets import FOLD, clean_line, decode_header_value, unescape_8bit
from mailbot.inbound.message import Address

# Lenient on purpose: real mailers put spaces and "?" inside words; "?=" still ends one.
_ATOM = r"[^\s\"(),:;<>@\[\]\\.\x00-\x1f\x7f]+"  # RFC 5322 atext, and any non-ASCII (RFC 6532)
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
# A quoted local part as fax and gateway senders write it: anything printable but what could
# make a reader see a second address in it.
_QUOTED_LOCAL = re.compile(r'"[^"\\@<>,;:\x00-\x1f\x7f]+"')
_DOMAIN = re.compile(rf"{_ATOM}(?:\.{_ATOM})*|\[[0-9A-Fa-f:.]+\]")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
# `Name <a@b>` with nothing to mistake in the name; Outlook even writes `Last, First <a@b>`.
_NAME_ADDR = re.compile(r"([^<>@\"()\\]*?)\s*<([^<>@\s]+@[^<>@\s]+)>")
# The looser shapes read with a note: `"any name" <a b@c>`, `Name a@b`, `"a@b"` alone.
_ANGLE = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>")
_BARE = re.compile(r"(?P<name>[^<>@\"()\\,]+?)\s+(?P<addr>[^\s<>@\"()\\,]+@[^\s<>@\"()\\,]+)")
_ONLY_QUOTED = re.compile(r'"\s*(?P<addr>[^\s<>@"\\]+@[^\s<>@"\\]+)\s*"')
_AN_ADDRESS = re.compile(r"[^\s<>@\"]+@[^\s<>@\"]+\.[^\s<>@\"]+")
_MAX_ADDRESS_HEADER = 4096
_FALLBACK_HEADERS = ("Sender", "Reply-To", "Return-Path")


@dataclass(frozen=True)
class SenderReading:
    """The sender as read (None: nobody can be made out), the other mailboxes the mail may be
    from, and how it was read when not plainly ("" for one From with one mailbox)."""

    sender: Address | None
    alternatives: tuple[Address, ...] = ()
    note: str = ""


def read_sender(msg: Message, hint: str | None = None) -> SenderReading:
    """The sender of `msg` (header values with raw 8-bit bytes are read in `hint`)."""
    froms = [unescape_8bit(v, hint) for k, v in msg.raw_items() if k.lower() == "from"]
    plain = [_one_mailbox(value) for value in froms]
    if froms and None not in plain and len({a.key for a in plain if a}) == 1:
        return SenderReading(plain[0])
    found = _distinct(mailbox for value in froms for mailbox, _ in _readings(value))
    notes = [f"{len(froms)} From headers"] if len(froms) > 1 else []
    notes += sorted({note for value in froms for _, note in _readings(value) if note})
    if found:
        if len(found) > 1:
            others = ", ".join(a.email for a in found[1:])
            notes.append(f"{len(found)} mailboxes: took {found[0].email}, also {others}")
        return SenderReading(found[0], tuple(found[1:]), "; ".join(notes) or "From read leniently")
    for name in _FALLBACK_HEADERS:
        values = [unescape_8bit(v, hint) for k, v in msg.raw_items() if k.lower() == name.lower()]
        people = _distinct(mailbox for value in values for mailbox, _ in _readings(value))
        if len(people) == 1:
            return SenderReading(people[0], (), f"no sender in From: read from {name}")
    return SenderReading(None, (), "no sender can be made out")


def _distinct(addresses: Iterable[Address]) -> list[Address]:
    seen: dict[str, Address] = {}
    for address in addresses:
        seen.setdefault(address.key, address)
    return list(seen.values())


def _readings(value: str) -> list[tuple[Address, str]]:
    """Every mailbox a header value names, each with a note when it was not written plainly.
    A value with an address in a comment names nobody."""
    value = FOLD.sub("", value).strip()
    if not value or len(value) > _MAX_ADDRESS_HEADER or _address_in_comment(value):
        return []
    found = []
    for piece in _split_list(value):
        plain = _one_mailbox(piece)
        reading = (plain, "") if plain is not None else _repaired(piece)
        if reading is not None:
            found.append(reading)
    return found


def _split_list(value: str) -> list[str]:
    """A list of mailboxes split at the commas that are outside quotes, brackets and comments."""
    pieces, start, depth, quoted, angle = [], 0, 0, False, False
    for index, ch in enumerate(value):
        if quoted:
            quoted = ch != '"' or value[index - 1] == "\\"
        elif ch == '"':
            quoted = True
        elif ch in "()":
            depth = max(0, depth + (1 if ch == "(" else -1))
        elif ch in "<>":
            angle = ch == "<"
        elif ch == "," and not depth and not angle:
            pieces.append(value[start:index])
            start = index + 1
    pieces.append(value[start:])
    return [p.strip() for p in pieces if p.strip()]


def _repaired(piece: str) -> tuple[Address, str] | None:
    """One mailbox written outside the syntax, with a note saying how it was read; None when the
    piece names nobody, or could be taken for someone else."""
    angle = _ANGLE.fullmatch(piece)
    if angle:
        name = _display_name(angle["name"])
        address = _loose_address(angle["addr"])
        if address is None or name is None or _names_another(name, address[0]):
            return None
        return Address(email=address[0], name=name), address[1] or "display name repaired"
    bare = _BARE.fullmatch(piece)
    if bare and "=?" not in bare["name"]:
        address = _loose_address(bare["addr"])
        if address is not None:
            return Address(email=address[0], name=clean_line(bare["name"])), "address without brackets"
    only = _ONLY_QUOTED.fullmatch(piece)
    if only:
        address = _loose_address(only["addr"])
        if address is not None:
            return Address(email=address[0]), "address only in quotes"
    address = _loose_address(piece)
    return (Address(email=address[0]), address[1]) if address is not None and address[1] else None


def _display_name(raw: str) -> str | None:
    """The display name, unquoted and decoded (encoded words inside quotes too, as mailers write
    them); None when it holds brackets or quotes a reader could mistake."""
    raw = raw.strip()
    if raw.startswith('"') and raw.endswith('"') and len(raw) > 1:
        raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
    elif '"' in raw or "\\" in raw:
        return None
    return clean_line(decode_header_value(raw))


def _names_another(name: str, addr: str) -> bool:
    """`dana@customer.test <mallory@evil.test>`: the name shows an address that is not the one."""
    return any(found.lower() != addr.lower() for found in _AN_ADDRESS.findall(name))


def _loose_address(text: str) -> tuple[str, str] | None:
    """An addr-spec with what can be repaired without guessing whose it is: bare spaces in the
    local part (quoted), a domain ending in a dot (dropped). The note says which ("" for none)."""
    text = text.strip()
    if text.count("@") != 1:
        return None
    local, _, domain = text.rpartition("@")
    notes = []
    if domain.endswith(".") and not domain.endswith(".."):
        domain, notes = domain[:-1], ["domain ending in a dot"]
    if not _DOMAIN.fullmatch(domain):
        return None
    if " " in local.strip() and not local.startswith('"'):
        local, notes = '"' + " ".join(local.split()) + '"', [*notes, "spaces in the local part quoted"]
    if not (_LOCAL_PART.fullmatch(local) or _QUOTED_LOCAL.fullmatch(local)):
        return None
    return f"{local}@{domain}", "; ".join(notes)


def _one_mailbox(value: str) -> Address | None:
    """The plain reading: one mailbox that the modern header parser (without defects) and the
    legacy `getaddresses` read alike, in the `Name <local@domain>` form or a comment form, with a
    dot-atom or a harmless quoted local part. None for anything else."""
    value = FOLD.sub("", value).strip()
    if not value or len(value) > _MAX_ADDRESS_HEADER or _address_in_comment(value):
        return None
    simple = _NAME_ADDR.fullmatch(value)
    if simple:  # one angle-addr and no other "@", "<", quote or comment: nothing to mistake
        name, addr = decode_header_value(simple.group(1)), simple.group(2)
    else:
        try:
            header = default_policy.header_factory("From", value)
            legacy = email.utils.getaddresses([value])
        except (ValueError, IndexError, TypeError, AttributeError, HeaderParseError):
            return None
        if header.defects or len(header.addresses) != 1:
            return None
        name, addr = header.addresses[0].display_name, header.addresses[0].addr_spec
        if [a.lower() for _, a in legacy] != [addr.lower()]:
            return None
        # `a@b (Full Name)`: the modern parser drops the comment, the legacy one keeps it.
        name = name or decode_header_value(legacy[0][0])
    local, _, domain = addr.rpartition("@")
    if not ((_LOCAL_PART.fullmatch(local) or _QUOTED_LOCAL.fullmatch(local)) and _DOMAIN.fullmatch(domain)):
        return None
    return Address(email=addr, name=clean_line(name))


def _address_in_comment(value: str) -> bool:
    """`alice@cust.com(<x@evil>)`: a reader may take the comment for the address."""
    depth = 0
    for ch in _QUOTED.sub('""', value):
        depth += (ch == "(") - (ch == ")" and depth > 0)
        if depth and ch in "@<>":
            return True
    return False
