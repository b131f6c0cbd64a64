"""A local Maildir as a `MailSource`: the embedded default mailbox, no server needed.

Mail waiting in new/ is pending (oldest first); acknowledging moves it to cur/ with the Seen
flag (`KEY:2,S`), the Maildir way of saying "read". Maildir has no UIDs, so the cursor is
ignored (uidvalidity 0): new/ itself is the list of what is left. Whoever delivers into the
Maildir must follow the tmp/-then-rename rule; deduplication is ingest's job, as for IMAP.

A file name is not a mail's identity: people `cp request.eml new/` twice with other content in
between. So the ledger key is the name with the content's hash, and the move to cur/ never
replaces a file there (a link that fails on an existing name, then another name). When a mail
arrived is the delivery time in its Maildir unique name (`1700000000.M1P2.host`), else the
moment mailbot read it: never the file's mtime, which `cp -p` or `rsync -t` carry over from
long ago, nor the sender's Date header.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from mailbot.errors import SourceUnavailable
from mailbot.sources.base import Cursor, FetchedMail, Pending

log = logging.getLogger(__name__)

POLL_STEP = 0.2  # how often wait_for_news looks at new/
# A Maildir unique name: the delivery time in seconds, then at least two more dot-separated
# parts (`1700000000.M20P31Q4.host`, `1700000000.4711_1.host`).
_UNIQUE_NAME = re.compile(r"(\d{1,12})\.[^.]+\..+")
_NAME_ROOM = 255 - 65  # the ledger key is at most 255 characters: name, "#", sha256


class MaildirSource:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.name = f"maildir://{self.path}"

    def open(self) -> None:
        try:
            for sub in ("new", "cur", "tmp"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceUnavailable(f"{self.name}: cannot create the Maildir: {exc.strerror}") from exc

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
            except FileNotFoundError:
                log.info("%s: %s vanished before it was read", self.name, key)
                continue
            except OSError as exc:
                raise SourceUnavailable(f"{self.name}: cannot read {key}: {exc.strerror}") from exc
            yield FetchedMail(
                mailbox=self.name,
                uidvalidity=0,
                key=key,
                raw=raw,
                internal_date=delivery_time(key),
                ledger_key=f"{key[:_NAME_ROOM]}#{hashlib.sha256(raw).hexdigest()}",
            )

    def acknowledge_all(self, mails: Sequence[FetchedMail]) -> None:
        for mail in mails:
            self.acknowledge(mail)

    def acknowledge(self, mail: FetchedMail) -> None:
        key = _checked(mail.key)
        base = key.split(":", 1)[0]  # drop any info part a careless deliverer left
        source = self.path / "new" / key
        try:
            for n in range(1000):
                if _move_unless_taken(source, self.path / "cur" / f"{_numbered(base, n)}:2,S"):
                    return
            raise OSError(errno.EEXIST, "a thousand files of that name in cur/")
        except FileNotFoundError:
            log.info("%s: %s was already moved away", self.name, key)
        except OSError as exc:
            raise SourceUnavailable(f"{self.name}: cannot move {key} to cur/: {exc.strerror}") from exc

    def wait_for_news(self, timeout: float, should_stop: Callable[[], bool] = lambda: False) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._new_files():
                return True
            left = deadline - time.monotonic()
            if left <= 0 or should_stop():
                return False
            time.sleep(min(POLL_STEP, left))


def delivery_time(name: str) -> datetime:
    """When a mail named `name` was delivered: the time in its Maildir unique name (never later
    than now), else now, the moment mailbot first reads it."""
    now = datetime.now(UTC)
    match = _UNIQUE_NAME.fullmatch(name.split(":", 1)[0])
    if match is None:
        return now
    return min(datetime.fromtimestamp(int(match.group(1)), UTC), now)


def _numbered(base: str, n: int) -> str:
    """`base` for n == 0, else with `.n` before any `,S=...` fields (Dovecot's size fields)."""
    if n == 0:
        return base
    head, comma, fields = base.partition(",")
    return f"{head}.{n}{comma}{fields}"


def _move_unless_taken(source: Path, target: Path) -> bool:
    """Move `source` to `target` unless a different file has that name already: False then.
    A hard link fails on an existing name where rename would replace it; after a crash between
    link and unlink the target is the same file, and only the unlink is left to do."""
    try:
        os.link(source, target)
    except FileExistsError:
        if not os.path.samefile(source, target):
            return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if target.exists():  # no hard links here: look, then rename (we are its only reader)
            return False
        os.rename(source, target)
        return True
    os.unlink(source)
    return True


def _checked(key: str) -> str:
    """A key is a file name inside new/, never a path."""
    if not key or "/" in key or key in (".", ".."):
        raise ValueError(f"not a Maildir key: {key!r}")
    return key
