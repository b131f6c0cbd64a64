"""Addresses and Message-IDs for the mail we send: checking that an address is one plain,
sendable addr-spec, making our Message-IDs and recognising them, the stable per-ticket thread
ref that keeps a thread together when the subject is edited, and the capped References list.
Used by `mailbot.outgoing.compose` (which writes them into headers) and by `mailbot.outgoing.notify`."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from functools import lru_cache

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*\Z")
_DOMAIN_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
# Printable ASCII without "@" on each side of the one "@", and none of the characters that
# would end or break the angle-bracketed form.
_MESSAGE_ID = re.compile(r"[!-?A-~]+@[!-?A-~]+\Z")
_MESSAGE_ID_FORBIDDEN = re.compile(r'[<>"\\]')
_MAX_MESSAGE_ID = 250  # longer ids from other mailers are dropped: one could not be folded
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_OUR_ID = re.compile(r"(?:[a-z0-9-]+\.)?[0-9a-f]{16}@(?P<domain>[^@]+)\Z")
_THREAD_REF = re.compile(r"ticket-(?P<ref>[A-Za-z0-9][A-Za-z0-9._-]*)@(?P<domain>[^@]+)\Z")
_KEEP_FIRST, _KEEP_LAST = 4, 6


def check_address(email: str) -> str:
    """Return `email` as one plain, sendable addr-spec (the domain in ASCII), or raise ValueError.

    Stricter than RFC 5322 on purpose: no display name, no comments, no quoted local part, no
    second `@`, no list, no non-ASCII local part (that would need SMTPUTF8). Callers never send to
    an address this refuses."""
    if not isinstance(email, str) or len(email) > 254 or email.count("@") != 1:
        raise ValueError(f"not a single email address: {email!r}")
    local, domain = email.split("@")
    if len(local) > 64 or not _LOCAL_PART.match(local):
        raise ValueError(f"not a valid local part: {email!r}")
    return f"{local}@{ascii_domain(domain)}"


def make_message_id(reference: str, domain: str) -> str:
    """A new, unique Message-ID (no brackets): `visi-42.<16 hex>@domain`, or `<16 hex>@domain` for
    mail about no ticket. The reference makes our ids readable in logs and mail sources."""
    random_part = secrets.token_hex(8)
    ref = reference.strip().lower()
    if ref and not _REFERENCE.match(ref):
        raise ValueError(f"not a ticket reference: {reference!r}")
    left = f"{ref}.{random_part}" if ref else random_part
    return f"{left}@{ascii_domain(domain)}"


def is_our_message_id(message_id: str, domain: str) -> bool:
    """Whether `message_id` (with or without brackets) has the shape make_message_id() gives,
    at our `domain`. A hint for threading, not proof: permission checks still apply."""
    match = _OUR_ID.match(clean_message_id(message_id).lower())
    return match is not None and match["domain"] == ascii_domain(domain).lower()


def thread_ref(reference: str, domain: str) -> str:
    """The stable pseudo Message-ID of a ticket, `ticket-VISI-42@domain` (no brackets). It is in
    the References of every mail about the ticket, so replies thread even with an edited subject."""
    if not _REFERENCE.match(reference):
        raise ValueError(f"not a ticket reference: {reference!r}")
    return f"ticket-{reference}@{ascii_domain(domain)}"


def reference_from_thread_ref(message_id: str, domain: str) -> str:
    """The ticket reference in one of our thread refs, or "" when `message_id` is not one."""
    match = _THREAD_REF.match(clean_message_id(message_id))
    if not match or match["domain"].lower() != ascii_domain(domain).lower():
        return ""
    return match["ref"]


def build_references(existing: Sequence[str], parent: str, reference: str, domain: str) -> tuple[str, ...]:
    """References for a new mail: the ticket's thread ref first, then the existing ids and the
    `parent` (last, as RFC 5322 §3.6.4 wants) capped to the first 4 and last 6, no duplicates.

    Keeping the first ids preserves the thread root for clients that thread by it; keeping the
    last ones the nearest ancestors (RT keeps ≤ 10 the same way). Invalid ids are dropped."""
    pseudo = thread_ref(reference, domain)
    parent_id = clean_message_id(parent)
    skip = {pseudo, parent_id, ""}
    ids = list(dict.fromkeys(i for i in map(clean_message_id, existing) if i not in skip))
    if parent_id:
        ids.append(parent_id)
    if len(ids) > _KEEP_FIRST + _KEEP_LAST:
        ids = ids[:_KEEP_FIRST] + ids[-_KEEP_LAST:]
    return (pseudo, *ids)


@lru_cache(maxsize=1024)
def ascii_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"not a valid domain: {domain!r}") from exc
    labels = ascii_domain.split(".")
    if not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise ValueError(f"not a valid domain: {domain!r}")
    return ascii_domain


def clean_message_id(value: str) -> str:
    """`<id@host>` or `id@host` → `id@host`; "" when it is not a usable Message-ID."""
    candidate = value.strip()
    if candidate.startswith("<") and candidate.endswith(">"):
        candidate = candidate[1:-1].strip()
    if (
        len(candidate) > _MAX_MESSAGE_ID
        or _MESSAGE_ID_FORBIDDEN.search(candidate)
        or not _MESSAGE_ID.match(candidate)
    ):
        return ""
    return candidate


def require_message_id(value: str) -> str:
    message_id = clean_message_id(value)
    if not message_id or message_id != value:
        raise ValueError(f"not a Message-ID without brackets: {value!r}")
    return message_id
