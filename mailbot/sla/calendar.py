"""Business-time arithmetic: opening hours, holidays, and time counted only while the desk is open.

A `Calendar` says when a product's support desk is open: wall-clock intervals per weekday in the
product's time zone (several a day, for lunch breaks), holidays that close whole days, or round the
clock. On top of it: `is_open`, `next_opening`, `add_business_time` (a deadline from a start and a
target) and `business_time_between` (the business time between two moments). The parsers for
the `MAILBOT_PRODUCT_<KEY>_TIMEZONE`, `_HOURS`, `_HOLIDAYS` and `_SLA` settings are in
`mailbot.sla.notation`.

Everything here is pure: values in, values out. Nothing reads the clock ("now" is always a
parameter), the configuration or the database. The SLA rules built on this (pauses while waiting
for the customer, shares of the target used) live in `mailbot.sla.clock`; reading the settings and
prefixing parser errors with the key name is `mailbot.config`'s job.

Time is counted in real elapsed time between UTC instants, so an opening interval lasts as long as
the clocks on the wall say (08:30-17:00 is 8.5 h on the day the clocks change at 02:00), and a
round-the-clock day lasts 23 h or 25 h on the days the clocks change. Wall-clock times that do not
exist or occur twice on such a day are read as RFC 5545 and zoneinfo's fold=0 do: with the offset
in force before the change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from mailbot.sla.public_holidays import Region, holidays_in
from mailbot.vocabulary import Priority, values

Interval = tuple[time, time]
"""(start, end) wall-clock times; an end of 00:00 means 24:00, the midnight that ends the day."""
DayHours = tuple[Interval, ...]
WeeklyHours = tuple[DayHours, ...]
"""Seven `DayHours`, Monday first."""

MIDNIGHT = time(0)
FULL_DAY: DayHours = ((MIDNIGHT, MIDNIGHT),)
ALWAYS: WeeklyHours = (FULL_DAY,) * 7
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PRIORITIES = values(Priority)
DEFAULT_SLA = MappingProxyType(
    {
        "critical": timedelta(hours=4),
        "high": timedelta(hours=24),
        "medium": timedelta(hours=48),
        "low": timedelta(hours=72),
    }
)

_ONE_DAY = timedelta(days=1)
# A calendar that stays shut this long is misconfigured (say, every day a yearly holiday); without
# this bound the search for the next opening would never end.
_MAX_CLOSED_DAYS = 3660


@dataclass(frozen=True)
class Holidays:
    """Days the desk is closed all day: specific dates, (month, day) pairs every year, and the
    public holidays of countries or regions (`mailbot.sla.public_holidays`), every year."""

    dates: frozenset[date] = frozenset()
    yearly: frozenset[tuple[int, int]] = frozenset()
    regions: tuple[Region, ...] = ()

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, date):
            return False
        return bool(self.name_of(day))

    def __bool__(self) -> bool:
        return bool(self.dates or self.yearly or self.regions)

    def name_of(self, day: date) -> str:
        """Why the desk is closed on `day` ("" when it is no holiday): the public holiday's name,
        or "holiday" for a date from the setting."""
        for region in self.regions:
            name = holidays_in(region, day.year).get(day)
            if name:
                return f"{name} ({'-'.join(filter(None, region))})"
        if day in self.dates or (day.month, day.day) in self.yearly:
            return "holiday"
        return ""


@dataclass(frozen=True)
class Calendar:
    """When a desk is open. `weekly` has seven entries, Monday first; a day with () is closed.

    With `always_open` the desk is open round the clock and `weekly` is ignored; holidays still
    close their whole day (a 24x7 desk with no holidays configured is simply always open).
    """

    zone: ZoneInfo
    weekly: WeeklyHours = ()
    holidays: Holidays = Holidays()
    always_open: bool = False

    def __post_init__(self) -> None:
        if self.always_open:
            return
        if len(self.weekly) != 7:
            raise ValueError(f"opening hours need seven days, Monday first; got {len(self.weekly)}")
        for name, day in zip(DAY_NAMES, self.weekly, strict=True):
            check_day(name, day)
        if not any(self.weekly):
            raise ValueError("no opening hours on any day; give at least one, or 24x7")


def check_day(name: str, intervals: DayHours) -> None:
    """Reject reversed, empty, unsorted or overlapping intervals within one day."""
    previous_end = -1
    for start, end in intervals:
        start_min, end_min = _minutes(start), _minutes(end) or 24 * 60
        shown = f"{start:%H:%M}-{'24:00' if end == MIDNIGHT else f'{end:%H:%M}'}"
        if end_min <= start_min:
            raise ValueError(f"{name} {shown} ends before it starts; expected start before end")
        if start_min < previous_end:
            raise ValueError(f"{name} {shown} overlaps another interval; expected separate times")
        previous_end = end_min


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


# --- arithmetic ------------------------------------------------------------------------------


def is_open(cal: Calendar, moment: datetime) -> bool:
    """Whether the desk is open at `moment` (intervals include their start, not their end)."""
    moment = _to_utc(moment, "moment")
    if _round_the_clock(cal):
        return True
    begin, _ = next(_open_intervals(cal, moment))
    return begin == moment


def next_opening(cal: Calendar, moment: datetime) -> datetime:
    """The first open moment at or after `moment` (the moment itself when open), in cal.zone."""
    moment = _to_utc(moment, "moment")
    if _round_the_clock(cal):
        return moment.astimezone(cal.zone)
    begin, _ = next(_open_intervals(cal, moment))
    return begin.astimezone(cal.zone)


def add_business_time(cal: Calendar, start: datetime, duration: timedelta) -> datetime:
    """The moment `duration` of business time after `start`, in cal.zone.

    Time counts from the next opening (mail at night starts the clock the next morning). A
    deadline that is reached exactly at closing time is that closing time, not the next opening;
    a zero duration gives `next_opening(start)`.
    """
    start = _to_utc(start, "start")
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative; got {duration}")
    if _round_the_clock(cal):
        return (start + duration).astimezone(cal.zone)
    remaining = duration
    for begin, end in _open_intervals(cal, start):
        if end - begin >= remaining:
            return (begin + remaining).astimezone(cal.zone)
        remaining -= end - begin
    raise AssertionError("unreachable: _open_intervals never ends without a stop")


def business_time_between(cal: Calendar, start: datetime, end: datetime) -> timedelta:
    """The business time from `start` to `end`; zero when `end` is not after `start`."""
    start, end = _to_utc(start, "start"), _to_utc(end, "end")
    if end <= start:
        return timedelta(0)
    if _round_the_clock(cal):
        return end - start
    return sum((stop - begin for begin, stop in _open_intervals(cal, start, end)), timedelta(0))


def upcoming_holidays(cal: Calendar, first: date, count: int) -> list[tuple[date, str]]:
    """The next `count` holidays from `first` (included) within a year and a day, with names."""
    days = (first + timedelta(days=offset) for offset in range(367))
    found = ((day, cal.holidays.name_of(day)) for day in days)
    return [(day, name) for day, name in found if name][:count]


def upcoming_openings(cal: Calendar, moment: datetime, count: int) -> list[tuple[datetime, datetime]]:
    """The next `count` opening periods from `moment` (a running one clipped to start at it), as
    (begin, end) in cal.zone. Round the clock without holidays is one period of a week."""
    moment = _to_utc(moment, "moment")
    if _round_the_clock(cal):
        return [(moment.astimezone(cal.zone), (moment + 7 * _ONE_DAY).astimezone(cal.zone))]
    periods: list[tuple[datetime, datetime]] = []
    # A year of periods at most: a 24x7 desk with holidays joins its days into long periods.
    for _, (begin, end) in zip(range(400), _open_intervals(cal, moment), strict=False):
        if periods and periods[-1][1] == begin:  # days that touch (24x7, or open until 24:00)
            begin = periods.pop()[0]
        periods.append((begin, end))
        if len(periods) > count:
            break
    return [(b.astimezone(cal.zone), e.astimezone(cal.zone)) for b, e in periods[:count]]


def _round_the_clock(cal: Calendar) -> bool:
    return cal.always_open and not cal.holidays


def _to_utc(value: datetime, name: str) -> datetime:
    # Aware datetimes in one ZoneInfo subtract as wall-clock times (ignoring DST), so all the
    # arithmetic is done in UTC, where subtraction is real elapsed time.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime; got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _open_intervals(
    cal: Calendar, start: datetime, stop: datetime | None = None
) -> Iterator[tuple[datetime, datetime]]:
    """Yield the open periods from `start` (up to `stop`, or for ever) as UTC (begin, end) pairs,
    in order, clipped to [start, stop), never overlapping.

    Walks day by day, so a long span costs one step per calendar day, not per minute.
    """
    # Every interval of an earlier local day ends by that day's 24:00, so none is still running.
    day = start.astimezone(cal.zone).date()
    last_day = stop.astimezone(cal.zone).date() if stop is not None else date.max
    last_end, closed_since = start, day
    while day <= last_day:
        opened = False
        for begin, end in _day_intervals(cal, day):
            # Clamping to the previous end keeps the periods ordered even where a clock change
            # makes two wall-clock intervals overlap in real time.
            begin, end = max(begin, last_end), end if stop is None else min(end, stop)
            if end > begin:
                opened, last_end = True, end
                yield begin, end
        day += _ONE_DAY
        if opened:
            closed_since = day
        elif (day - closed_since).days > _MAX_CLOSED_DAYS:
            raise ValueError(f"the calendar is closed for ten years from {closed_since}")


def _day_intervals(cal: Calendar, day: date) -> list[tuple[datetime, datetime]]:
    """The opening intervals of one local day, as UTC instants (empty on holidays)."""
    if day in cal.holidays:
        return []
    hours = FULL_DAY if cal.always_open else cal.weekly[day.weekday()]
    end_day = day + _ONE_DAY  # where an end of 00:00 (24:00) falls
    return [
        (_wall_to_utc(cal, day, start), _wall_to_utc(cal, end_day if end == MIDNIGHT else day, end))
        for start, end in hours
    ]


def _wall_to_utc(cal: Calendar, day: date, moment: time) -> datetime:
    # fold=0: a skipped or repeated wall time takes the offset in force before the change.
    return datetime.combine(day, moment, tzinfo=cal.zone).astimezone(UTC)
