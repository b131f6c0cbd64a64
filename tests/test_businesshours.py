"""Business-time arithmetic, checked the way a support manager would check it: by hand, with a
calendar on the desk. Every datetime is explicit; nothing reads the clock."""

from __future__ import annotations

import ast
import random
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.sla import calendar, notation, public_holidays
from mailbot.sla.calendar import (
    ALWAYS,
    DEFAULT_SLA,
    FULL_DAY,
    MIDNIGHT,
    Calendar,
    Holidays,
    add_business_time,
    business_time_between,
    is_open,
    next_opening,
)
from mailbot.sla.notation import make_calendar, parse_duration, parse_holidays, parse_hours, parse_sla

H = timedelta(hours=1)
M = timedelta(minutes=1)
PRODUSOFT_HOURS = "mon-thu 08:30-12:30,13:00-17:00; fri 08:30-12:30,13:00-16:00"
BELGIAN_HOLIDAYS = "01-01,05-01,07-21,08-15,11-01,11-11,12-25"


def at(text: str, zone: str = "Europe/Brussels") -> datetime:
    """A wall-clock time in a zone, e.g. at('2027-03-26 17:00')."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.fixture
def produsoft() -> Calendar:
    return make_calendar("Europe/Brussels", PRODUSOFT_HOURS, "")


# --- parsing ---------------------------------------------------------------------------------


def test_produsoft_hours_are_read_per_weekday():
    hours = parse_hours(PRODUSOFT_HOURS)
    morning, afternoon = (time(8, 30), time(12, 30)), (time(13), time(17))
    assert hours[:4] == ((morning, afternoon),) * 4
    assert hours[4] == (morning, (time(13), time(16)))
    assert hours[5:] == ((), ())  # days not named are closed


def test_hours_forms():
    assert parse_hours("sat 10:00-14:00")[5] == ((time(10), time(14)),)
    assert parse_hours("mon,wed 09:00-12:00")[:3] == (((time(9), time(12)),), (), ((time(9), time(12)),))
    # 24:00 may end an interval; it is stored as the midnight that ends the day.
    assert parse_hours("mon 22:00-24:00")[0] == ((time(22), MIDNIGHT),)
    # Intervals are kept in order whatever order they are written in; case does not matter.
    assert parse_hours("MON 13:00-17:00, 8:30-12:30")[0] == (
        (time(8, 30), time(12, 30)),
        (time(13), time(17)),
    )
    assert parse_hours("24x7") == parse_hours(" Always ") == ALWAYS


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("", "no opening hours given"),
        ("mon-fri", "no times after the days in 'mon-fri'"),
        ("mo 09:00-18:00", "unknown day 'mo'"),
        ("fri-mon 09:00-18:00", "day range 'fri-mon' runs backwards"),
        ("mon 09:00", "'09:00' in 'mon 09:00' is not an interval"),
        ("mon 9h-18h", "'9h' in '9h-18h' is not a time"),
        ("mon 09:00-25:00", "'25:00' in '09:00-25:00' is not a time of day"),
        ("mon 24:00-24:00", "'24:00' in '24:00-24:00' is not a time of day; expected 00:00 to 23:59"),
        ("mon 18:00-09:00", "mon 18:00-09:00 ends before it starts"),
        ("mon 09:00-09:00", "mon 09:00-09:00 ends before it starts"),
        ("mon 09:00-13:00,12:00-17:00", "mon 12:00-17:00 overlaps"),
        ("mon-fri 09:00-18:00; mon 19:00-20:00", "mon is given twice"),
    ],
)
def test_hours_errors_name_what_is_wrong(spec, complaint):
    with pytest.raises(ValueError, match=_literal(complaint)):
        parse_hours(spec)


def test_holidays_forms():
    holidays = parse_holidays("12-25, 2027-03-29, 2027-05-06..2027-05-07, 02-29,")
    assert holidays.yearly == {(12, 25), (2, 29)}
    assert holidays.dates == {date(2027, 3, 29), date(2027, 5, 6), date(2027, 5, 7)}
    assert date(2031, 12, 25) in holidays and date(2028, 2, 29) in holidays
    assert date(2027, 5, 8) not in holidays
    assert parse_holidays("") == parse_holidays("  ") == Holidays()
    assert not parse_holidays("")


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("2027-13-01", "'2027-13-01' is not a real date"),
        ("13-01", "'13-01' is not a day of the year"),
        ("02-30", "'02-30' is not a day of the year"),
        ("25/12", "'25/12' is not a holiday; expected YYYY-MM-DD, MM-DD"),
        ("2027-05-06..05-07", "'2027-05-06..05-07' is not a holiday"),
        ("2027-05-07..2027-05-06", "holiday range 2027-05-07..2027-05-06 ends before it starts"),
        ("2027-01-01..2029-01-01", "holiday range 2027-01-01..2029-01-01 is longer than a year"),
    ],
)
def test_holiday_errors_name_what_is_wrong(spec, complaint):
    with pytest.raises(ValueError, match=_literal(complaint)):
        parse_holidays(spec)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("4h", 4 * H),
        ("90m", 90 * M),
        ("1h30m", 90 * M),
        (" 1H 30M ", 90 * M),
        ("2d", 48 * H),  # d is 24 hours, not a working day
        ("1d2h", 26 * H),
    ],
)
def test_durations(spec, expected):
    assert parse_duration(spec) == expected


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("", "empty duration"),
        ("4", "'4' has no unit; expected e.g. 4h or 4m"),
        ("4x", "'4x' is not a duration"),
        ("h", "'h' is not a duration"),
        ("1.5h", "'1.5h' is not a duration"),
        ("-4h", "'-4h' is not a duration"),
    ],
)
def test_duration_errors_name_what_is_wrong(spec, complaint):
    with pytest.raises(ValueError, match=_literal(complaint)):
        parse_duration(spec)


def test_sla_targets_and_defaults():
    assert dict(DEFAULT_SLA) == {"critical": 4 * H, "high": 24 * H, "medium": 48 * H, "low": 72 * H}
    assert parse_sla("critical=4h,high=24h,medium=48h,low=72h") == DEFAULT_SLA
    assert parse_sla("") == DEFAULT_SLA
    # Priorities not named keep their defaults.
    assert parse_sla(" CRITICAL = 2h , low=5d") == {**DEFAULT_SLA, "critical": 2 * H, "low": 120 * H}
    with pytest.raises(TypeError):  # the defaults cannot be changed by accident
        DEFAULT_SLA["high"] = H  # type: ignore[index]


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("urgent=4h", "unknown priority 'urgent'; expected critical, high, medium or low"),
        ("high", "'high' is not a target; expected PRIORITY=DURATION"),
        ("high=24", "high: '24' has no unit"),
        ("high=1h,high=2h", "priority 'high' is given twice"),
        ("high=0h", "high: target '0h' must be longer than zero"),
    ],
)
def test_sla_errors_name_what_is_wrong(spec, complaint):
    with pytest.raises(ValueError, match=_literal(complaint)):
        parse_sla(spec)


@pytest.mark.parametrize("zone", ["Europe/Bruxelles", "", "../etc/passwd", "CET+1"])
def test_unknown_time_zone_is_named(zone):
    with pytest.raises(ValueError, match=_literal(f"unknown time zone {zone!r}")):
        make_calendar(zone, "mon-fri 09:00-18:00", "")


def test_a_calendar_without_any_opening_hours_is_refused():
    with pytest.raises(ValueError, match="no opening hours on any day"):
        Calendar(ZoneInfo("UTC"), ((),) * 7)
    with pytest.raises(ValueError, match="seven days"):
        Calendar(ZoneInfo("UTC"), (FULL_DAY,) * 5)
    with pytest.raises(ValueError, match="tue 17:00-09:00 ends before it starts"):
        Calendar(ZoneInfo("UTC"), ((), ((time(17), time(9)),), (), (), (), (), ()))


# --- Produsoft (Europe/Brussels, Mon-Thu 08:30-12:30,13:00-17:00, Fri until 16:00) -----------


def test_produsoft_is_open_at_the_edges(produsoft):
    # Thursday 4 February 2027: intervals include their start and not their end.
    expected = {
        "08:29": False,
        "08:30": True,
        "12:29": True,
        "12:30": False,  # lunch
        "12:59": False,
        "13:00": True,
        "16:59": True,
        "17:00": False,
    }
    assert {hhmm: is_open(produsoft, at(f"2027-02-04 {hhmm}")) for hhmm in expected} == expected
    assert is_open(produsoft, at("2027-02-05 15:59"))  # Friday
    assert not is_open(produsoft, at("2027-02-05 16:00"))  # Friday closes at 16:00
    assert not is_open(produsoft, at("2027-02-06 10:00"))  # Saturday


def test_produsoft_friday_1630_critical_spans_weekend_and_monday_lunch(produsoft):
    friday = at("2027-02-05 16:30")  # half an hour after Friday's closing
    assert next_opening(produsoft, friday) == at("2027-02-08 08:30")
    # 4 h: nothing on Friday or the weekend; Monday 08:30-12:30 is exactly 4 h, so the deadline
    # is 12:30, the start of the lunch break (not 13:00, its end).
    assert add_business_time(produsoft, friday, 4 * H) == at("2027-02-08 12:30")
    # 5 h: Monday 08:30-12:30 = 4 h, lunch 12:30-13:00 does not count, 13:00 + 1 h = 14:00.
    assert add_business_time(produsoft, friday, 5 * H) == at("2027-02-08 14:00")
    assert business_time_between(produsoft, friday, at("2027-02-08 14:00")) == 5 * H
    # Arriving during the lunch break counts from 13:00: 13:00-17:00 = 4 h.
    assert add_business_time(produsoft, at("2027-02-08 12:45"), 4 * H) == at("2027-02-08 17:00")


def test_produsoft_easter_monday_and_march_clock_change_2027():
    # 2027: the clocks go forward on Sunday 28 March (last Sunday of March, 02:00 -> 03:00);
    # Easter Monday 29 March is a holiday.
    cal = make_calendar("Europe/Brussels", PRODUSOFT_HOURS, "2027-03-29")
    friday = at("2027-03-26 17:00")  # after Friday's 16:00 closing, winter time (UTC+1)
    assert next_opening(cal, friday) == at("2027-03-30 08:30")
    # 4 h: weekend closed, Monday a holiday, Tuesday 08:30-12:30 = 4 h -> 12:30 summer time.
    due = add_business_time(cal, friday, 4 * H)
    assert due == at("2027-03-30 12:30")
    assert due.utcoffset() == 2 * H
    assert due == datetime.fromisoformat("2027-03-30T10:30:00+00:00")
    assert business_time_between(cal, friday, due) == 4 * H
    # High (24 h): Tuesday 8 h, Wednesday 8 h, Thursday 8 h -> Thursday 1 April 17:00.
    assert add_business_time(cal, friday, 24 * H) == at("2027-04-01 17:00")
    # From Friday 15:00: 1 h on Friday (15:00-16:00), 3 h on Tuesday -> 11:30.
    assert add_business_time(cal, at("2027-03-26 15:00"), 4 * H) == at("2027-03-30 11:30")


def test_produsoft_october_clock_change_2027():
    # 2027: the clocks go back on Sunday 31 October (03:00 -> 02:00).
    cal = make_calendar("Europe/Brussels", PRODUSOFT_HOURS, "")
    friday = at("2027-10-29 15:00")  # summer time (UTC+2)
    # 1 h on Friday (15:00-16:00), 3 h on Monday from 08:30 -> 11:30 winter time (10:30 UTC).
    due = add_business_time(cal, friday, 4 * H)
    assert due == at("2027-11-01 11:30")
    assert due == datetime.fromisoformat("2027-11-01T10:30:00+00:00")
    assert business_time_between(cal, at("2027-10-29 16:00"), at("2027-11-01 08:30")) == 0 * H
    # With the Belgian yearly holidays, Monday 1 November (All Saints) is closed: Tuesday 11:30.
    with_holidays = make_calendar("Europe/Brussels", PRODUSOFT_HOURS, BELGIAN_HOLIDAYS)
    assert add_business_time(with_holidays, friday, 4 * H) == at("2027-11-02 11:30")


def test_an_interval_on_a_clock_change_day_is_as_long_as_the_wall_clock_says():
    sundays = make_calendar("Europe/Brussels", "sun 08:30-17:00", "")
    # The clocks change at 02:00 or 03:00, outside 08:30-17:00: still 8.5 h.
    assert business_time_between(sundays, at("2027-03-27 00:00"), at("2027-03-29 00:00")) == 8.5 * H
    assert business_time_between(sundays, at("2027-10-30 00:00"), at("2027-11-01 00:00")) == 8.5 * H
    # A whole day counts the hours that really pass: 23 h in March, 25 h in October.
    full = make_calendar("Europe/Brussels", "sun 00:00-24:00", "")
    assert business_time_between(full, at("2027-03-28 00:00"), at("2027-03-29 00:00")) == 23 * H
    assert business_time_between(full, at("2027-10-31 00:00"), at("2027-11-01 00:00")) == 25 * H
    # A night shift 00:00-06:00 holds the change: 5 h in March, 7 h in October.
    nights = make_calendar("Europe/Brussels", "sun 00:00-06:00", "")
    assert business_time_between(nights, at("2027-03-28 00:00"), at("2027-03-29 00:00")) == 5 * H
    assert business_time_between(nights, at("2027-10-31 00:00"), at("2027-11-01 00:00")) == 7 * H


# --- the generic policy (Mon-Fri 09:00-18:00, 9 h a day) -------------------------------------


def test_generic_policy_default_targets(generic):
    monday = at("2027-02-01 10:00", "UTC")
    due = {name: add_business_time(generic, monday, target) for name, target in DEFAULT_SLA.items()}
    # Critical 4 h: Monday 10:00 + 4 h = 14:00.
    assert due["critical"] == at("2027-02-01 14:00", "UTC")
    # High 24 h: Mon 8 h (10-18), Tue 9 h (17), Wed 7 h -> Wednesday 16:00.
    assert due["high"] == at("2027-02-03 16:00", "UTC")
    # Medium 48 h: Mon 8, Tue 17, Wed 26, Thu 35, Fri 44, next Monday 4 h -> 13:00.
    assert due["medium"] == at("2027-02-08 13:00", "UTC")
    # Low 72 h: 44 by Friday, Mon 53, Tue 62, Wed 71, Thursday 1 h -> 10:00.
    assert due["low"] == at("2027-02-11 10:00", "UTC")
    for name, target in DEFAULT_SLA.items():
        assert business_time_between(generic, monday, due[name]) == target


def test_generic_policy_mail_sent_in_the_weekend(generic):
    # Mail is accepted 24x7 and reviewed within an hour in business hours: Sunday's mail is due
    # for review at Monday 10:00; a critical one sent Saturday 03:00 is due Monday 13:00.
    assert add_business_time(generic, at("2027-02-07 21:00", "UTC"), H) == at("2027-02-08 10:00", "UTC")
    assert add_business_time(generic, at("2027-02-06 03:00", "UTC"), 4 * H) == at("2027-02-08 13:00", "UTC")
    # A zero duration is the next opening.
    assert add_business_time(generic, at("2027-02-06 03:00", "UTC"), 0 * H) == at("2027-02-08 09:00", "UTC")


# --- BAS-IP (GMT all year, Mon-Fri 06:00-22:00) ----------------------------------------------


def test_bas_ip_mean_resolution_target_over_the_weekend():
    cal = make_calendar("GMT", "mon-fri 06:00-22:00", "")
    friday = at("2027-07-02 20:00", "GMT")
    # 5 h: Friday 20:00-22:00 = 2 h, Monday 06:00 + 3 h = 09:00 GMT.
    due = add_business_time(cal, friday, 5 * H)
    assert due == at("2027-07-05 09:00", "GMT")
    # GMT does not follow British summer time: in London that is 10:00.
    assert due.astimezone(ZoneInfo("Europe/London")).hour == 10
    # First response within 5 minutes: Monday 21:58 + 2 min, then Tuesday 06:00 + 3 min.
    assert add_business_time(cal, at("2027-07-05 21:58", "GMT"), 5 * M) == at("2027-07-06 06:03", "GMT")


# --- always open -----------------------------------------------------------------------------


def test_always_open_counts_real_hours_across_a_clock_change():
    cal = make_calendar("Europe/Brussels", "24x7", "")
    assert cal.always_open
    saturday = at("2027-03-27 12:00")  # 11:00 UTC
    assert is_open(cal, saturday) and next_opening(cal, saturday) == saturday
    # 72 h later is 11:00 UTC on Tuesday = 13:00 summer time (the clocks skipped an hour).
    assert add_business_time(cal, saturday, 72 * H) == at("2027-03-30 13:00")
    assert business_time_between(cal, saturday, at("2027-03-28 12:00")) == 23 * H


def test_always_open_still_closes_on_holidays():
    cal = make_calendar("Europe/Brussels", "always", "12-25")
    assert not is_open(cal, at("2027-12-25 12:00"))
    # Friday 24 December 22:00: 2 h until midnight, Christmas closed, 2 h on the 26th.
    assert add_business_time(cal, at("2027-12-24 22:00"), 4 * H) == at("2027-12-26 02:00")


# --- holidays --------------------------------------------------------------------------------


def test_yearly_and_ranged_holidays():
    cal = make_calendar("Europe/Brussels", PRODUSOFT_HOURS, BELGIAN_HOLIDAYS + ",2027-05-06..2027-05-07")
    # Ascension Thursday 6 May 2027 and the bridge day after it: Wednesday 16:00 + 4 h is
    # 1 h on Wednesday (16:00-17:00), then Monday 10 May 08:30 + 3 h = 11:30.
    assert add_business_time(cal, at("2027-05-05 16:00"), 4 * H) == at("2027-05-10 11:30")
    # The national day 21 July is closed every year: a Wednesday in 2027, a Friday in 2028.
    assert not is_open(cal, at("2027-07-21 10:00"))
    assert not is_open(cal, at("2028-07-21 10:00"))
    assert is_open(cal, at("2027-07-22 10:00"))
    # Christmas on Friday 2026: Thursday 16:00 + 4 h = 1 h Thursday, Monday 28th 08:30 + 3 h.
    assert add_business_time(cal, at("2026-12-24 16:00"), 4 * H) == at("2026-12-28 11:30")
    # Christmas on Monday 2028: Friday 22nd 15:00 + 4 h = 1 h Friday, Tuesday 26th 08:30 + 3 h.
    assert add_business_time(cal, at("2028-12-22 15:00"), 4 * H) == at("2028-12-26 11:30")


# --- edge cases and guards -------------------------------------------------------------------


def test_naive_datetimes_and_negative_durations_are_refused(generic):
    naive = datetime(2027, 2, 1, 10, 0)
    aware = at("2027-02-01 10:00", "UTC")
    for call in (
        lambda: is_open(generic, naive),
        lambda: next_opening(generic, naive),
        lambda: add_business_time(generic, naive, H),
        lambda: business_time_between(generic, aware, naive),
    ):
        with pytest.raises(ValueError, match="must be a timezone-aware datetime"):
            call()
    with pytest.raises(ValueError, match="duration must not be negative"):
        add_business_time(generic, aware, -H)


def test_end_before_start_is_zero_and_zones_of_the_input_do_not_matter(generic):
    assert (
        business_time_between(generic, at("2027-02-01 12:00", "UTC"), at("2027-02-01 10:00", "UTC")) == 0 * H
    )
    # 10:00 in New York is 15:00 UTC: 3 h until 18:00 UTC closing.
    start = at("2027-02-01 10:00", "America/New_York")
    assert business_time_between(generic, start, at("2027-02-02 00:00", "UTC")) == 3 * H
    assert add_business_time(generic, start, 3 * H).tzinfo == ZoneInfo("UTC")  # answers in cal.zone


def test_long_target_over_one_opening_hour_a_week_is_quick():
    cal = make_calendar("UTC", "sat 10:00-11:00", "")
    start = at("2027-01-04 09:00", "UTC")  # a Monday
    # Hour 1 is Saturday 9 January 2027; hour 72 is 71 weeks later, Saturday 20 May 2028.
    due = add_business_time(cal, start, 72 * H)
    assert due == at("2028-05-20 11:00", "UTC")
    assert business_time_between(cal, start, due) == 72 * H


def test_a_calendar_closed_for_ever_by_holidays_fails_instead_of_hanging():
    every_day = ",".join(f"{d:%m-%d}" for d in (date(2028, 1, 1) + timedelta(n) for n in range(366)))
    cal = make_calendar("UTC", "mon-fri 09:00-18:00", every_day)
    with pytest.raises(ValueError, match="closed for ten years"):
        next_opening(cal, at("2027-01-01 00:00", "UTC"))


# --- property checks: seeded random cases ----------------------------------------------------

CALENDARS = [
    ("Europe/Brussels", PRODUSOFT_HOURS, BELGIAN_HOLIDAYS + ",2027-05-06..2027-05-07,2027-03-29"),
    ("UTC", "mon-fri 09:00-18:00", ""),
    ("GMT", "mon-fri 06:00-22:00", "12-25"),
    ("UTC", "sat 10:00-11:00", ""),
    ("Europe/Brussels", "24x7", "12-25,2027-03-28"),
    ("America/New_York", "mon-sun 00:00-06:00,22:00-24:00", "07-04"),
    ("Australia/Lord_Howe", "mon-sat 00:00-03:00,09:00-17:00", ""),
    # Public holidays by country and region, from the holidays library, beside dates of our own.
    ("Europe/Amsterdam", PRODUSOFT_HOURS, "NL,DE-BY,12-24"),
    ("Europe/Paris", "24x7", "FR"),
]
# Days the clocks change in the zones above, so that the random spans often cross one.
CLOCK_CHANGES = ["2027-03-14", "2027-03-28", "2027-04-04", "2027-10-03", "2027-10-31", "2027-11-07"]


def _random_start(rng: random.Random, zone: ZoneInfo, *, seconds: bool) -> datetime:
    if rng.random() < 0.5:
        base = datetime.fromisoformat(rng.choice(CLOCK_CHANGES)) - timedelta(days=2)
        offset = timedelta(minutes=rng.randrange(4 * 24 * 60))
    else:
        base, offset = datetime(2026, 1, 1), timedelta(minutes=rng.randrange(3 * 365 * 24 * 60))
    start = (base + offset).replace(tzinfo=zone)
    return start + timedelta(seconds=rng.randrange(60)) if seconds else start


def test_add_and_between_are_inverse():
    rng = random.Random(20270328)
    for case in range(400):
        cal = make_calendar(*CALENDARS[case % len(CALENDARS)])
        start = _random_start(rng, cal.zone, seconds=True)
        duration = timedelta(seconds=rng.randrange(200 * 3600)) if case % 10 else timedelta(0)
        due = add_business_time(cal, start, duration)
        assert business_time_between(cal, start, due) == duration, (case, start, duration)
        assert due >= start
        if duration:  # the clock ran up to the deadline, so the instant before it was open
            assert is_open(cal, due - timedelta(microseconds=1)), (case, start, duration)
        else:
            assert due == next_opening(cal, start)


def _wall_clock_open(cal: Calendar, instant: datetime) -> bool:
    """An independent reading of the calendar: look at the wall clock and the printed hours."""
    local = instant.astimezone(cal.zone)
    if local.date() in cal.holidays:
        return False
    hours = FULL_DAY if cal.always_open else cal.weekly[local.weekday()]
    now = local.time()
    return any(start <= now and (end == MIDNIGHT or now < end) for start, end in hours)


def test_between_agrees_with_a_minute_by_minute_count():
    rng = random.Random(1725)
    for case in range(60):
        cal = make_calendar(*CALENDARS[case % len(CALENDARS)])
        start = _random_start(rng, cal.zone, seconds=False).astimezone(ZoneInfo("UTC"))
        minutes = rng.randrange(1, 4 * 24 * 60)
        counted = sum(_wall_clock_open(cal, start + k * M) for k in range(minutes))
        assert business_time_between(cal, start, start + minutes * M) == counted * M, (case, start)
        for k in rng.sample(range(minutes), 10):
            moment = start + k * M
            assert is_open(cal, moment) == _wall_clock_open(cal, moment), (case, moment)


# --- purity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [calendar, notation, public_holidays], ids=lambda m: m.__name__)
def test_business_hours_modules_are_pure(module):
    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {
        "__future__",
        "re",
        "collections.abc",
        "dataclasses",
        "datetime",
        "types",
        "zoneinfo",
        "functools",
        "holidays",  # computes public holidays from rules; no clock, no I/O
        "mailbot.sla.calendar",
        "mailbot.sla.public_holidays",
        "mailbot.vocabulary",  # the priorities
    }
    clock_reads = {"now", "utcnow", "today", "time_ns", "monotonic"}
    assert not [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in clock_reads]


def _literal(text: str) -> str:
    return re.escape(text)
