"""Files under MAILBOT_DATA_DIR: raw mails, attachments and quarantined mail.

Everything is written to a temporary name, then renamed into place, so a crash never leaves half
a file under a real name. Names on disk are always generated (content hashes and timestamps); a
sender's file name is metadata only and never becomes a path.

Durability matches the database's (SQLite in WAL mode with synchronous=NORMAL, `mailbot.store.db`):
a file survives the process being killed at any point, since the kernel holds what was written.
Against a power cut, neither the last commits nor the last files are guaranteed, and neither
needs to be for mail read from a mailbox: it stays on the server (flagged, or moved to the
processed folder), and the UID cursor that would skip it is in the same database. A fsync per
mail cost about 3 ms, as much as everything else mailbot does with a mail but rendering its
answers; `Store(fsync=True)` brings it back where the caller is the only copy (an MTA pipe).

A disk without room (ENOSPC, or a quota: EDQUOT) raises `DiskFull`, a transient error: the mail is
left where it came from, to be taken once there is room.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
from datetime import UTC, datetime
from pathlib import Path

from mailbot.errors import DiskFull


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    def __init__(self, data_dir: Path, *, fsync: bool = False):
        self.root = data_dir
        self.fsync = fsync
        self.raw_dir = data_dir / "raw"
        self.attachments_dir = data_dir / "attachments"
        self.quarantine_dir = data_dir / "quarantine"
        self.outbox_dir = data_dir / "outbox"

    def save_raw(self, raw: bytes, digest: str = "") -> Path:
        """Keep the original mail, content-addressed: the same bytes are stored once. `digest`:
        its SHA-256 where the caller has it already."""
        digest = digest or sha256_hex(raw)
        return self._write_once(self.raw_dir / digest[:2] / f"{digest}.eml", raw)

    def save_attachment(self, payload: bytes) -> tuple[str, Path]:
        digest = sha256_hex(payload)
        return digest, self._write_once(self.attachments_dir / digest[:2] / digest, payload)

    def quarantine(self, raw: bytes, reason: str, origin: str) -> Path:
        """Keep a mail that could not be handled, with a file that says why and where from."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.quarantine_dir / f"{stamp}-{sha256_hex(raw)[:12]}.eml"
        self._write_once(path, raw)
        note = f"reason: {reason}\norigin: {origin}\nsha256: {sha256_hex(raw)}\n"
        self._write_once(path.with_suffix(".reason"), note.encode())
        return path

    def quarantined(self) -> list[Path]:
        if not self.quarantine_dir.is_dir():
            return []
        return sorted(self.quarantine_dir.glob("*.eml"))

    def quarantined_mail(self, name: str) -> Path | None:
        """The quarantined mail called `name` (its file name, with or without `.eml`), or None.
        Only a name of a file in the quarantine folder: never a path elsewhere."""
        stem = name.removesuffix(".eml")
        path = self.quarantine_dir / f"{stem}.eml"
        if "/" in stem or "\\" in stem or stem.startswith(".") or not path.is_file():
            return None
        return path

    @staticmethod
    def quarantine_note(path: Path) -> dict[str, str]:
        """What the `.reason` file beside a quarantined mail says (reason, origin, sha256)."""
        note = path.with_suffix(".reason")
        text = note.read_text(encoding="utf-8", errors="replace") if note.is_file() else ""
        pairs = (line.partition(": ") for line in text.splitlines())
        return {key: value for key, _, value in pairs if key}

    def raw_file(self, raw_path: str) -> Path | None:
        """Where the raw mail a row names (`Seen.raw_path`, `Message.raw_path`) is in this data
        folder: found by its generated name, so that a database restored into another folder
        (docs/operating.md) still finds its files. None when the row names none."""
        name = Path(raw_path).name
        if not name:
            return None
        if Path(raw_path).parent.name == self.quarantine_dir.name:
            return self.quarantine_dir / name
        return self.raw_dir / name[:2] / name

    def attachment_file(self, stored_path: str) -> Path | None:
        """The file of an attachment row (`Attachment.stored_path`, relative to the data folder)."""
        return self.root / stored_path if stored_path else None

    @staticmethod
    def remove(path: Path | None) -> bool:
        """Delete a kept file (a raw mail, an attachment, a quarantined mail with its reason)
        once nothing needs it; True when there was one."""
        if path is None or not path.is_file():
            return False
        path.unlink(missing_ok=True)
        if path.suffix == ".eml":
            path.with_suffix(".reason").unlink(missing_ok=True)
        return True

    @staticmethod
    def release(path: Path) -> None:
        """Take a mail out of the quarantine: its file and its `.reason`."""
        path.unlink(missing_ok=True)
        path.with_suffix(".reason").unlink(missing_ok=True)

    def _write_once(self, path: Path, data: bytes) -> Path:
        if path.exists():
            return path
        # A temporary name of this process's own: O_EXCL still refuses a leftover, and unlike
        # mkstemp no random name is drawn; the folder is made only when it is missing.
        tmp = path.parent / f".tmp-{os.getpid()}-{next(_TEMP_NUMBERS)}"
        try:
            with os.fdopen(_open_new(tmp), "wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
                raise DiskFull(f"no space left on the disk to write {path} ({exc.strerror})") from exc
            raise
        return path


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)


def _open_new(tmp: Path) -> int:
    try:
        return os.open(tmp, _CREATE, 0o600)
    except FileNotFoundError:  # the folder's first file
        tmp.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # left by a killed process that had this process's id
        tmp.unlink(missing_ok=True)
    return os.open(tmp, _CREATE, 0o600)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_TEMP_NUMBERS = itertools.count()
