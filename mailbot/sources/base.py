"""The one small interface every mail source offers, and the cursor the poller keeps for it.

A source lists what is pending, fetches raw bytes, and acknowledges a mail only after mailbot has
committed it (flag or move on the server). It knows nothing of tickets or the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# An OAuth2 access token for a login (mailbot.oauth.keeper.TokenKeeper.access_token): called with
# True when the server refused the last one, to get a new one rather than the stored one.
TokenSource = Callable[[bool], str]


@dataclass(frozen=True)
class Cursor:
    """How far a mailbox has been read: its UIDVALIDITY and the highest UID handled.
    Sources without UIDs (Maildir, files) use uidvalidity 0 and ignore last_uid."""

    uidvalidity: int = 0
    last_uid: int = 0


@dataclass(frozen=True)
class Pending:
    """What `MailSource.pending` found: the mailbox's current UIDVALIDITY and the keys of the
    mails not yet handled, oldest first. For IMAP a key is the UID as a decimal string."""

    uidvalidity: int
    keys: tuple[str, ...]


@dataclass(frozen=True)
class FetchedMail:
    """One mail as the source holds it. `mailbox` names the mailbox without any secret;
    `internal_date` is when the mailbox received it, as the mailbox says (never the sender's
    Date header), None when it cannot say."""

    mailbox: str
    uidvalidity: int
    key: str
    raw: bytes
    internal_date: datetime | None = None
    ledger_key: str = ""  # where `key` may name another mail later (a reused file name)

    @property
    def seen_key(self) -> str:
        """This mail's key in the ledger: `ledger_key` where the source gives one, else `key`."""
        return self.ledger_key or self.key

    @property
    def uid(self) -> int:
        """The IMAP UID (0 for sources whose keys are not numbers)."""
        return int(self.key) if self.key.isdigit() else 0


class MailSource(Protocol):
    """A mailbox. Methods raise `mailbot.errors.SourceUnavailable` when the server cannot be
    reached and `TransientError` for other failures worth retrying."""

    name: str  # a display name with no password in it, used in logs and the ledger

    def open(self) -> None: ...

    def close(self) -> None: ...

    def pending(self, cursor: Cursor) -> Pending:
        """Mails after `cursor`; when UIDVALIDITY changed, every mail in the mailbox."""
        ...

    def fetch(self, keys: Iterable[str]) -> Iterator[FetchedMail]:
        """The raw mails for `keys`, in order; keys that vanished meanwhile are skipped."""
        ...

    def acknowledge(self, mail: FetchedMail) -> None:
        """Mark `mail` handled on the server. Called only after the database commit."""
        ...

    def acknowledge_all(self, mails: Sequence[FetchedMail]) -> None:
        """`acknowledge` for several mails, in one round trip where the server allows."""
        ...

    def wait_for_news(self, timeout: float, should_stop: Callable[[], bool] = ...) -> bool:
        """Block up to `timeout` seconds for new mail (IMAP IDLE where offered), returning within
        a second once `should_stop()` is true. Returns True when something may have arrived;
        sources that cannot push nap and return True."""
        ...
