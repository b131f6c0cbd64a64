"""The daemon's wiring, at the edge: an APScheduler job per mailbox worker, one for the outbox
worker and one per SLA job; signal handling (a first SIGTERM finishes the current mail and
stops, a second exits at once); systemd readiness and watchdog pings; and the one-shot passes
behind `poll --once`, `ingest` and `check`. Everything here calls inward; nothing inward calls
here."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from peewee import DatabaseError

from mailbot.config import ProductSettings, Settings
from mailbot.context import Desk
from mailbot.desk import jobs, replies
from mailbot.errors import EX_SOFTWARE, EX_TEMPFAIL, MailbotError, TokenRefused
from mailbot.outgoing.outbox import drain_outbox
from mailbot.service import health, leases, oauth
from mailbot.service.ingest import IngestResult, ingest_mail
from mailbot.service.leases import LeaseKeeper
from mailbot.service.metrics import Metrics
from mailbot.service.poller import poll_mailbox
from mailbot.service.workers import MailboxWorker, OutboxWorker, record_pass
from mailbot.sources import open_source
from mailbot.sources.base import FetchedMail
from mailbot.store.db import closing_thread_connection, explain
from mailbot.store.files import sha256_hex
from mailbot.transports import transport_from_url

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 30
HEALTH_INTERVAL = 60  # seconds between health checks (alerts) in the daemon


def poll_product(
    desk: Desk, product: ProductSettings, context: ssl.SSLContext, stop: threading.Event | None = None
) -> str | None:
    """One pass over one product's mailbox; returns an error line instead of raising."""
    return _pass_over(desk, product, context, stop)[0]


def _pass_over(
    desk: Desk, product: ProductSettings, context: ssl.SSLContext, stop: threading.Event | None = None
) -> tuple[str | None, int]:
    """`poll_product`, and how many mails it quarantined after an error in mailbot itself."""
    settings = desk.settings
    source = open_source(
        product.mailbox,
        ssl_context=context,
        timeout=settings.io_timeout,
        processed_folder=product.processed_folder or None,
        token=oauth.product_token(settings, product),
    )
    started = time.monotonic()
    try:
        source.open()
        report = poll_mailbox(desk, product, source, stop.is_set if stop else lambda: False)
        record_pass(desk, product, report, time.monotonic() - started)
        if report.handled:
            log.info("%s: %s", source.name, dict(report.outcomes))
        return None, report.internal_errors
    except DatabaseError as exc:  # the cursor could not be saved: the mail stays on the server
        return _pass_over_failed(product, source.name, explain(exc, settings.database_url))
    except MailbotError as exc:
        health.record_failure(desk, product, source.name, str(exc))
        if isinstance(exc, TokenRefused):
            health.raise_token_alert(desk, product, exc)
        return _pass_over_failed(product, source.name, exc)
    finally:
        source.close()


def _pass_over_failed(product: ProductSettings, mailbox: str, exc: MailbotError) -> tuple[str, int]:
    log.warning("%s: mailbox %s: %s", product.key, mailbox, exc)
    return f"mailbox of {product.key} ({mailbox}) failed: {exc}", 0


def send_outbox(desk: Desk, context: ssl.SSLContext, stop: threading.Event | None = None) -> None:
    settings = desk.settings
    transport = transport_from_url(
        settings.smtp_url or None,
        desk.store.outbox_dir,
        ssl_context=context,
        timeout=settings.io_timeout,
        token=oauth.smtp_token(settings),
    )
    try:
        counts = drain_outbox(desk, transport, should_stop=stop.is_set if stop else lambda: False)
        if counts:
            log.info("outbox: %s", dict(counts))
    finally:
        transport.close()


def poll_everything(desk: Desk, context: ssl.SSLContext) -> tuple[list[str], int]:
    """`poll --once`: every mailbox, then the outbox. Returns one line per failed mailbox, one
    when the outbox could not be delivered (SMTP server unreachable, database unavailable), and
    one per mailbox where mail was quarantined after an error in mailbot; and the exit code:
    EX_SOFTWARE for such an error (it needs a person, not a retry), else EX_TEMPFAIL for a
    failure, else 0."""
    failures: list[str] = []
    internal = 0
    for product in desk.settings.products:
        with leases.borrowed(desk, product.key) as ours:
            if not ours:  # several daemons on PostgreSQL: a running one works this mailbox
                log.info("%s: mailbox worked by a running daemon; left to it", product.key)
                continue
            failure, errors = _pass_over(desk, product, context)
        failures += [failure] if failure else []
        internal += errors
        if errors:
            failures.append(
                f"mailbox of {product.key}: {errors} mail(s) quarantined after an internal "
                f"error; see the log and {desk.store.quarantine_dir}"
            )
    jobs.run_due_jobs(desk)
    try:
        send_outbox(desk, context)
    except MailbotError as exc:
        log.warning("outbox: %s", exc)
        failures.append(f"outbox not delivered: {exc}")
    if check_health(desk):  # the alert mails go out now, not at the next pass
        with contextlib.suppress(MailbotError):
            send_outbox(desk, context)
    return failures, EX_SOFTWARE if internal else EX_TEMPFAIL if failures else 0


def check_health(desk: Desk, stop: threading.Event | None = None) -> list[str]:
    """The health alerts (`mailbot.service.health`), raised or recovered now; never raises, so
    that the daemon's job comes back."""
    if stop is not None and stop.is_set():
        return []
    try:
        return health.check_alarms(desk)
    except (DatabaseError, MailbotError) as exc:
        log.warning("health check not done: %s", exc)
    except Exception:  # the per-job boundary
        log.exception("health check failed")
    return []


def ingest_files(desk: Desk, product: ProductSettings, files: Iterable[Path], stdin: BinaryIO) -> list[str]:
    """`mailbot ingest`: raw mails from files, or one from stdin; a line per mail."""
    return [line for line, _ in ingest_each(desk, product, files, stdin)]


def ingest_each(
    desk: Desk, product: ProductSettings, files: Iterable[Path], stdin: BinaryIO
) -> Iterator[tuple[str, IngestResult]]:
    """Each mail's line and result. The key is the content hash, so a mail an MTA delivers twice
    is handled once."""
    raws = [(str(path), path.read_bytes()) for path in files] or [("stdin", stdin.read())]
    for origin, raw in raws:
        mail = FetchedMail(mailbox=f"ingest:{product.key}", uidvalidity=0, key=sha256_hex(raw), raw=raw)
        result = ingest_mail(desk, product, mail)
        yield f"{origin}: {result.outcome} {result.reference} {result.reason}".rstrip(), result


def check_connections(settings: Settings, context: ssl.SSLContext) -> list[str]:
    lines = []
    for product in settings.products:
        source = open_source(
            product.mailbox,
            ssl_context=context,
            timeout=settings.io_timeout,
            token=oauth.product_token(settings, product),
        )
        try:
            source.open()
            lines.append(f"ok   {product.key}: mailbox {source.name} reachable")
        except MailbotError as exc:
            lines.append(f"FAIL {product.key}: mailbox {source.name}: {exc}")
        finally:
            source.close()
    try:
        transport = transport_from_url(
            settings.smtp_url or None,
            settings.data_dir / "outbox",
            ssl_context=context,
            timeout=settings.io_timeout,
            token=oauth.smtp_token(settings),
        )
        transport.check()
        lines.append(f"ok   outgoing mail: {_describe_smtp(settings)}")
        transport.close()
    except MailbotError as exc:
        lines.append(f"FAIL outgoing mail ({_describe_smtp(settings)}): {exc}")
    return lines


def check_authentication(settings: Settings, last: int = 50) -> list[str]:
    """With MAILBOT_TRUSTED_AUTHSERV_ID set: a WARN line when some of the last `last` engineers'
    mails came without that server's Authentication-Results where it writes them (the database
    must be open). A server that stopped adding it, or another id, silences every engineer."""
    trusted = settings.trusted_authserv_id
    if not trusted:
        return []
    without, seen = replies.unauthenticated_share(last)
    if not without:
        return [f"ok   Authentication-Results of {trusted}: on all of the last {seen} engineers' mails"]
    return [
        f"WARN {without} of the last {seen} engineers' mails carried no Authentication-Results of"
        f" {trusted} at the top of their header, so their commands were not applied: does that server"
        " add the header above its Received line, and is MAILBOT_TRUSTED_AUTHSERV_ID its authserv-id?"
    ]


def _describe_smtp(settings: Settings) -> str:
    url = settings.smtp_url
    if not url:
        return f"local Maildir {settings.data_dir / 'outbox'}"
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"  # never the password


def run_daemon(desk: Desk, context: ssl.SSLContext) -> None:
    for line in desk.settings.unknown_keys:
        log.warning("configuration: %s", line)  # `mailbot check` fails on these; the daemon runs on
    stop = threading.Event()
    _install_signal_handlers(stop)
    metrics = Metrics(desk)
    if desk.settings.metrics is not None:
        metrics.serve(*desk.settings.metrics)
    try:
        _run_scheduler(desk, context, stop, metrics)
    finally:
        metrics.close()


def _run_scheduler(desk: Desk, context: ssl.SSLContext, stop: threading.Event, metrics: Metrics) -> None:
    scheduler, workers = build_scheduler(desk, context, stop, metrics)
    scheduler.start()
    notify_systemd("READY=1")
    log.info("mailbot running: %d mailbox(es)", len(desk.settings.products))
    interval = _watchdog_interval()
    while not stop.wait(interval):
        notify_systemd("WATCHDOG=1")
    notify_systemd("STOPPING=1")
    log.info("stopping: finishing the current mail (at most %d s)", STOP_GRACE_SECONDS)
    for worker in workers:
        worker.interrupt()
    stopper = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True)
    stopper.start()
    stopper.join(STOP_GRACE_SECONDS)
    if stopper.is_alive():
        # A worker is stuck in I/O past the grace period. What it had not committed is still on
        # the server, so leaving now loses nothing; waiting would block the exit for good.
        log.error("a worker did not finish within %d s; exiting anyway", STOP_GRACE_SECONDS)
        logging.shutdown()
        os._exit(EX_SOFTWARE)
    for worker in workers:
        worker.close()
    log.info("mailbot stopped")


def build_scheduler(
    desk: Desk, context: ssl.SSLContext, stop: threading.Event, metrics: Metrics | None = None
) -> tuple[BackgroundScheduler, list[MailboxWorker | OutboxWorker | LeaseKeeper]]:
    """A job per mailbox worker and one for the outbox worker, each running for the daemon's
    whole life in its own thread of the pool (so one slow server delays no other), the SLA
    jobs and the health check."""
    settings = desk.settings
    jobs_count = len(settings.products) + 3 + len(jobs.JOBS)
    scheduler = BackgroundScheduler(timezone="UTC", executors={"default": ThreadPoolExecutor(jobs_count + 1)})
    outbox = OutboxWorker(desk, context, stop, metrics)
    workers: list[MailboxWorker | OutboxWorker | LeaseKeeper] = [outbox]
    now = datetime.now(UTC)
    keeper = None
    if not settings.database_url.startswith("sqlite:"):  # several daemons may share the database
        keeper = LeaseKeeper(desk, stop)
        workers.append(keeper)
        _add_worker_job(scheduler, "leases", keeper.run_once, settings.poll_interval, now, stop)
    for product in settings.products:
        worker = MailboxWorker(
            desk,
            product,
            context,
            stop,
            on_mail=outbox.wake.set,
            metrics=metrics,
            may_work=keeper.holds if keeper else None,
            recheck=settings.lease_time / 3,
        )
        workers.append(worker)
        _add_worker_job(
            scheduler, f"mailbox-{product.key}", worker.run_once, settings.poll_interval, now, stop
        )
    _add_worker_job(scheduler, "outbox", outbox.run_once, settings.outbox_interval, now, stop)
    jobs.register_jobs(scheduler, desk, stop)

    def check_and_send() -> None:
        if check_health(desk, stop):
            outbox.wake.set()  # the alert mail goes out now

    scheduler.add_job(
        closing_thread_connection(check_and_send),
        "interval",
        id="health",
        seconds=HEALTH_INTERVAL,
        next_run_time=now,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=HEALTH_INTERVAL,
    )
    return scheduler, workers


def _add_worker_job(
    scheduler: BackgroundScheduler,
    job_id: str,
    run_once: Callable[[float], object],
    interval: float,
    first: datetime,
    stop: threading.Event,
) -> None:
    """Start the worker once and keep it going until the stop event: each `run_once` handles mail
    and waits for news (IDLE, or the outbox's wake-up) for about an interval, and the next one
    follows at once. As an interval job that returned before its next run was due, it left the
    last tenth of every interval with nobody listening: mail arriving then waited for the next
    run (up to 6 s at the default 60 s; measured: a tenth of the mails at twice the latency)."""

    def run_until_stopped() -> None:
        while not stop.is_set():
            try:
                run_once(interval)
            except Exception:  # the per-job boundary: the worker must come back, not end
                log.exception("%s failed; starting it again", job_id)
                stop.wait(1.0)

    # No misfire limit: a start a little late must not be dropped, or the mailbox is never read.
    job = closing_thread_connection(run_until_stopped)
    scheduler.add_job(job, "date", id=job_id, run_date=first, misfire_grace_time=None)


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            log.warning("second signal: exiting at once")
            logging.shutdown()
            os._exit(EX_SOFTWARE)
        log.info("signal %d received", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _watchdog_interval() -> float:
    """Half the systemd watchdog period, or a second's nap when there is none."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    return max(int(usec) / 2_000_000, 0.5) if usec.isdigit() else 1.0


def notify_systemd(state: str) -> None:
    """sd_notify(3) in a few lines: one datagram to $NOTIFY_SOCKET, nothing when unset."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract socket namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
