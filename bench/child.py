"""Run a module as `__main__` (`python bench/child.py mailbot --env-file F poll --once`) and, at
exit, write this process's own peak RSS in kB (VmHWM), plus the peaks of the helper processes it
started (mailbot's parse-ahead helper and the forkserver that makes it, looked at every 0.2 s), to
the file named by $BENCH_PEAK_FILE: an upper bound of what the run needed at once.

The benchmark measures peak memory this way because wait4's ru_maxrss would not do: Linux
counts into a child's ru_maxrss the peak of the parent it was forked from, and the benchmark
holds the corpus in memory. Kept free of imports from the bench package: it runs as a script.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
import threading
import time
from pathlib import Path

_helpers: dict[int, int] = {}  # pid of a descendant: its VmHWM in kB when last looked at


def _peak_kb(pid: int | str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone meanwhile
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def _descendants() -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [os.getpid()]
    while todo:
        parent = todo.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        todo.extend(children)
    return found


def _watch_helpers() -> None:
    while True:
        for pid in _descendants():
            _helpers[pid] = max(_helpers.get(pid, 0), _peak_kb(pid))
        time.sleep(0.2)


def _write_peak() -> None:
    target = os.environ.get("BENCH_PEAK_FILE")
    if target:
        Path(target).write_text(str(_peak_kb("self") + sum(_helpers.values())))


if __name__ == "__main__":
    del sys.path[0]  # this folder: the module comes from the installation (or PYTHONPATH)
    atexit.register(_write_peak)
    threading.Thread(target=_watch_helpers, daemon=True).start()
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
