"""The daemon's long-lived workers, one per mailbox and one for the outbox.

Each worker is run by an APScheduler interval job (`run_once`): it keeps its own connection
between runs (never shared across threads), handles what is pending, then waits for news with
IMAP IDLE where the server has it (or a short nap) until its run is nearly over, handling mail
as it arrives. A dead connection is dropped and opened again with a backoff of 1 s doubling to
60 s, logged once per outage; so is a database that cannot take writes (locked, disk full),
whose mail stays on the server for the next try. The outbox worker sleeps on an event that a
mailbox worker sets as soon as it committed new mail, so an acknowledgement leaves within the
second.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable

from peewee import DatabaseError

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.errors import DatabaseUnavailable, MailbotError, TokenRefused
from mailbot.outgoing.outbox import drain_outbox
from mailbot.service import health, oauth
from mailbot.service.metrics import Metrics
from mailbot.service.poller import PASS_LIMIT, PassReport, poll_mailbox
from mailbot.sources import open_source
from mailbot.sources.base import MailSource
from mailbot.transports import Transport, transport_from_url

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0


class MailboxWorker:
    def __init__(
        self,
        desk: Desk,
        product: ProductSettings,
        context: ssl.SSLContext,
        stop: threading.Event,
        on_mail: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
        may_work: Callable[[str], bool] | None = None,
        recheck: float = 20.0,
    ):
        self.desk, self.product, self.context, self.stop = desk, product, context, stop
        self.on_mail, self.metrics = on_mail, metrics
        # Several daemons: whether this daemon holds the mailbox's lease (mailbot.service.leases),
        # asked before each pass and at least every `recheck` seconds while waiting for news.
        self.may_work, self.recheck = may_work, recheck
        self.source: MailSource | None = None
        self.mailbox_name = ""
        self.backoff = 1.0
        self.failing = False

    def run_once(self, budget: float) -> None:
        """Handle mail for about `budget` seconds, then return (the scheduler calls again)."""
        deadline = time.monotonic() + budget
        while not self.stop.is_set() and time.monotonic() < deadline:
            if not self._leased():
                self.close()  # another daemon works this mailbox; IDLE is its business
                self.stop.wait(min(1.0, max(deadline - time.monotonic(), 0)))
                continue
            try:
                self._connect()
                if not self._poll(self._leased):  # a backlog: on to its next PASS_LIMIT mails
                    self._wait_for_news(deadline)
            except (MailbotError, DatabaseError) as exc:  # DatabaseError: the cursor not saved
                self._fail(exc)
                self.stop.wait(min(self.backoff, max(deadline - time.monotonic(), 0)))
                self.backoff = min(self.backoff * 2, MAX_BACKOFF)

    def _connect(self) -> None:
        if self.source is not None:
            return
        settings = self.desk.settings
        source = open_source(
            self.product.mailbox,
            ssl_context=self.context,
            timeout=settings.io_timeout,
            processed_folder=self.product.processed_folder or None,
            token=oauth.product_token(settings, self.product),
        )
        self.mailbox_name = source.name  # never with the password
        source.open()
        self.source = source
        if self.failing:
            log.info("%s: mailbox %s reachable again", self.product.key, source.name)
        self.failing, self.backoff = False, 1.0

    def _leased(self) -> bool:
        return self.may_work is None or self.may_work(self.product.key)

    def _poll(self, leased: Callable[[], bool]) -> bool:
        """One pass of at most PASS_LIMIT mails, ended early when the lease is lost; True when
        mail is left for the next one."""
        assert self.source is not None
        started = time.monotonic()

        def should_stop() -> bool:
            return self.stop.is_set() or not leased()

        report = poll_mailbox(self.desk, self.product, self.source, should_stop, limit=PASS_LIMIT)
        seconds = time.monotonic() - started
        record_pass(self.desk, self.product, report, seconds)
        if self.metrics is not None:
            self.metrics.count_pass(self.product.key, report.outcomes, seconds)
        if report.handled:
            log.info("%s: %s", self.source.name, dict(report.outcomes))
            self.on_mail()
        return report.remaining > 0

    def _wait_for_news(self, deadline: float) -> None:
        assert self.source is not None
        left = deadline - time.monotonic()
        if self.may_work is not None:
            left = min(left, self.recheck)  # back in time to see a lease that was lost
        if left > 0 and not self.stop.is_set():
            self.source.wait_for_news(left, self.stop.is_set)

    def _fail(self, exc: Exception) -> None:
        if not self.failing:  # once per outage, not once per retry
            # The source's errors name the mailbox (without its password); the database's don't.
            text = " ".join(str(exc).split())  # psycopg's messages span lines
            detail = f"database unavailable: {text}" if isinstance(exc, DatabaseError) else text
            log.warning("%s: %s; retrying with backoff", self.product.key, detail)
        if not isinstance(exc, DatabaseError | DatabaseUnavailable):  # that could not be recorded either
            try:
                health.record_failure(self.desk, self.product, self.mailbox_name, str(exc))
                if isinstance(exc, TokenRefused):
                    health.raise_token_alert(self.desk, self.product, exc)
            except DatabaseError as lost:  # the database went away too: the log line says it all
                log.debug("%s: failure not recorded: %s", self.product.key, lost)
        self.failing = True
        self.close()

    def interrupt(self) -> None:
        """Nothing to do: IDLE and the backoff wait look at the stop event every second."""

    def close(self) -> None:
        if self.source is not None:
            try:
                self.source.close()
            finally:
                self.source = None


def record_pass(desk: Desk, product: ProductSettings, report: PassReport, seconds: float) -> None:
    """The pass's one health write (`mailbot.service.health`)."""
    new_mails = report.handled - report.outcomes["already seen"]
    health.record_pass(desk, product, health.PassResult(report.mailbox, new_mails, report.remaining, seconds))


class OutboxWorker:
    def __init__(
        self, desk: Desk, context: ssl.SSLContext, stop: threading.Event, metrics: Metrics | None = None
    ):
        self.desk, self.context, self.stop, self.metrics = desk, context, stop, metrics
        self.wake = threading.Event()
        self.transport: Transport | None = None
        self.failing = False

    def run_once(self, budget: float) -> None:
        deadline = time.monotonic() + budget
        while not self.stop.is_set():
            self.wake.clear()
            self._drain()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.wake.wait(left)

    def _drain(self) -> None:
        settings = self.desk.settings
        if self.transport is None:
            self.transport = transport_from_url(
                settings.smtp_url or None,
                self.desk.store.outbox_dir,
                ssl_context=self.context,
                timeout=settings.io_timeout,
                token=oauth.smtp_token(settings),
            )
        try:
            counts = drain_outbox(self.desk, self.transport, should_stop=self.stop.is_set)
        except (MailbotError, DatabaseError) as exc:  # the rows stay pending for the next round
            if not self.failing:  # once per outage, not once per round
                log.warning("outbox: %s; mail waits for a later round", exc)
            self.failing = True
            self.close()
            return
        if self.metrics is not None:
            self.metrics.count_sent(counts)
        if counts:
            log.info("outbox: %s", dict(counts))
        if self.failing and counts["sent"]:
            log.info("outbox: delivering again")
            self.failing = False

    def interrupt(self) -> None:
        """Wake the worker so that it sees the stop request now."""
        self.wake.set()

    def close(self) -> None:
        if self.transport is not None:
            try:
                self.transport.close()
            finally:
                self.transport = None
