"""The token files: one JSON file per mailbox under `$MAILBOT_DATA_DIR/oauth/NAME.json`, mode 0600,
written whole to a temporary file, fsynced and renamed over the old one (and the folder fsynced),
so that a crash at any moment leaves either the old tokens or the new ones, never half of each and
never none. `locked` holds an exclusive lock on `NAME.lock` around a refresh, so that two
processes (the daemon and a `poll --once` beside it) never refresh over each other: the second one
waits, then finds the token the first one stored.

What it leaves to others: what the tokens are and when to refresh them (`keeper`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# What a token file may hold; `public` leaves out the first three.
SECRET_FIELDS = ("access_token", "refresh_token", "id_token")


class TokenStore:
    def __init__(self, folder: Path, name: str):
        self.folder = folder
        self.path = folder / f"{name}.json"
        self._lock_path = folder / f"{name}.lock"

    def load(self) -> dict[str, Any]:
        """The stored state, {} when there is none yet."""
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return {}
        except ValueError:  # cannot happen with rename, but a hand-edited file could
            return {}

    def save(self, state: dict[str, Any]) -> None:
        self._make_folder()
        temp = self.path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(state, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        _fsync_folder(self.folder)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock across processes, held for one refresh."""
        self._make_folder()
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def _make_folder(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def public(state: dict[str, Any]) -> dict[str, Any]:
    """The state without a single secret: what `mailbot oauth status` may show."""
    return {key: value for key, value in state.items() if key not in SECRET_FIELDS}


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
