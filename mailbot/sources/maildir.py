"""A local Maildir as a `MailSource`: the embedded default mailbox, no server needed.

Mail waiting in new/ is pending (oldest first); acknowledging moves it to cur/ with the Seen
flag (`KEY:2,S`), the Maildir way of saying "read". Maildir has no UIDs, so the cursor is
ignored (uidvalidity 0): new/ itself is the list of what is left. Whoever delivers into the
Maildir must follow the tmp/-then-rename rule; deduplication is ingest's job, as for IMAP.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from mailbot.errors import SourceUnavailable
from mailbot.sources.base import Cursor, FetchedMail, Pending

log = logging.getLogger(__name__)

POLL_STEP = 0.2  # how often wait_for_news looks at new/


class MaildirSource:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.name = f"maildir://{self.path}"

    def open(self) -> None:
        try:
            for sub in ("new", "cur", "tmp"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceUnavailable(
                f"{self.name}: cannot create the Maildir: {exc.strerror}"
            ) from exc

    def close(self) -> None:
        pass

    def _new_files(self) -> list[os.DirEntry]:
        try:
            with os.scandir(self.path / "new") as entries:
                files = [e for e in entries if e.is_file() and not e.name.startswith(".")]
        except OSError as exc:
            raise SourceUnavailable(f"{self.name}: cannot read new/: {exc.strerror}") from None
        # Oldest first; the name (which starts with the delivery time) breaks ties.
        return sorted(files, key=lambda e: (e.stat().st_mtime_ns, e.name))

    def pending(self, cursor: Cursor) -> Pending:
        return Pending(uidvalidity=0, keys=tuple(e.name for e in self._new_files()))

    def fetch(self, keys: Iterable[str]) -> Iterator[FetchedMail]:
        for key in keys:
            path = self.path / "new" / _checked(key)
            try:
                raw = path.read_bytes()
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                log.info("%s: %s vanished before it was read", self.name, key)
                continue
            except OSError as exc:
                raise SourceUnavailable(f"{self.name}: cannot read {key}: {exc.strerror}") from exc
            yield FetchedMail(
                mailbox=self.name, uidvalidity=0, key=key, raw=raw,
                internal_date=datetime.fromtimestamp(mtime, UTC),
            )

    def acknowledge_all(self, mails: Sequence[FetchedMail]) -> None:
        for mail in mails:
            self.acknowledge(mail)

    def acknowledge(self, mail: FetchedMail) -> None:
        key = _checked(mail.key)
        base = key.split(":", 1)[0]  # drop any info part a careless deliverer left
        try:
            os.rename(self.path / "new" / key, self.path / "cur" / f"{base}:2,S")
        except FileNotFoundError:
            log.info("%s: %s was already moved away", self.name, key)
        except OSError as exc:
            raise SourceUnavailable(
                f"{self.name}: cannot move {key} to cur/: {exc.strerror}"
            ) from exc

    def wait_for_news(self, timeout: float, should_stop: Callable[[], bool] = lambda: False) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._new_files():
                return True
            left = deadline - time.monotonic()
            if left <= 0 or should_stop():
                return False
            time.sleep(min(POLL_STEP, left))


def _checked(key: str) -> str:
    """A key is a file name inside new/, never a path."""
    if not key or "/" in key or key in (".", ".."):
        raise ValueError(f"not a Maildir key: {key!r}")
    return key
