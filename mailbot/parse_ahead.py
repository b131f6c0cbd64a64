"""Parsing the next mails of a batch in a second process while this one commits the first.

A pass over a backlog (a first start, a mailbox that was unreachable for a while) spends about a
third of its time parsing. Parsing is a function of the raw bytes alone, so a helper process can
parse the mails after the one being committed, and a machine with two cores takes the backlog in
less time. Only worth it for a batch of several mails (IDLE brings them one at a time) and for
mails small enough to copy cheaply (a big one would be held twice); anything that goes wrong with
the helper (it died, it cannot be started) falls back to parsing here, with the same result: the
helper runs the same `parse_mail` and hands back its message or its quarantine reason.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor

from mailbot.errors import QuarantineError
from mailbot.message import InboundMessage
from mailbot.parse import ParseLimits, parse_mail
from mailbot.sources.base import FetchedMail

log = logging.getLogger(__name__)

MIN_MAILS = 20  # a pass with fewer pending mails parses them itself: starting the helper costs more
MAX_BYTES = 1024 * 1024  # bigger mails are parsed here: copying them across would double them
WAIT_SECONDS = 300.0  # longer than any mail takes to parse; past it the helper is given up


def _parse(raw: bytes, limits: ParseLimits) -> InboundMessage | str:
    """In the helper: the message, or the quarantine reason (a string: it crosses back as is)."""
    try:
        return parse_mail(raw, limits)
    except QuarantineError as exc:
        return exc.reason


class ParseAhead:
    """One helper process for one pass. `submit` the mails of a batch before committing them,
    then `parse` each in turn; `close` at the end of the pass."""

    def __init__(self, limits: ParseLimits):
        self._limits = limits
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[str, Future[InboundMessage | str]] = {}
        self._broken = False

    def submit(self, mails: Iterable[FetchedMail]) -> None:
        for mail in mails:
            if len(mail.raw) <= MAX_BYTES and not self._broken:
                try:
                    self._futures[mail.key] = self._helper().submit(_parse, mail.raw, self._limits)
                except Exception as exc:  # cannot start or reach the helper: parse here
                    self._give_up(exc)

    def parse(self, mail: FetchedMail) -> InboundMessage:
        """`parse_mail` of this mail: the helper's result when it has one, else parsed here."""
        future = self._futures.pop(mail.key, None)
        if future is not None and not self._broken:
            try:
                result = future.result(timeout=WAIT_SECONDS)
            except Exception as exc:  # the helper died or hangs
                self._give_up(exc)
            else:
                if isinstance(result, str):
                    raise QuarantineError(result)
                return result
        return parse_mail(mail.raw, self._limits)

    def close(self) -> None:
        self._futures.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=not self._broken, cancel_futures=True)
            self._pool = None

    def _helper(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver, not fork: the daemon has threads, and a forked copy of a process with
            # threads can inherit a lock another thread held. The server imports the parser once.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["mailbot.parse_ahead"])
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        return self._pool

    def _give_up(self, exc: BaseException) -> None:
        if not self._broken:
            log.warning("parsing in a helper process failed (%s: %s); parsing here for the rest of "
                        "the pass", type(exc).__name__, exc)
        self._broken = True
        self._futures.clear()
