"""The processes a test started, read from /proc: a process's descendants (taken before it is
killed: its orphans are then adopted by init and no longer look like its children), and every
process that carries this test session's mark in its environment (see tests/conftest.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

SESSION_MARK = "PYTEST_MAILBOT_SESSION"  # not MAILBOT_*: that prefix is mailbot's configuration


def _parents() -> dict[int, int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone meanwhile
            continue
        if fields[0] != "Z":  # a zombie has ended; only its parent's wait is missing
            parents[int(stat.parent.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> set[int]:
    parents = _parents()
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        children = {child for child, ppid in parents.items() if ppid == parent} - found
        found |= children
        todo.extend(children)
    return found


def alive(pids: set[int]) -> set[int]:
    living = set(_parents())
    return {pid for pid in pids if pid in living}


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Those of `pids` still running after up to `timeout` seconds."""
    end = time.monotonic() + timeout
    while (left := alive(pids)) and time.monotonic() < end:
        time.sleep(0.1)
    return left


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def marked(mark: str) -> set[int]:
    """Living processes whose environment holds SESSION_MARK=mark, and their descendants (Dovecot
    hands its own children a cleaned environment)."""
    needle = f"{SESSION_MARK}={mark}".encode()
    found = set()
    for pid in _parents():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and pid != os.getpid():
            found.add(pid)
    return found | {child for pid in found for child in descendants(pid)}
