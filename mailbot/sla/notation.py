"""Reading the calendar settings: opening hours (`MAILBOT_PRODUCT_<KEY>_HOURS`), holidays
(`_HOLIDAYS`), the time zone (`_TIMEZONE`), SLA targets (`_SLA`) and durations such as `2d 4h`,
each into the values of `mailbot.sla.calendar`. A parser raises ValueError with a message for the
admin; `mailbot.config` prefixes it with the setting's name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.sla.calendar import (
    ALWAYS,
    DAY_NAMES,
    DEFAULT_SLA,
    MIDNIGHT,
    PRIORITIES,
    Calendar,
    DayHours,
    Holidays,
    WeeklyHours,
    check_day,
)
from mailbot.sla.public_holidays import Region, check_region, looks_like_region

_MAX_RANGE_DAYS = 366
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})")
_DURATION_RE = re.compile(r"(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?", re.IGNORECASE)


def parse_hours(spec: str) -> WeeklyHours:
    """Read opening hours: `mon-thu 08:30-12:30,13:00-17:00; fri 08:30-12:30,13:00-16:00`.

    Groups are separated by `;`; each names days (`mon`, `mon-fri`, `mon,wed`) and then
    comma-separated `HH:MM-HH:MM` intervals (`24:00` may end one). Days not named are closed.
    `24x7` or `always` means open round the clock (returned as `ALWAYS`).
    """
    text = spec.strip().lower()
    if text in ("24x7", "always"):
        return ALWAYS
    if not text:
        raise ValueError("no opening hours given; expected e.g. 'mon-fri 09:00-18:00' or '24x7'")
    week: list[DayHours | None] = [None] * 7
    for group in filter(None, (part.strip() for part in text.split(";"))):
        days_text, _, intervals_text = group.partition(" ")
        intervals = _parse_intervals(intervals_text.strip(), group)
        for index in _parse_days(days_text, group):
            if week[index] is not None:
                raise ValueError(f"{DAY_NAMES[index]} is given twice; name each day once")
            check_day(DAY_NAMES[index], intervals)
            week[index] = intervals
    hours = tuple(day or () for day in week)
    if not any(hours):
        raise ValueError("no opening hours on any day; give at least one, or 24x7")
    return hours


def describe_hours(hours: WeeklyHours) -> str:
    """The opening hours written as `parse_hours` reads them: `mon-fri 09:00-18:00; sat 10:00-12:00`."""
    if hours == ALWAYS:
        return "24x7"
    groups: list[tuple[int, int, DayHours]] = []  # (first day, last day, intervals)
    for index, day in enumerate(hours):
        if groups and groups[-1][2] == day and groups[-1][1] == index - 1:
            groups[-1] = (groups[-1][0], index, day)
        else:
            groups.append((index, index, day))
    return "; ".join(
        f"{DAY_NAMES[first]}{'-' + DAY_NAMES[last] if last > first else ''} {_describe_intervals(day)}"
        for first, last, day in groups
        if day
    )


def describe_holidays(holidays: Holidays) -> str:
    """The holidays setting as `parse_holidays` reads it (ranges written out as their dates)."""
    regions = ["-".join(filter(None, region)) for region in holidays.regions]
    yearly = [f"{month:02d}-{day:02d}" for month, day in sorted(holidays.yearly)]
    return ",".join([*regions, *yearly, *(day.isoformat() for day in sorted(holidays.dates))]) or "none"


def _describe_intervals(day: DayHours) -> str:
    return ",".join(f"{start:%H:%M}-{'24:00' if end == MIDNIGHT else f'{end:%H:%M}'}" for start, end in day)


def describe_duration(value: timedelta) -> str:
    """A duration written as `parse_duration` reads it, in hours and minutes (`48h`, `1h30m`):
    no `d`, which a reader might take for a business day."""
    hours, minutes = divmod(int(value.total_seconds()) // 60, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") or "0m"


def _parse_days(text: str, group: str) -> list[int]:
    days: list[int] = []
    for item in text.split(","):
        first, dash, last = item.partition("-")
        start, end = _day_index(first, group), _day_index(last if dash else first, group)
        if end < start:
            raise ValueError(
                f"day range {item!r} runs backwards; expected Monday to Sunday order, e.g. mon-fri"
            )
        days.extend(range(start, end + 1))
    return days


def _day_index(name: str, group: str) -> int:
    if name not in DAY_NAMES:
        raise ValueError(f"unknown day {name!r} in {group!r}; expected mon, tue, wed, thu, fri, sat or sun")
    return DAY_NAMES.index(name)


def _parse_intervals(text: str, group: str) -> DayHours:
    if not text:
        raise ValueError(f"no times after the days in {group!r}; expected e.g. 'mon-fri 09:00-18:00'")
    intervals = []
    for item in (part.strip() for part in text.split(",")):
        first, dash, last = item.partition("-")
        if not dash:
            raise ValueError(f"{item!r} in {group!r} is not an interval; expected HH:MM-HH:MM")
        intervals.append(
            (_parse_time(first.strip(), item, end=False), _parse_time(last.strip(), item, end=True))
        )
    return tuple(sorted(intervals))


def _parse_time(text: str, item: str, *, end: bool) -> time:
    match = _TIME_RE.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} in {item!r} is not a time; expected HH:MM, e.g. 08:30")
    hour, minute = int(match[1]), int(match[2])
    if end and (hour, minute) == (24, 0):
        return MIDNIGHT  # 24:00 is stored as the midnight that ends the day
    if hour > 23 or minute > 59:
        limit = "00:00 to 24:00" if end else "00:00 to 23:59"
        raise ValueError(f"{text!r} in {item!r} is not a time of day; expected {limit}")
    return time(hour, minute)


def parse_holidays(spec: str) -> Holidays:
    """Read holidays: comma-separated `YYYY-MM-DD` (that date), `MM-DD` (that day every year;
    `02-29` only in leap years), `YYYY-MM-DD..YYYY-MM-DD` (inclusive, at most a year long) and
    country or region codes (`NL`, `DE-BY`: their public holidays, every year). An empty spec
    means no holidays."""
    dates: set[date] = set()
    yearly: set[tuple[int, int]] = set()
    regions: list[Region] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if looks_like_region(item):
            region = check_region(item)
            if region not in regions:
                regions.append(region)
        elif ".." in item:
            first, _, last = item.partition("..")
            dates.update(_date_range(_parse_date(first.strip(), item), _parse_date(last.strip(), item)))
        elif re.fullmatch(r"\d{2}-\d{2}", item):
            month, day = int(item[:2]), int(item[3:])
            try:
                date(2000, month, day)  # a leap year, so that 02-29 is accepted
            except ValueError:
                raise ValueError(f"{item!r} is not a day of the year; expected MM-DD") from None
            yearly.add((month, day))
        else:
            dates.add(_parse_date(item, item))
    return Holidays(frozenset(dates), frozenset(yearly), tuple(regions))


def _parse_date(text: str, item: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(
            f"{item!r} is not a holiday; expected YYYY-MM-DD, MM-DD (every year), YYYY-MM-DD..YYYY-MM-DD"
            " or a country code such as NL or DE-BY"
        )
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a real date; expected YYYY-MM-DD") from None


def _date_range(first: date, last: date) -> Iterator[date]:
    if last < first:
        raise ValueError(f"holiday range {first}..{last} ends before it starts")
    if (last - first).days >= _MAX_RANGE_DAYS:
        raise ValueError(f"holiday range {first}..{last} is longer than a year; split or check it")
    return (first + timedelta(days=offset) for offset in range((last - first).days + 1))


def parse_duration(spec: str) -> timedelta:
    """Read a duration: `4h`, `90m`, `1h30m`, `2d`. `d` means 24 hours (not a business day of
    opening hours: `2d` of business time on a 9-to-6 desk spans more than five working days).
    Bare numbers are rejected because the unit would be a guess."""
    text = spec.strip()
    if not text:
        raise ValueError("empty duration; expected e.g. 4h, 90m, 1h30m or 2d")
    if text.isdigit():
        raise ValueError(f"{text!r} has no unit; expected e.g. {text}h or {text}m")
    match = _DURATION_RE.fullmatch(text)
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; expected e.g. 4h, 90m, 1h30m or 2d")
    days, hours, minutes = (int(group or 0) for group in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def parse_sla(spec: str) -> dict[str, timedelta]:
    """Read resolution targets: `critical=4h,high=24h,medium=48h,low=72h` (durations as in
    `parse_duration`). Priorities not named keep `DEFAULT_SLA`; every target must be positive."""
    targets = dict(DEFAULT_SLA)
    seen: set[str] = set()
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, equals, value = (part.strip() for part in item.partition("="))
        name = name.lower()
        if not equals:
            raise ValueError(f"{item!r} is not a target; expected PRIORITY=DURATION, e.g. high=24h")
        if name not in PRIORITIES:
            raise ValueError(f"unknown priority {name!r}; expected critical, high, medium or low")
        if name in seen:
            raise ValueError(f"priority {name!r} is given twice; name each priority once")
        try:
            target = parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if target <= timedelta(0):
            raise ValueError(f"{name}: target {value!r} must be longer than zero")
        seen.add(name)
        targets[name] = target
    return targets


def make_calendar(timezone: str, hours: str, holidays: str) -> Calendar:
    """Build a calendar from the three settings (an IANA zone name, `parse_hours`,
    `parse_holidays`)."""
    name = timezone.strip()
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; expected an IANA name such as Europe/Brussels or UTC"
        ) from None
    weekly = parse_hours(hours)
    return Calendar(zone, weekly, parse_holidays(holidays), always_open=weekly == ALWAYS)
