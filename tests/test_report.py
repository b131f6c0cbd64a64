"""The report a support manager reads at the end of the week: were the generic policy's promises
(first response within 1 h, resolution within 4/24/48/72 business hours) kept?

The week of Monday 1 to Friday 5 February 2021 on the generic desk (UTC, Mon-Fri 09:00-18:00),
ten tickets, every figure worked out by hand below. Durations are business time with the time
waiting for the customer left out.

  ticket  prio      opened           first response             resolved (business time)
  T1      critical  Mon 09:00        Mon 09:30 =  30 min  ok     Mon 12:00 =  3 h    ok; closed Tue
  T2      critical  Mon 16:00        Mon 17:30 =  90 min  LATE   Tue 11:00 = 2+2 = 4 h: exactly on
                                                                 time, ok
  T3      high      Sat 30 Jan 22:00 Mon 09:45 =  45 min  ok     Wed 15:00: Mon 9 + Tue 9 + Wed 6
                    (counts from Mon 09:00)                      = 24 h, less waiting Mon 10:00 to
                                                                 Tue 10:00 (8 + 1 = 9 h) = 15 h ok
  T4      medium    Tue 09:00        Tue 11:00 = 120 min  LATE   open; due Tue 9 Feb 12:00: not yet
  T5      low       Wed 09:00        none, due Wed 10:00: OVERDUE  open; due far later
  T6      high      Thu 09:00        Thu 09:10 =  10 min  ok     Fri 17:00 = 9 + 8 = 17 h ok;
                                                                 closed Fri 17:30
  T7      critical  Fri 09:00        Fri 09:20 =  20 min  ok     open; due Fri 13:00: OVERDUE
  T8      medium    Mon 25 Jan 09:00 Mon 25 Jan (not this week)  Wed 10:00: 45 + 9 + 9 + 1 = 64 h
                                                                 LATE (48 h)
  T9      low       Thu 10:00        none: the customer closed it at 10:20 (withdrawn), so no
                                     first response is owed; resolved (closed) = 20 min ok
  VISI-1  another product: not in this report.

Per priority (mean; p90 = nearest rank, ceil(0.9 n)-th smallest):
  critical  opened 3 (T1 T2 T7), closed 1 (T1)
            first response 30, 90, 20: mean 140/3 = 46.67, p90 = 90, within 2 of 3, 1 breach
            resolution 180, 240: mean 210, p90 240, within 2; T7 overdue: 2 of 3, 1 breach
  high      opened 1 (T6; T3 came in the week before), closed 1 (T6)
            first response 45, 10: mean 27.5, p90 45, 2 of 2; resolution 900, 1020: mean 960,
            p90 1020, 2 of 2
  medium    opened 1 (T4), closed 0; first response 120: 0 of 1, 1 breach;
            resolution 3840 (T8): 0 of 1, 1 breach
  low       opened 2 (T5 T9), closed 1 (T9); first response: none measured, T5 overdue: 0 of 1,
            1 breach; resolution 20 (T9): 1 of 1
  all       opened 7, closed 3
            first response 30 90 20 45 10 120: mean 315/6 = 52.5, p90 (6th of 6) = 120,
            within 4, overdue 1 (T5): 4 of 7 = 0.5714, breaches 3
            resolution 180 240 900 1020 3840 20: mean 6200/6 = 1033.33, p90 = 3840,
            within 5, overdue 1 (T7): 5 of 7 = 0.7143, breaches 2

Time (`#time`, started 15-minute blocks):
  Acme (Dana)    T1 45m -> 45 charged to Acme's credit; T3 is a bug: 20m -> 30, free;
                 T8's 30m on Tue 26 Jan is before the week.      spent 75, charged 45, free 30
  walt@solo.test T6 40m -> 45, only 20 min of credit left.       spent 45, charged 20,
                                                                 not covered 25
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from click.testing import CliRunner

from mailbot.cli.main import AppState
from mailbot.cli.report import report as report_command
from mailbot.desk import credit, tickets
from mailbot.sla.report import build_report, format_report, report_data
from mailbot.store.db import close_database
from tests.helpers.desks import (
    PRODUCTS,
    Clock,
    answer,
    at,
    change_status,
    desk_database_url,
    open_desk,
    open_ticket,
    person,
)

MONDAY = date(2021, 2, 1)
FRIDAY = date(2021, 2, 5)
REPORTED_AT = at("2021-02-08 12:00")
ENGINEER = "erin@generic.test"


def t(text: str):
    """A moment in the week: 'Mon 09:30', or a full date."""
    days = {
        "Sat": "2021-01-30",
        "Mon": "2021-02-01",
        "Tue": "2021-02-02",
        "Wed": "2021-02-03",
        "Thu": "2021-02-04",
        "Fri": "2021-02-05",
    }
    day, _, clock = text.partition(" ")
    return at(f"{days.get(day, day)} {clock}")


def ticket(desk, requester, priority, created, steps=()):
    """A ticket opened at `created` that goes through `steps`: (status, moment, who), with
    "answer" for the engineer's first response (which sets the status to open)."""
    row = open_ticket(desk, "GEN", requester, t(created), priority)
    for status, moment, who in steps:
        if status == "answer":
            answer(desk, row, t(moment), engineer=ENGINEER)
        else:
            change_status(desk, row, status, t(moment), who)
    return row


@pytest.fixture
def week(tmp_path):
    """The dataset of the module docstring."""
    with open_desk(tmp_path, Clock(REPORTED_AT)) as desk:
        person(ENGINEER, "GEN", "engineer")
        dana = person("dana@acme.test", "GEN", organisation="Acme")
        walt = person("walt@solo.test", "GEN")
        credit.add_credit(credit.get_or_create_organisation("Acme"), 120, t("2021-01-04 09:00"))
        credit.add_credit(walt, 20, t("2021-01-04 09:00"))
        e, d = ENGINEER, "dana@acme.test"
        t8 = ticket(desk, dana, "medium", "2021-01-25 09:00", [("answer", "2021-01-25 09:30", e)])
        credit.charge_time(desk, t8, e, 30, t("2021-01-26 10:00"))
        t3 = ticket(desk, dana, "high", "Sat 22:00", [("answer", "Mon 09:45", e)])
        t1 = ticket(
            desk,
            dana,
            "critical",
            "Mon 09:00",
            [("answer", "Mon 09:30", e), ("resolved", "Mon 12:00", e), ("closed", "Tue 10:00", d)],
        )
        credit.charge_time(desk, t1, e, 45, t("Mon 11:00"))
        change_status(desk, t3, "waiting", t("Mon 10:00"), e)
        ticket(
            desk, dana, "critical", "Mon 16:00", [("answer", "Mon 17:30", e), ("resolved", "Tue 11:00", e)]
        )
        change_status(desk, t3, "open", t("Tue 10:00"), d)
        ticket(desk, dana, "medium", "Tue 09:00", [("answer", "Tue 11:00", e)])
        ticket(desk, dana, "low", "Wed 09:00")
        change_status(desk, t8, "resolved", t("Wed 10:00"), e)
        tickets.set_field(t3, "category", "bug", e, t("Wed 13:00"))
        credit.charge_time(desk, t3, e, 20, t("Wed 14:00"))
        change_status(desk, t3, "resolved", t("Wed 15:00"), e)
        t6 = ticket(desk, walt, "high", "Thu 09:00", [("answer", "Thu 09:10", e)])
        ticket(desk, dana, "low", "Thu 10:00", [("closed", "Thu 10:20", d)])
        ticket(desk, dana, "critical", "Fri 09:00", [("answer", "Fri 09:20", e)])
        credit.charge_time(desk, t6, e, 40, t("Fri 16:00"))
        change_status(desk, t6, "resolved", t("Fri 17:00"), e)
        change_status(desk, t6, "closed", t("Fri 17:30"), "walt@solo.test")
        other = open_ticket(desk, "VISI", person("jan@klant.test", "VISI"), t("Tue 09:00"))
        credit.charge_time(desk, other, "piet@produsoft.test", 30, t("Tue 10:00"))
        yield desk


def measure(count, target, mean, p90, within, overdue, breaches, share):
    return {
        "count": count,
        "target_minutes": target,
        "mean_minutes": mean,
        "p90_minutes": p90,
        "within_target": within,
        "overdue": overdue,
        "breaches": breaches,
        "share_within_target": share,
    }


EXPECTED_ROWS = [
    {
        "priority": "critical",
        "opened": 3,
        "closed": 1,
        "first_response": measure(3, 60.0, 46.67, 90.0, 2, 0, 1, 0.6667),
        "resolution": measure(2, 240.0, 210.0, 240.0, 2, 1, 1, 0.6667),
    },
    {
        "priority": "high",
        "opened": 1,
        "closed": 1,
        "first_response": measure(2, 60.0, 27.5, 45.0, 2, 0, 0, 1.0),
        "resolution": measure(2, 1440.0, 960.0, 1020.0, 2, 0, 0, 1.0),
    },
    {
        "priority": "medium",
        "opened": 1,
        "closed": 0,
        "first_response": measure(1, 60.0, 120.0, 120.0, 0, 0, 1, 0.0),
        "resolution": measure(1, 2880.0, 3840.0, 3840.0, 0, 0, 1, 0.0),
    },
    {
        "priority": "low",
        "opened": 2,
        "closed": 1,
        "first_response": measure(0, 60.0, None, None, 0, 1, 1, 0.0),
        "resolution": measure(1, 4320.0, 20.0, 20.0, 1, 0, 0, 1.0),
    },
]
EXPECTED_TOTAL = {
    "priority": "all",
    "opened": 7,
    "closed": 3,
    "first_response": measure(6, 60.0, 52.5, 120.0, 4, 1, 3, 0.5714),
    "resolution": measure(6, None, 1033.33, 3840.0, 5, 1, 2, 0.7143),
}
EXPECTED_TIME = [
    {
        "organisation": "Acme",
        "spent_minutes": 75,
        "charged_minutes": 45,
        "free_minutes": 30,
        "uncovered_minutes": 0,
    },
    {
        "organisation": "walt@solo.test",
        "spent_minutes": 45,
        "charged_minutes": 20,
        "free_minutes": 0,
        "uncovered_minutes": 25,
    },
]


def test_the_week_in_figures(week):
    [gen] = report_data(build_report(week.settings, MONDAY, FRIDAY, REPORTED_AT, ["gen"]))
    assert (gen["product"], gen["from"], gen["to"]) == ("GEN", "2021-02-01", "2021-02-05")
    for expected, row in zip(EXPECTED_ROWS, gen["priorities"], strict=True):
        assert row == expected, expected["priority"]
    assert gen["total"] == EXPECTED_TOTAL
    assert gen["time"] == EXPECTED_TIME


def test_the_table_shows_the_same_figures(week):
    text = format_report(build_report(week.settings, MONDAY, FRIDAY, REPORTED_AT, ["GEN"]))
    lines = text.splitlines()
    assert lines[0] == "GEN (Generic Support), 2021-02-01 to 2021-02-05, time zone UTC"
    [critical] = [line for line in lines if line.startswith("critical")]
    # 3 opened, 1 closed | 3 answered, mean 0:47, p90 1:30, 67 %, 1 breach | target 4:00, ...
    assert critical.split() == [
        "critical",
        "3",
        "1",
        "|",
        "3",
        "0:47",
        "1:30",
        "67%",
        "1",
        "|",
        "4:00",
        "2",
        "3:30",
        "4:00",
        "67%",
        "1",
    ]
    [total] = [line for line in lines if line.startswith("all")]
    assert total.split() == [
        "all",
        "7",
        "3",
        "|",
        "6",
        "0:52",
        "2:00",
        "57%",
        "3",
        "|",
        "-",
        "6",
        "17:13",
        "64:00",
        "71%",
        "2",
    ]
    [acme] = [line for line in lines if line.startswith("Acme")]
    assert acme.split() == ["Acme", "1:15", "0:45", "0:30", "0:00"]


def test_a_quiet_period_reports_zeros_not_errors(week):
    [gen] = report_data(
        build_report(week.settings, date(2021, 3, 1), date(2021, 3, 31), REPORTED_AT, ["GEN"])
    )
    # Still open and overdue since early February: not a breach *of March*.
    assert gen["total"]["opened"] == 0 and gen["total"]["first_response"]["breaches"] == 0
    assert gen["total"]["resolution"]["share_within_target"] is None
    assert gen["time"] == []


def test_mailbot_report_json_from_the_command_line(week, tmp_path):
    env_file = tmp_path / "site.env"
    lines = [
        f"MAILBOT_DATA_DIR={tmp_path / 'data'}",
        f"MAILBOT_DATABASE_URL={desk_database_url(tmp_path)}",
        "MAILBOT_PRODUCTS=GEN,VISI",
    ]
    lines += [f"MAILBOT_PRODUCT_{key}_{k}={v}" for key in ("GEN", "VISI") for k, v in PRODUCTS[key].items()]
    env_file.write_text("\n".join(lines) + "\n")
    close_database()
    result = CliRunner().invoke(
        report_command,
        ["--product", "GEN", "--from", "2021-02-01", "--to", "2021-02-05", "--json"],
        obj=AppState(env_file),
    )
    assert result.exit_code == 0, result.output
    [gen] = json.loads(result.output)
    assert gen["priorities"] == EXPECTED_ROWS and gen["total"] == EXPECTED_TOTAL
    bad = CliRunner().invoke(
        report_command, ["--from", "2021-02-05", "--to", "2021-02-01"], obj=AppState(env_file)
    )
    assert bad.exit_code == 2 and "before --from" in bad.output
