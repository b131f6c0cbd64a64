"""Taking room or write access away from a test's files in ways that hold for root too (the
tests run as root in CI, and root ignores file modes): the immutable flag (`chattr +i`), and a
tiny tmpfs that fills up for real. Each is undone when its block ends; a machine that allows
neither skips the test and says why."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _chattr(flag: str, paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True)


@contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """PATHS cannot be changed, renamed or deleted, nor (a folder) get new entries, by anyone."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed: cannot take write access away from root")
    done = _chattr("+i", list(paths))
    if done.returncode != 0:
        _chattr("-i", list(paths))
        pytest.skip(f"chattr +i is not permitted here: {done.stderr.strip()}")
    try:
        yield
    finally:
        _chattr("-i", list(paths))


@contextmanager
def writable_again(*paths: Path) -> Iterator[None]:
    """Inside `immutable`: PATHS writable again for a while (the admin's half-done repair)."""
    _chattr("-i", list(paths))
    try:
        yield
    finally:
        _chattr("+i", list(paths))


@contextmanager
def small_disk(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of SIZE mounted at PATH (made here), unmounted at the end."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); the full database is "
            "still tested with SQLite's max_page_count in test_faults_database.py"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(folder: Path) -> None:
    """Take every free byte of the file system under FOLDER."""
    with (folder / "filler").open("wb", buffering=0) as filler:
        for size in (65536, 4096, 1):
            try:
                while True:
                    filler.write(b"\0" * size)
            except OSError:
                pass
