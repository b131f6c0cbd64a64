"""Prometheus metrics of the running daemon (prometheus-client), served on MAILBOT_METRICS.

Two kinds: counters and a histogram the workers feed as they go (mails in by outcome, mails
out by result, how long a pass over a mailbox takes), held in this daemon's own registry; and
gauges read from the database when Prometheus scrapes (queue sizes, open tickets, SLA breaches,
seconds since the last good pass per mailbox, alerts standing), so that they are right whoever
changed the database: the daemon, `poll --once` or an admin's command. What the figures mean is
`mailbot.service.health`'s; docs/operating.md lists them with a scrape config and alert rules.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping
from wsgiref.simple_server import WSGIServer

from peewee import DatabaseError
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mailbot.config_values import is_loopback
from mailbot.context import Desk
from mailbot.errors import ConfigError
from mailbot.service import health
from mailbot.store.models import Alarm, MailboxHealth

log = logging.getLogger(__name__)
PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The daemon's metrics; `serve` starts the HTTP endpoint, `close` stops it."""

    def __init__(self, desk: Desk):
        self.registry = CollectorRegistry(auto_describe=True)
        self.mails_in = Counter(
            "mailbot_mails_in",
            "Mails taken from a mailbox, by product and outcome (ticket, message, ignored, "
            "quarantined, already_seen).",
            ["product", "outcome"],
            registry=self.registry,
        )
        self.mails_out = Counter(
            "mailbot_mails_out",
            "Attempts to send outgoing mail, by result (sent, retry, dead, failed).",
            ["result"],
            registry=self.registry,
        )
        self.pass_seconds = Histogram(
            "mailbot_pass_duration_seconds",
            "How long one pass over a mailbox took.",
            ["product"],
            buckets=PASS_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(DatabaseCollector(desk))
        self.server: WSGIServer | None = None
        self.thread: threading.Thread | None = None

    def count_pass(self, product: str, outcomes: Mapping[str, int], seconds: float) -> None:
        for outcome, count in outcomes.items():
            self.mails_in.labels(product, outcome.replace(" ", "_")).inc(count)
        self.pass_seconds.labels(product).observe(seconds)

    def count_sent(self, results: Mapping[str, int]) -> None:
        for result, count in results.items():
            self.mails_out.labels(result).inc(count)

    def serve(self, host: str, port: int) -> None:
        if not is_loopback(host):
            log.warning("metrics served on %s:%d, beyond this machine: they have no password", host, port)
        try:
            self.server, self.thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"MAILBOT_METRICS={host}:{port}: cannot listen there: {exc}") from exc
        log.info("metrics on http://%s:%d/metrics", host if ":" not in host else f"[{host}]", port)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None


class DatabaseCollector(Collector):
    """The gauges, read from the database at each scrape (in the HTTP server's thread, with its
    own connection). A database that cannot be read gives no gauges and one log line; Prometheus
    then sees them absent, which an alert rule can catch."""

    def __init__(self, desk: Desk):
        self.desk = desk

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # the families appear at the first scrape; nothing to read before

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            families = list(self._read())
        except DatabaseError as exc:
            log.warning("metrics: database unavailable: %s", exc)
            return
        yield from families

    def _read(self) -> Iterator[GaugeMetricFamily]:
        desk = self.desk
        now = desk.clock()
        outbox = GaugeMetricFamily(
            "mailbot_outbox_mails", "Outgoing mail not sent, by status.", labels=["status"]
        )
        for status, count in health.outbox_figures().items():
            if isinstance(count, int):
                outbox.add_metric([status], count)
        yield outbox
        yield GaugeMetricFamily(
            "mailbot_quarantined_mails", "Mails in the quarantine.", value=len(desk.store.quarantined())
        )
        yield _per_product(
            "mailbot_open_tickets", "Open tickets (new, open, waiting).", health.open_tickets(desk)
        )
        yield _per_product(
            "mailbot_sla_breached_tickets",
            "Open tickets past an SLA deadline.",
            health.sla_breaches(desk, now),
        )
        age = GaugeMetricFamily(
            "mailbot_last_pass_age_seconds",
            "Seconds since the last pass that read the mailbox (NaN: never).",
            labels=["product"],
        )
        up = GaugeMetricFamily(
            "mailbot_mailbox_up", "1 when the last try to read the mailbox worked.", labels=["product"]
        )
        rows = {row.product: row for row in MailboxHealth.select()}
        for product in desk.settings.products:
            row = rows.get(product.key)
            last = row.last_pass_at if row is not None else None
            age.add_metric([product.key], (now - last).total_seconds() if last else math.nan)
            up.add_metric([product.key], 1 if row is not None and row.failing_since is None and last else 0)
        yield age
        yield up
        alarms = GaugeMetricFamily("mailbot_alerts", "Health alerts standing (not yet recovered).")
        alarms.add_metric([], Alarm.select().count())
        yield alarms


def _per_product(name: str, documentation: str, values: Mapping[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["product"])
    for product, value in values.items():
        family.add_metric([product], value)
    return family
