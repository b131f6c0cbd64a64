"""`mailbot db backup PATH`: a consistent copy of a live installation, the database and the
files beside it, that a restore turns back into a working installation (docs/operating.md).

The database is copied with SQLite's online backup API (`sqlite3.Connection.backup`) in one
step: the copy is the database as of one moment, taken inside one read transaction, which in WAL
mode never blocks the daemon's writer. (A copy in several steps restarts whenever another
connection writes, so under a busy daemon it might never end; a plain file copy may catch a
page half-written.) The files are copied afterwards: a raw mail or an attachment is on disk
before the transaction that names it commits, and files are never changed once written, so
every file the copied database names is in the backup (with perhaps a few newer ones, which do
no harm). Server databases (PostgreSQL) are backed up with their own tools.

What it leaves to others: when to back up (a timer, see docs/operating.md) and where backups go.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailbot.errors import CannotCreate, DatabaseUnavailable, UsageError
from mailbot.store.db import sqlite_file
from mailbot.store.files import Store

DATABASE_NAME = "mailbot.db"
FOLDERS = ("raw", "attachments", "quarantine")  # the files a restore needs; not the local outbox


@dataclass(frozen=True)
class BackupSummary:
    folder: Path
    database_bytes: int
    files: int


def back_up(database_url: str, store: Store, target: Path, busy_timeout: float = 10.0) -> BackupSummary:
    """Copy the database at `database_url` and the files of `store` into the new folder `target`
    (it must not exist, or be empty)."""
    source = sqlite_file(database_url)
    if source is None:
        raise UsageError(
            "db backup copies a SQLite database; MAILBOT_DATABASE_URL names a server database: "
            "back it up with its own tools (pg_dump) and copy MAILBOT_DATA_DIR beside it"
        )
    if not source.is_file():
        raise DatabaseUnavailable(f"no database at {source}: nothing to back up")
    _make_empty_folder(target)
    copy = target / DATABASE_NAME
    _copy_database(source, copy, busy_timeout)
    try:
        files = sum(_copy_folder(store.root / name, target / name) for name in FOLDERS)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # the CLI's one line for a full disk
        raise CannotCreate(f"cannot copy the data folder into {target}: {exc}") from None
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    (target / "BACKUP").write_text(f"mailbot backup of {source}\ntaken {stamp}\nfiles {files}\n")
    return BackupSummary(target, copy.stat().st_size, files)


def _make_empty_folder(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CannotCreate(f"{target} exists and is not an empty folder: give a new path for the backup")
    try:
        # The backup holds every customer's mail: readable by the owner only.
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotCreate(f"cannot create {target}: {exc.strerror}") from None


def _copy_database(source: Path, copy: Path, busy_timeout: float) -> None:
    try:
        live = sqlite3.connect(source, timeout=busy_timeout)  # only read from
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(f"cannot open {source} to back it up: {exc}") from None
    target = sqlite3.connect(copy)
    try:
        live.backup(target)  # pages=-1: the whole database in one step, as of one moment
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        problems = target.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(f"backup of {source} failed: {exc}") from None
    finally:
        target.close()
        live.close()
    if problems != "ok":
        raise DatabaseUnavailable(f"the copy of {source} does not check out ({problems}); kept at {copy}")
    os.chmod(copy, 0o600)


def _copy_folder(source: Path, target: Path) -> int:
    """Copy the finished files under `source` (not a writer's `.tmp-*` ones); returns how many."""
    if not source.is_dir():
        return 0
    count = 0
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith(".tmp-"):
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            shutil.copy2(path, destination)
        except FileNotFoundError:  # released from the quarantine meanwhile
            continue
        count += 1
    return count
