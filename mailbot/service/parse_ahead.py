"""Preparing the next mails of a batch in a second process while this one commits the first.

A pass over a backlog (a first start, a mailbox that was unreachable for a while) spends about half
of its time on what the raw bytes alone decide: hashing and keeping them on disk, parsing, and
cutting a reply's quoted history. So a helper process prepares the mails after the one being
committed (`mailbot.inbound.prepare`), and a machine with two cores takes the backlog in less
time. The raw file is still on disk before the mail's transaction begins: this process waits for
the helper's answer before it handles the mail.

Only worth it for a batch of several mails (IDLE brings them one at a time) and for mails small
enough to copy cheaply (a big one would be held twice); anything that goes wrong with the helper
(it died, it cannot be started) falls back to preparing here, with the same result: the helper
runs the same `prepare_mail` and hands back its result.

The helper ends with the process that started it, however that one ends: a `kill -9` of the
daemon must not leave it (nor, through it, the forkserver) running for ever (`_end_with`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor

from mailbot.inbound.parse import ParseLimits
from mailbot.inbound.prepare import KeptMail, prepare_mail
from mailbot.sources.base import FetchedMail
from mailbot.store.files import Store

log = logging.getLogger(__name__)

MIN_MAILS = 20  # a pass with fewer pending mails parses them itself: starting the helper costs more
MAX_BYTES = 1024 * 1024  # bigger mails are parsed here: copying them across would double them
WAIT_SECONDS = 300.0  # longer than any mail takes to parse; past it the helper is given up


def _prepare(store: Store, raw: bytes, limits: ParseLimits) -> KeptMail:
    """In the helper: `prepare_mail`, and for a mail that answers another, its visible text too
    (it travels back with the message). A new mail's first text is kept whole, and trimming
    one costs most (with no quote header the header patterns scan the whole text): should it be
    a reply after all, the message works its visible text out when asked, with the same result."""
    ready = prepare_mail(store, raw, limits)
    msg = ready.message
    if msg is not None and (msg.thread_ids or "[" in msg.subject):
        _ = msg.reply_text
    return ready


class ParseAhead:
    """One helper process for one pass. `submit` the mails of a batch before committing them,
    then `prepare` each in turn; `close` at the end of the pass."""

    def __init__(self, store: Store, limits: ParseLimits):
        self._store = store
        self._limits = limits
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[str, Future[KeptMail]] = {}
        self._broken = False

    def submit(self, mails: Iterable[FetchedMail]) -> None:
        for mail in mails:
            if len(mail.raw) <= MAX_BYTES and not self._broken:
                try:
                    self._futures[mail.key] = self._helper().submit(
                        _prepare, self._store, mail.raw, self._limits
                    )
                except Exception as exc:  # cannot start or reach the helper: parse here
                    self._give_up(exc)

    def prepare(self, mail: FetchedMail) -> KeptMail:
        """`prepare_mail` of this mail: the helper's result when it has one, else done here."""
        future = self._futures.pop(mail.key, None)
        if future is not None and not self._broken:
            try:
                return future.result(timeout=WAIT_SECONDS)
            except Exception as exc:  # the helper died or hangs
                self._give_up(exc)
        return prepare_mail(self._store, mail.raw, self._limits)

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
            context.set_forkserver_preload(["mailbot.service.parse_ahead"])
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=context, initializer=_end_with, initargs=(os.getpid(),)
            )
        return self._pool

    def _give_up(self, exc: BaseException) -> None:
        if not self._broken:
            log.warning(
                "preparing mail in a helper process failed (%s: %s); preparing it here for "
                "the rest of the pass",
                type(exc).__name__,
                exc,
            )
        self._broken = True
        self._futures.clear()


PR_SET_PDEATHSIG = 1  # prctl(2), <linux/prctl.h>


def _end_with(starter: int) -> None:
    """In the helper, first: end when `starter` (the process that wants mail prepared) ends.

    Nothing else would end it: it waits for work on a queue whose both ends it holds, so the
    starter's death is no end of file; and as long as it runs, the forkserver that made it (and
    waits for every holder of its "alive" pipe to go) and the resource tracker run too. The helper
    is the forkserver's child, not the starter's: PR_SET_PDEATHSIG ends it with the forkserver,
    and a thread waiting on a pidfd of the starter ends it with the starter; then the forkserver
    and the tracker see their pipes close and end by themselves."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    threading.Thread(target=_exit_after, args=(starter,), name="end-with-starter", daemon=True).start()


def _exit_after(starter: int) -> None:
    try:
        pidfd = os.pidfd_open(starter)
    except ProcessLookupError:  # already gone
        os._exit(0)
    except (AttributeError, OSError):  # no pidfd here (not Linux, or before 5.3): look every second
        while _alive(starter):
            time.sleep(1.0)
        os._exit(0)
    select.select([pidfd], [], [])  # a pidfd turns readable when its process has ended
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
