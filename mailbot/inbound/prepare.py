"""What a mail's raw bytes alone decide, before any database: their hash, the raw file kept on
disk, and the parsed message (or why it must be quarantined).

Kept apart from `mailbot.service.ingest` (the database side) so that the helper process of
`mailbot.service.parse_ahead` imports the parser and the store only, not the whole ticket domain.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.errors import QuarantineError
from mailbot.inbound.message import ParsedMail
from mailbot.inbound.parse import ParseLimits, parse_mail
from mailbot.store.files import Store, sha256_hex


@dataclass(frozen=True)
class KeptMail:
    """What a mail's raw bytes alone give: their hash, the file they are kept in, and the parsed
    message, or the reason the mail must be quarantined (then `message` is None)."""

    digest: str
    raw_path: str
    message: ParsedMail | None
    reason: str = ""


def prepare_mail(store: Store, raw: bytes, limits: ParseLimits) -> KeptMail:
    """Keep the raw bytes (content-addressed: the same bytes once), then parse them. Needs no
    database, so a helper process can do it ahead (`mailbot.service.parse_ahead`)."""
    digest = sha256_hex(raw)
    raw_path = str(store.save_raw(raw, digest))
    try:
        return KeptMail(digest, raw_path, parse_mail(raw, limits))
    except QuarantineError as exc:
        return KeptMail(digest, raw_path, None, exc.reason)
