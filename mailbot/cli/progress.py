"""Progress bars on a terminal (tqdm), for the long work that reports through
`mailbot.context.Progress`: a first start on a full mailbox, an account import. Only when stderr
is a terminal; otherwise (systemd, cron, a pipe) nothing is drawn and the log lines stay plain.
While a bar is drawn, log lines are written above it (`tqdm.write`) instead of through it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from mailbot.context import NO_PROGRESS, Progress

if TYPE_CHECKING:
    from tqdm import tqdm

MIN_TOTAL = 50  # a bar for a handful of items is only noise


class TerminalProgress:
    """One bar per kind of work. A daemon takes a backlog in several passes of at most a few
    hundred mails, each reporting its own count: the bar carries on across them."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.bars: dict[str, tqdm] = {}
        self.base: dict[str, int] = {}  # items done by earlier passes of the same work
        self.last: dict[str, int] = {}
        self.lock = threading.Lock()

    def update(self, what: str, done: int, total: int) -> None:
        with self.lock:
            bar = self.bars.get(what)
            if bar is None:
                if total < MIN_TOTAL or done >= total:
                    return
                from tqdm import tqdm  # only on a terminal: most runs never draw a bar

                columns, lines = _size(self.stream)
                bar = self.bars[what] = tqdm(
                    total=total, desc=what, unit=" items", file=self.stream, ncols=columns, nrows=lines
                )
                self.base[what], self.last[what] = 0, 0
            if done < self.last[what]:  # a new pass over what the last one left
                self.base[what] = bar.n
            self.last[what] = done
            bar.total = self.base[what] + total
            bar.update(self.base[what] + done - bar.n)
            if done >= total:
                bar.close()
                del self.bars[what]


def progress_for(stream: TextIO) -> Progress:
    """Bars when `stream` is a terminal, else nothing."""
    return TerminalProgress(stream) if _is_terminal(stream) else NO_PROGRESS


class BarAwareHandler(logging.StreamHandler[TextIO]):
    """Writes each log line above the progress bars, which are drawn again below it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging's own rule: a failed line never stops the program
            self.handleError(record)


def log_handler(stream: TextIO = sys.stderr) -> logging.Handler:
    return BarAwareHandler(stream) if _is_terminal(stream) else logging.StreamHandler(stream)


def _size(stream: TextIO) -> tuple[int, int]:
    """The terminal's columns and lines; 80 x 24 where it reports none (a pty nobody sized, as
    under `script` or some CI runners: tqdm would then draw nothing at all)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        return 80, 24
    return size.columns or 80, size.lines or 24


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream (tests capture stderr)
        return False
