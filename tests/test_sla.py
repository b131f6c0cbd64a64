"""SLA rules: deadlines that stand still while we wait for the customer, the share of the target
used, time charged in started 15-minute blocks, and report statistics. Every "now" is explicit."""

from __future__ import annotations

import ast
import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.sla import clock
from mailbot.sla.calendar import add_business_time, business_time_between
from mailbot.sla.clock import Pause, due_time, elapsed, mean, percentile, round_up_to_blocks, used_share
from mailbot.sla.notation import make_calendar

H = timedelta(hours=1)
M = timedelta(minutes=1)


def at(text: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


MONDAY_10 = at("2027-02-01 10:00")


# --- due times and pauses --------------------------------------------------------------------


def test_without_pauses_the_deadline_is_plain_business_time(generic):
    # Critical 4 h from Monday 10:00 = 14:00.
    assert due_time(generic, MONDAY_10, 4 * H, [], now=MONDAY_10) == at("2027-02-01 14:00")


def test_a_pause_moves_the_deadline_by_the_business_time_paused(generic):
    # Waiting for the customer Monday 11:00-12:30 (1.5 h): 14:00 becomes 15:30.
    pause = Pause(at("2027-02-01 11:00"), at("2027-02-01 12:30"))
    due = due_time(generic, MONDAY_10, 4 * H, [pause], now=at("2027-02-01 13:00"))
    assert due == at("2027-02-01 15:30")
    assert due - at("2027-02-01 14:00") == business_time_between(generic, pause.start, pause.end)


def test_a_pause_over_the_night_counts_only_its_business_time(generic):
    start = at("2027-02-01 15:00")
    # Critical 4 h from Monday 15:00: 3 h on Monday (15-18), 1 h on Tuesday -> Tuesday 10:00.
    assert due_time(generic, start, 4 * H, [], now=start) == at("2027-02-02 10:00")
    # Waiting Monday 16:00 to Tuesday 09:30: 2 h on Monday (16-18) + 0.5 h on Tuesday = 2.5 h.
    # Clock: Monday 15-16 = 1 h, then from Tuesday 09:30 the other 3 h -> Tuesday 12:30.
    pause = Pause(at("2027-02-01 16:00"), at("2027-02-02 09:30"))
    due = due_time(generic, start, 4 * H, [pause], now=at("2027-02-02 11:00"))
    assert due == at("2027-02-02 12:30")
    assert business_time_between(generic, at("2027-02-02 10:00"), due) == 2.5 * H


def test_produsoft_waiting_over_lunch_and_into_friday():
    cal = make_calendar("Europe/Brussels", "mon-thu 08:30-12:30,13:00-17:00; fri 08:30-12:30,13:00-16:00", "")
    start = at("2027-02-04 11:00", "Europe/Brussels")  # Thursday
    # Critical 4 h: Thursday 11:00-12:30 = 1.5 h, 13:00 + 2.5 h -> Thursday 15:30.
    assert due_time(cal, start, 4 * H, [], now=start) == at("2027-02-04 15:30", "Europe/Brussels")
    # Waiting Thursday 12:00 to Friday 14:00. The clock ran 1 h (11-12) and runs the other 3 h
    # from Friday 14:00: 2 h to Friday's 16:00 closing, then Monday 08:30 + 1 h = 09:30.
    pause = Pause(at("2027-02-04 12:00", "Europe/Brussels"), at("2027-02-05 14:00", "Europe/Brussels"))
    due = due_time(cal, start, 4 * H, [pause], now=pause.end)
    assert due == at("2027-02-08 09:30", "Europe/Brussels")
    # Business time paused: Thu 12:00-12:30 0.5 + 13-17 4 + Fri 08:30-12:30 4 + 13-14 1 = 9.5 h,
    # and Thursday 15:30 to Monday 09:30 is 1.5 + 7 (Friday) + 1 = 9.5 h of business time too.
    assert business_time_between(cal, pause.start, pause.end) == 9.5 * H
    assert business_time_between(cal, at("2027-02-04 15:30", "Europe/Brussels"), due) == 9.5 * H


def test_an_open_pause_counts_until_now(generic):
    waiting = Pause(at("2027-02-01 11:00"))  # still waiting for the customer
    # At 12:00 one hour is paused: 14:00 becomes 15:00.
    assert due_time(generic, MONDAY_10, 4 * H, [waiting], now=at("2027-02-01 12:00")) == at(
        "2027-02-01 15:00"
    )
    # At 17:30 the clock has run 1 h (10-11); 3 h from 17:30 = 0.5 h Monday, 2.5 h Tuesday.
    assert due_time(generic, MONDAY_10, 4 * H, [waiting], now=at("2027-02-01 17:30")) == at(
        "2027-02-02 11:30"
    )


def test_pauses_that_cannot_move_the_deadline(generic):
    # On hold after the 14:00 deadline: a breached ticket stays breached.
    late = Pause(at("2027-02-01 15:00"), at("2027-02-01 16:00"))
    assert due_time(generic, MONDAY_10, 4 * H, [late], now=at("2027-02-01 17:00")) == at("2027-02-01 14:00")
    # On hold over the weekend only: Friday 16:00 + 4 h = 2 h Friday + Monday 09:00 + 2 h.
    friday = at("2027-02-05 16:00")
    weekend = Pause(at("2027-02-06 10:00"), at("2027-02-07 10:00"))
    assert due_time(generic, friday, 4 * H, [weekend], now=at("2027-02-08 08:00")) == at("2027-02-08 11:00")


def test_pauses_before_the_start_or_overlapping_are_counted_once(generic):
    # A pause 08:00-11:00 around a 10:00 start only holds the clock 10:00-11:00: due 15:00.
    early = Pause(at("2027-02-01 08:00"), at("2027-02-01 11:00"))
    assert due_time(generic, MONDAY_10, 4 * H, [early], now=MONDAY_10) == at("2027-02-01 15:00")
    # 11:00-12:00 and 11:30-12:30 overlap: 1.5 h paused, not 2 h -> 15:30.
    both = [
        Pause(at("2027-02-01 11:30"), at("2027-02-01 12:30")),
        Pause(at("2027-02-01 11:00"), at("2027-02-01 12:00")),
    ]
    assert due_time(generic, MONDAY_10, 4 * H, both, now=MONDAY_10) == at("2027-02-01 15:30")
    assert elapsed(generic, MONDAY_10, at("2027-02-01 14:00"), both) == 2.5 * H


def test_naive_now_is_refused(generic):
    # A naive "now" would otherwise be read as the server's local time.
    waiting = [Pause(at("2027-02-01 11:00"))]
    with pytest.raises(ValueError, match="now must be a timezone-aware datetime"):
        due_time(generic, MONDAY_10, 4 * H, waiting, now=datetime(2027, 2, 1, 12, 0))
    with pytest.raises(ValueError, match="start must be a timezone-aware datetime"):
        elapsed(generic, datetime(2027, 2, 1, 10, 0), MONDAY_10, [])


def test_pause_must_make_sense():
    with pytest.raises(ValueError, match="before it starts"):
        Pause(at("2027-02-01 12:00"), at("2027-02-01 11:00"))
    with pytest.raises(ValueError, match="pause start must be a timezone-aware datetime"):
        Pause(datetime(2027, 2, 1, 12, 0))


# --- elapsed and the share used --------------------------------------------------------------


def test_elapsed_leaves_out_pauses(generic):
    tuesday_10 = at("2027-02-02 10:00")
    # Monday 10:00 to Tuesday 10:00 is 8 h + 1 h = 9 h of business time.
    assert elapsed(generic, MONDAY_10, tuesday_10, []) == 9 * H
    # Minus a 1.5 h pause on Monday (11:00-12:30): 7.5 h.
    pause = Pause(at("2027-02-01 11:00"), at("2027-02-01 12:30"))
    assert elapsed(generic, MONDAY_10, tuesday_10, [pause]) == 7.5 * H
    # Minus an open pause since Monday 17:00 (17-18 and 09-10 Tuesday = 2 h): 7 h.
    assert elapsed(generic, MONDAY_10, tuesday_10, [Pause(at("2027-02-01 17:00"))]) == 7 * H
    # A pause reaching past the end only counts up to the end.
    long_pause = Pause(at("2027-02-01 17:00"), at("2027-02-03 12:00"))
    assert elapsed(generic, MONDAY_10, tuesday_10, [long_pause]) == 7 * H


def test_used_share_for_the_board_warning(generic):
    # Critical 4 h from Monday 10:00; at 13:00 3 h are used: 75 %.
    assert used_share(generic, MONDAY_10, 4 * H, [], now=at("2027-02-01 13:00")) == 0.75
    # With an hour on hold (11-12), 2 h are used: 50 %.
    pause = Pause(at("2027-02-01 11:00"), at("2027-02-01 12:00"))
    assert used_share(generic, MONDAY_10, 4 * H, [pause], now=at("2027-02-01 13:00")) == 0.5
    # Tuesday 10:00, no pause: 9 h of 4 h = 2.25, more than the whole target.
    assert used_share(generic, MONDAY_10, 4 * H, [], now=at("2027-02-02 10:00")) == 2.25
    assert used_share(generic, MONDAY_10, 4 * H, [], now=at("2027-02-01 09:00")) == 0.0
    with pytest.raises(ValueError, match="target must be longer than zero"):
        used_share(generic, MONDAY_10, 0 * H, [], now=MONDAY_10)


def test_due_time_and_elapsed_agree():
    # Seeded random tickets with random pauses: at the deadline exactly the target has elapsed,
    # and without pauses the deadline is plain business time.
    cal = make_calendar(
        "Europe/Brussels", "mon-thu 08:30-12:30,13:00-17:00; fri 08:30-12:30,13:00-16:00", "12-25"
    )
    rng = random.Random(4)
    for case in range(300):
        start = at("2027-01-01 00:00", "Europe/Brussels") + timedelta(minutes=rng.randrange(525600))
        target = timedelta(minutes=rng.randrange(1, 72 * 60))
        pauses = []
        moment = start
        for _ in range(rng.randrange(4)):
            moment += timedelta(minutes=rng.randrange(-600, 3000))
            pauses.append(Pause(moment, moment + timedelta(minutes=rng.randrange(0, 4000))))
        now = max([start, *(p.end for p in pauses if p.end)])
        due = due_time(cal, start, target, pauses, now)
        assert elapsed(cal, start, due, pauses) == target, (case, start, target, pauses)
        if not pauses:
            assert due == add_business_time(cal, start, target)


# --- time charged, statistics ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "charged"),
    [(0, 0), (1, 15), (14, 15), (15, 15), (16, 30), (30, 30), (31, 45), (50, 60), (60, 60)],
)
def test_started_quarter_hours_are_charged_whole(minutes, charged):
    # Alias's prepaid packages: every started 15-minute block counts (a 50-minute call is 4).
    assert round_up_to_blocks(minutes) == charged


def test_round_up_to_other_blocks_and_errors():
    assert round_up_to_blocks(1, block=30) == 30
    assert round_up_to_blocks(61, block=60) == 120
    with pytest.raises(ValueError, match="minutes must not be negative; got -1"):
        round_up_to_blocks(-1)
    with pytest.raises(ValueError, match="block must be at least one minute; got 0"):
        round_up_to_blocks(10, block=0)


def test_mean_of_resolution_times():
    # (1 h + 2 h + 4 h) / 3 = 7 h / 3 = 2 h 20 min.
    assert mean([H, 2 * H, 4 * H]) == 2 * H + 20 * M
    assert mean(iter([5 * M])) == 5 * M
    assert mean([]) is None


def test_nearest_rank_percentile():
    hours = [h * H for h in (7, 3, 10, 1, 5, 9, 2, 8, 4, 6)]
    # 10 values: rank ceil(0.9 * 10) = 9 -> the 9th smallest, 9 h.
    assert percentile(hours, 90) == 9 * H
    # rank ceil(0.7 * 10) = 7 -> 7 h (a floating-point 0.7 * 10 would give rank 8).
    assert percentile(hours, 70) == 7 * H
    # 5 values: rank ceil(0.9 * 5) = ceil(4.5) = 5 -> the largest.
    assert percentile([5 * M, 1 * M, 3 * M, 2 * M, 4 * M], 90) == 5 * M
    # 20 values 1..20 min: rank 18.
    assert percentile([m * M for m in range(1, 21)], 90) == 18 * M
    assert percentile([42 * M], 90) == 42 * M
    assert percentile(hours, 100) == 10 * H
    assert percentile([], 90) is None
    for bad in (0, -5, 101):
        with pytest.raises(ValueError, match="percentile must be above 0 and at most 100"):
            percentile(hours, bad)


def test_sla_module_is_pure():
    tree = ast.parse(Path(clock.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    allowed = {"__future__", "math", "collections.abc", "dataclasses", "datetime"}
    assert imported <= allowed | {"mailbot.sla.calendar"}
    clock_reads = {"now", "utcnow", "today", "time_ns", "monotonic"}
    assert not [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in clock_reads]
