"""The service report: whether a product's promises were kept in a period.

Per product and priority: tickets opened and closed; for first response and for resolution the
number measured, the mean and 90th percentile (nearest rank) in business time, how many were
within target, and the breaches; and the time recorded per organisation, with what was charged
to prepaid credit. All durations are business time on the product's calendar with the time the
ticket waited for the customer left out: the same clock the deadlines run on, so "within target"
here means "answered before the due time" in `mailbot ticket show`.

Which ticket counts where, for a period from `start` to `end` (whole days in the product's time
zone, both included):
- opened / closed: created / closed in the period;
- first response measured: first answered in the period; resolution measured: resolved in the
  period (a reopened ticket counts when it is resolved for the last time);
- breaches: measured ones that missed their target, plus tickets still without an answer (or
  still unresolved) whose deadline passed in the period. Those have no duration yet, so they
  count in the share within target but not in the mean. A ticket closed without any answer
  (the customer withdrew it) has no first response to measure.
- time: `#time` entries made in the period, by the requester's organisation (or address).

Pure computation over the database: no mail, no output. `mailbot.cli.report` prints it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from mailbot.config import ProductSettings, Settings
from mailbot.sla import clock
from mailbot.sla.calendar import PRIORITIES
from mailbot.sla.deadlines import DONE_STATUSES, pauses_of, sla_state
from mailbot.store.models import Account, CreditEntry, Ticket

PERCENTILE = 90


@dataclass(frozen=True)
class Measure:
    """One promise (first response or resolution) for a group of tickets."""

    target: timedelta | None  # None for the total row's resolution: it differs per priority
    values: tuple[timedelta, ...]  # business time of each measured ticket
    within: int  # measured tickets within their target
    overdue: int  # tickets not answered/resolved yet whose deadline passed in the period

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> timedelta | None:
        return clock.mean(self.values)

    @property
    def p90(self) -> timedelta | None:
        return clock.percentile(self.values, PERCENTILE)

    @property
    def breaches(self) -> int:
        return self.count - self.within + self.overdue

    @property
    def share_within(self) -> float | None:
        judged = self.count + self.overdue
        return self.within / judged if judged else None


@dataclass(frozen=True)
class Row:
    priority: str  # critical, high, medium, low, or "all"
    opened: int
    closed: int
    first_response: Measure
    resolution: Measure


@dataclass(frozen=True)
class TimeRow:
    organisation: str
    spent: int  # minutes recorded (started 15-minute blocks)
    charged: int  # taken from prepaid credit
    uncovered: int  # recorded when no credit was left

    @property
    def free(self) -> int:
        """Not charged because the ticket is a confirmed bug."""
        return self.spent - self.charged - self.uncovered


@dataclass(frozen=True)
class ProductReport:
    key: str
    name: str
    zone: str
    start: date
    end: date
    first_response_target: timedelta
    rows: tuple[Row, ...]  # one per priority
    total: Row
    time: tuple[TimeRow, ...]


@dataclass(frozen=True)
class _Sample:
    """What one ticket adds to the report."""

    priority: str
    opened: bool
    closed: bool
    first: tuple[timedelta, bool] | None  # (business time, within target), measured
    first_overdue: bool
    resolution: tuple[timedelta, bool] | None
    resolution_overdue: bool


def build_report(
    settings: Settings, start: date, end: date, now: datetime, product_keys: Iterable[str] = ()
) -> list[ProductReport]:
    """The report for each product (all configured ones when `product_keys` is empty)."""
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    keys = [settings.product(k).key for k in product_keys] or list(settings.product_by_key)
    return [product_report(settings.product(k), start, end, now) for k in keys]


def product_report(product: ProductSettings, start: date, end: date, now: datetime) -> ProductReport:
    t0, t1 = period_bounds(product, start, end)
    cutoff = min(t1, now)
    candidates = Ticket.select().where(
        (Ticket.product == product.key)
        & (Ticket.created_at < t1)
        & (Ticket.closed_at.is_null() | (Ticket.closed_at >= t0))
    )
    samples = [_sample(t, product, t0, t1, cutoff) for t in candidates.order_by(Ticket.id)]
    rows = tuple(
        _row(p, [s for s in samples if s.priority == p], product.first_response, product.sla.get(p))
        for p in PRIORITIES
    )
    return ProductReport(
        key=product.key,
        name=product.name,
        zone=str(product.calendar.zone),
        start=start,
        end=end,
        first_response_target=product.first_response,
        rows=rows,
        total=_row("all", samples, product.first_response, None),
        time=tuple(_time_rows(product, t0, t1)),
    )


def period_bounds(product: ProductSettings, start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in the product's time zone."""
    zone = product.calendar.zone
    return (
        datetime.combine(start, time(0), tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone),
    )


def _sample(
    ticket: Ticket, product: ProductSettings, t0: datetime, t1: datetime, cutoff: datetime
) -> _Sample:
    state = sla_state(ticket, product, cutoff, pauses_of(ticket))
    first = resolution = None
    first_overdue = resolution_overdue = False
    clock = state.first_response
    if clock is not None:
        if ticket.first_response_at is not None:
            if t0 <= ticket.first_response_at < t1:
                first = (clock.used, not clock.breached)
        elif ticket.status not in DONE_STATUSES:
            first_overdue = clock.breached and clock.due >= t0
    clock = state.resolution
    if clock is not None:
        if ticket.status in DONE_STATUSES:
            if ticket.resolved_at is not None and t0 <= ticket.resolved_at < t1:
                resolution = (clock.used, not clock.breached)
        else:
            resolution_overdue = clock.breached and clock.due >= t0
    return _Sample(
        priority=ticket.priority,
        opened=t0 <= ticket.created_at < t1,
        closed=ticket.closed_at is not None and t0 <= ticket.closed_at < t1,
        first=first,
        first_overdue=first_overdue,
        resolution=resolution,
        resolution_overdue=resolution_overdue,
    )


def _row(
    priority: str, samples: Sequence[_Sample], first_target: timedelta, resolution_target: timedelta | None
) -> Row:
    def measure(target: timedelta | None, pairs: list[tuple[timedelta, bool]], overdue: int) -> Measure:
        return Measure(target, tuple(v for v, _ in pairs), sum(ok for _, ok in pairs), overdue)

    return Row(
        priority=priority,
        opened=sum(s.opened for s in samples),
        closed=sum(s.closed for s in samples),
        first_response=measure(
            first_target, [s.first for s in samples if s.first], sum(s.first_overdue for s in samples)
        ),
        resolution=measure(
            resolution_target,
            [s.resolution for s in samples if s.resolution],
            sum(s.resolution_overdue for s in samples),
        ),
    )


def _time_rows(product: ProductSettings, t0: datetime, t1: datetime) -> list[TimeRow]:
    entries = (
        CreditEntry.select(CreditEntry, Ticket, Account)
        .join(Ticket)
        .join(Account, on=(Ticket.requester == Account.id))
        .where(
            (CreditEntry.kind == "time")
            & (Ticket.product == product.key)
            & (CreditEntry.at >= t0)
            & (CreditEntry.at < t1)
        )
    )
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for entry in entries:
        if entry.ticket is None:
            continue
        requester = entry.ticket.requester
        row = totals[requester.organisation or requester.email]
        row[0] += entry.spent
        row[1] -= entry.minutes
        row[2] += entry.uncovered
    return [TimeRow(name, *values) for name, values in sorted(totals.items())]


# --- presentation ----------------------------------------------------------------------------


def minutes(value: timedelta | None) -> float | None:
    """A duration in minutes, to the hundredth (what --json prints)."""
    return None if value is None else round(value.total_seconds() / 60, 2)


def report_data(reports: Sequence[ProductReport]) -> list[dict[str, Any]]:
    """The report as plain values for --json."""
    return [
        {
            "product": r.key,
            "name": r.name,
            "time_zone": r.zone,
            "from": r.start.isoformat(),
            "to": r.end.isoformat(),
            "priorities": [_row_data(row) for row in r.rows],
            "total": _row_data(r.total),
            "time": [
                {
                    "organisation": t.organisation,
                    "spent_minutes": t.spent,
                    "charged_minutes": t.charged,
                    "free_minutes": t.free,
                    "uncovered_minutes": t.uncovered,
                }
                for t in r.time
            ],
        }
        for r in reports
    ]


def _row_data(row: Row) -> dict[str, Any]:
    return {
        "priority": row.priority,
        "opened": row.opened,
        "closed": row.closed,
        "first_response": _measure_data(row.first_response),
        "resolution": _measure_data(row.resolution),
    }


def _measure_data(m: Measure) -> dict[str, Any]:
    share = m.share_within
    return {
        "count": m.count,
        "target_minutes": minutes(m.target),
        "mean_minutes": minutes(m.mean),
        "p90_minutes": minutes(m.p90),
        "within_target": m.within,
        "overdue": m.overdue,
        "breaches": m.breaches,
        "share_within_target": None if share is None else round(share, 4),
    }


def format_report(reports: Sequence[ProductReport]) -> str:
    """The report as text tables, one block per product."""
    return "\n".join(_format_product(r) for r in reports)


_HEADER = (
    f"{'priority':<9}{'opened':>7}{'closed':>7} | {'answered':>8}{'mean':>8}{'p90':>8}"
    f"{'within':>8}{'breach':>7} | {'target':>7}{'resolved':>9}{'mean':>8}{'p90':>8}"
    f"{'within':>8}{'breach':>7}"
)


def _format_product(r: ProductReport) -> str:
    lines = [
        f"{r.key} ({r.name}), {r.start} to {r.end}, time zone {r.zone}",
        "Business time, time waiting for the customer not counted. "
        f"First-response target {_hours(r.first_response_target)}.",
        f"{'':<23} | {'first response':<39} | resolution",
        _HEADER,
    ]
    lines += [_format_row(row) for row in (*r.rows, r.total)]
    if r.time:
        lines.append(
            f"\n{'time per organisation':<32}{'spent':>8}{'charged':>9}{'free (bug)':>12}{'no credit':>11}"
        )
        lines += [
            f"{t.organisation:<32}{_clock(t.spent):>8}{_clock(t.charged):>9}"
            f"{_clock(t.free):>12}{_clock(t.uncovered):>11}"
            for t in r.time
        ]
    return "\n".join(lines) + "\n"


def _format_row(row: Row) -> str:
    f, s = row.first_response, row.resolution
    return (
        f"{row.priority:<9}{row.opened:>7}{row.closed:>7} | {f.count:>8}{_hours(f.mean):>8}"
        f"{_hours(f.p90):>8}{_share(f.share_within):>8}{f.breaches:>7} | "
        f"{_hours(s.target):>7}{s.count:>9}{_hours(s.mean):>8}{_hours(s.p90):>8}"
        f"{_share(s.share_within):>8}{s.breaches:>7}"
    )


def _hours(value: timedelta | None) -> str:
    """H:MM, rounded to the minute; '-' when there is nothing to show."""
    if value is None:
        return "-"
    return _clock(round(value.total_seconds() / 60))


def _clock(total_minutes: int) -> str:
    return f"{total_minutes // 60}:{total_minutes % 60:02d}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
