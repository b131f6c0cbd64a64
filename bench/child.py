"""Run a module as `__main__` (`python bench/child.py mailbot --env-file F poll --once`) and, at
exit, write this process's own peak RSS in kB (VmHWM) to the file named by $BENCH_PEAK_FILE.

The benchmark measures peak memory this way because wait4's ru_maxrss would not do: Linux
counts into a child's ru_maxrss the peak of the parent it was forked from, and the benchmark
holds the corpus in memory. Kept free of imports from the bench package: it runs as a script.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
from pathlib import Path


def _write_peak() -> None:
    target = os.environ.get("BENCH_PEAK_FILE")
    if not target:
        return
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            Path(target).write_text(line.split()[1])


if __name__ == "__main__":
    del sys.path[0]  # this folder: the module comes from the installation (or PYTHONPATH)
    atexit.register(_write_peak)
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
