"""How long work says how far it got: the interface the core reports to, and the silent default.

A first pass over a full mailbox (`mailbot.service.poller`) and an account import
(`mailbot.desk.accounts`) call `update` as they go. The CLI hands in a progress bar when stderr
is a terminal (`mailbot.cli.progress`); under systemd, cron or a pipe nothing is drawn and the
plain log lines are all there is, so journald never sees a carriage return.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def update(self, what: str, done: int, total: int) -> None:
        """`done` of `total` items of the work called `what` (e.g. "VISI mails") are done. The
        same `what` again continues that work; `done == total` ends it."""


class NoProgress:
    """Draws nothing: the default, and what runs without a terminal."""

    def update(self, what: str, done: int, total: int) -> None:
        return None


NO_PROGRESS = NoProgress()
