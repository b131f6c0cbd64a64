"""A mailbox held in memory, as a `MailSource`: the honest twin of an IMAP mailbox for fast
tests and for trying mailbot out in a Python shell.

It behaves as the IMAP source does where mailbot relies on it: every mail gets the next UID and
the time it arrived (INTERNALDATE); `pending` lists the UIDs after the cursor, or every mail when
the cursor's UIDVALIDITY is not the mailbox's; acknowledging marks the mail handled (the
\\Flagged of the real one) and nothing else. It knows nothing of tickets or the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailbot.sources.base import Cursor, FetchedMail, Pending


@dataclass
class StoredMail:
    """One mail in the memory mailbox."""

    uid: int
    raw: bytes
    arrived: datetime | None
    acknowledged: bool = False


class MemorySource:
    def __init__(self, name: str = "memory://INBOX", uidvalidity: int = 1):
        self.name = name
        self.uidvalidity = uidvalidity
        self.mails: list[StoredMail] = []
        self.is_open = False

    def deliver(self, raw: bytes, arrived: datetime | None = None) -> int:
        """Put a mail into the mailbox, as an MTA would; returns its UID."""
        uid = self.mails[-1].uid + 1 if self.mails else 1
        self.mails.append(StoredMail(uid, raw, arrived))
        return uid

    def expunge(self, uid: int) -> None:
        """Remove a mail, as another mail client might, between `pending` and `fetch`."""
        self.mails = [mail for mail in self.mails if mail.uid != uid]

    @property
    def unacknowledged(self) -> list[int]:
        """The UIDs mailbot has not marked handled."""
        return [mail.uid for mail in self.mails if not mail.acknowledged]

    # -- MailSource --------------------------------------------------------------------------

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def pending(self, cursor: Cursor) -> Pending:
        after = cursor.last_uid if cursor.uidvalidity == self.uidvalidity else 0
        return Pending(self.uidvalidity, tuple(str(m.uid) for m in self.mails if m.uid > after))

    def fetch(self, keys: Iterable[str]) -> Iterator[FetchedMail]:
        by_uid = {str(mail.uid): mail for mail in self.mails}
        for key in keys:
            mail = by_uid.get(key)
            if mail is None:  # expunged meanwhile: skipped, as the IMAP source does
                continue
            yield FetchedMail(self.name, self.uidvalidity, key, mail.raw, internal_date=mail.arrived)

    def acknowledge(self, mail: FetchedMail) -> None:
        self.acknowledge_all([mail])

    def acknowledge_all(self, mails: Sequence[FetchedMail]) -> None:
        keys = {mail.key for mail in mails}
        for stored in self.mails:
            if str(stored.uid) in keys:
                stored.acknowledged = True

    def wait_for_news(self, timeout: float, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Nothing arrives while a single thread waits: answers at once whether mail is pending."""
        return bool(self.unacknowledged)
