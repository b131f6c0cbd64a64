"""SLA rules: deadlines that stand still while the ticket waits for the customer, time used, and
the small statistics the reports need.

The SLA clock runs in business time (`mailbot.sla.calendar`) from the moment it was started, and
stands still during each `Pause` (status `waiting`: information asked from the customer). From
that follow the due time, the business time used, and the share of the target used (the board is
warned when most of it is gone). Also here: charging time in started 15-minute blocks, and the
mean and percentile for reports.

Pure: every "now" is a parameter. Which status starts or pauses the clock, which target applies to
which priority, and when to send a warning or an escalation are decided by the ticket and scheduler
modules that call these functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailbot.sla.calendar import Calendar, add_business_time, business_time_between


@dataclass(frozen=True)
class Pause:
    """A period the SLA clock stood still; `end` None means it still stands (still waiting)."""

    start: datetime
    end: datetime | None = None

    def __post_init__(self) -> None:
        _to_utc(self.start, "pause start")
        if self.end is not None and _to_utc(self.end, "pause end") < self.start:
            raise ValueError(f"pause ends ({self.end}) before it starts ({self.start})")


def due_time(
    cal: Calendar, start: datetime, target: timedelta, pauses: Sequence[Pause], now: datetime
) -> datetime:
    """The deadline: the moment `target` of business time has run since `start`, the clock
    standing still during the pauses. An open pause counts until `now`, so the answer is the
    deadline if the customer answered now; it moves on while the ticket keeps waiting.

    Only pauses before the deadline move it: a ticket that breached stays breached when it is
    put on hold afterwards.
    """
    if target < timedelta(0):
        raise ValueError(f"target must not be negative; got {target}")
    moment, remaining = start, target
    for pause_start, pause_end in _merged(pauses, start, now):
        running = business_time_between(cal, moment, pause_start)
        if running >= remaining:
            break
        remaining -= running
        moment = pause_end
    return add_business_time(cal, moment, remaining)


def elapsed(cal: Calendar, start: datetime, end: datetime, pauses: Sequence[Pause]) -> timedelta:
    """The business time the clock ran from `start` to `end`, pauses excluded (an open pause
    counts until `end`)."""
    used = business_time_between(cal, start, end)
    for pause_start, pause_end in _merged(pauses, start, end):
        used -= business_time_between(cal, pause_start, min(pause_end, end))
    return used


def used_share(
    cal: Calendar, start: datetime, target: timedelta, pauses: Sequence[Pause], now: datetime
) -> float:
    """The share of `target` used by `now`: 0.0 at the start, 1.0 at the deadline, more after."""
    if target <= timedelta(0):
        raise ValueError(f"target must be longer than zero; got {target}")
    return elapsed(cal, start, now, pauses) / target


def _merged(pauses: Iterable[Pause], start: datetime, now: datetime) -> list[tuple[datetime, datetime]]:
    """The pauses as ordered, non-overlapping UTC periods from `start` on, open ones ended at
    `now`. Merging keeps overlapping pauses (a data slip) from being subtracted twice."""
    start, now = _to_utc(start, "start"), _to_utc(now, "now")
    periods = []
    for pause in pauses:
        begin = max(pause.start.astimezone(UTC), start)
        end = pause.end.astimezone(UTC) if pause.end is not None else max(now, begin)
        if end > begin:
            periods.append((begin, end))
    merged: list[tuple[datetime, datetime]] = []
    for begin, end in sorted(periods):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _to_utc(value: datetime, name: str) -> datetime:
    # Checked here too: astimezone() would silently read a naive "now" as the server's local time.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime; got naive {value.isoformat()}")
    return value.astimezone(UTC)


def round_up_to_blocks(minutes: int, block: int = 15) -> int:
    """Minutes charged in started blocks (each started block counts whole): with 15-minute
    blocks 1 -> 15, 15 -> 15, 16 -> 30, 0 -> 0."""
    if minutes < 0:
        raise ValueError(f"minutes must not be negative; got {minutes}")
    if block <= 0:
        raise ValueError(f"block must be at least one minute; got {block}")
    return -(-minutes // block) * block


def mean(values: Iterable[timedelta]) -> timedelta | None:
    """The arithmetic mean (to the microsecond), or None when there are no values."""
    items = list(values)
    if not items:
        return None
    return sum(items, timedelta(0)) / len(items)


def percentile(values: Iterable[timedelta], p: float) -> timedelta | None:
    """The p-th percentile by the nearest-rank method: the smallest value that at least p % of
    the values do not exceed, i.e. the ceil(p/100 * n)-th smallest. Always one of the values,
    never an interpolation. None when there are no values; p must be in (0, 100]."""
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be above 0 and at most 100; got {p}")
    items = sorted(values)
    if not items:
        return None
    # p * n before dividing: 70 / 100 * 10 is 7.000000000000001 in floating point, rank 8.
    rank = math.ceil(p * len(items) / 100)
    return items[rank - 1]
