"""Due times as an admin reads them in `mailbot ticket show`: counted in each seed's business
hours from the next opening, moved by a priority change, standing still while the ticket waits
for the customer. Every expected time below is worked out by hand in the comment beside it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailbot.desk import tickets
from mailbot.sla.deadlines import pauses_of, refresh_deadlines, sla_state
from tests.helpers.desks import Clock, answer, at, change_status, open_desk, open_ticket, person

H = timedelta(hours=1)
MONDAY_10 = at("2027-02-01 10:00")  # Monday 1 February 2027


@pytest.fixture
def desk(tmp_path):
    with open_desk(tmp_path, Clock(MONDAY_10)) as desk:
        yield desk


@pytest.fixture
def dana(desk):
    return person("dana@customer.test", "GEN", name="Dana")


def test_medium_ticket_on_the_generic_desk(desk, dana):
    # 48 h of 9-hour days from Monday 10:00: Monday 8 h, Tuesday-Friday 36 h = 44 h by Friday
    # 18:00, then 4 h on the next Monday -> Monday 8 February 13:00. First response: 1 h.
    ticket = open_ticket(desk, "GEN", dana, MONDAY_10, "medium")
    assert ticket.due_resolution == at("2027-02-08 13:00")
    assert ticket.due_first_response == at("2027-02-01 11:00")


def test_mail_on_saturday_night_counts_from_monday_morning(desk, dana):
    # Accepted 24x7, counted from the next opening: Monday 09:00 + 4 h, + 1 h for the answer.
    ticket = open_ticket(desk, "GEN", dana, at("2027-02-06 23:00"), "critical")
    assert ticket.due_resolution == at("2027-02-08 13:00")
    assert ticket.due_first_response == at("2027-02-08 10:00")


def test_produsoft_hours_with_lunch_break_in_brussels(desk):
    # High (24 h) from Thursday 16:00 Brussels: Thursday 1 h; Friday 4 h + 3 h = 7 h (8 h);
    # Monday 4 h + 4 h (16 h); Tuesday 8 h -> Tuesday 9 February 17:00 Brussels.
    customer = person("jan@klant.test", "VISI")
    ticket = open_ticket(desk, "VISI", customer, at("2027-02-04 16:00", "Europe/Brussels"), "high")
    assert ticket.due_resolution == at("2027-02-09 17:00", "Europe/Brussels")
    assert ticket.due_first_response == at("2027-02-04 17:00", "Europe/Brussels")


def test_bas_ip_first_response_over_the_weekend(desk):
    # 5 minutes from Friday 21:58 GMT: 2 minutes on Friday, 3 on Monday from 06:00.
    partner = person("install@partner.test", "BASIP")
    ticket = open_ticket(desk, "BASIP", partner, at("2027-02-05 21:58"), "high")
    assert ticket.due_first_response == at("2027-02-08 06:03")
    # 5 h: 2 min on Friday, 4 h 58 min on Monday -> 10:58.
    assert ticket.due_resolution == at("2027-02-08 10:58")


def test_a_priority_change_moves_the_deadline(desk, dana):
    ticket = open_ticket(desk, "GEN", dana, MONDAY_10, "medium")
    tickets.set_field(ticket, "priority", "critical", "erin@desk.test", at("2027-02-01 10:30"))
    assert refresh_deadlines(ticket, desk.settings.product("GEN"), at("2027-02-01 10:30"))
    assert ticket.due_resolution == at("2027-02-01 14:00")  # 4 h from the opening
    stored = type(ticket).get_by_id(ticket.id)
    assert stored.due_resolution == at("2027-02-01 14:00")


def test_waiting_for_the_customer_stops_the_clock(desk, dana):
    gen = desk.settings.product("GEN")
    ticket = open_ticket(desk, "GEN", dana, MONDAY_10, "critical")
    assert ticket.due_resolution == at("2027-02-01 14:00")
    # The engineer asks for information at 11:00 (1 h used, 3 h left).
    answer(desk, ticket, at("2027-02-01 11:00"), status="waiting")
    # While it waits, the due time is "if the customer answered now": 15:00 + 3 h = 18:00.
    refresh_deadlines(ticket, gen, at("2027-02-01 15:00"))
    assert ticket.due_resolution == at("2027-02-01 18:00")
    # The customer answers on Tuesday at 10:00: 3 h from then -> 13:00.
    change_status(desk, ticket, "open", at("2027-02-02 10:00"), "dana@customer.test")
    assert ticket.due_resolution == at("2027-02-02 13:00")
    # The first response was given: its due time stays what it was.
    assert ticket.due_first_response == at("2027-02-01 11:00")
    [pause] = pauses_of(ticket)
    assert (pause.start, pause.end) == (at("2027-02-01 11:00"), at("2027-02-02 10:00"))


def test_days_spent_resolved_do_not_count_when_the_customer_reopens(desk, dana):
    ticket = open_ticket(desk, "GEN", dana, MONDAY_10, "critical")
    answer(desk, ticket, at("2027-02-01 10:30"))
    change_status(desk, ticket, "resolved", at("2027-02-01 12:00"))  # 2 h used
    change_status(desk, ticket, "open", at("2027-02-03 10:00"), "dana@customer.test")
    # 2 h left from Wednesday 10:00 -> 12:00.
    assert ticket.due_resolution == at("2027-02-03 12:00")


def test_refresh_is_idempotent(desk, dana):
    ticket = open_ticket(desk, "GEN", dana, MONDAY_10, "high")
    gen = desk.settings.product("GEN")
    assert refresh_deadlines(ticket, gen, at("2027-02-01 12:00")) is False
    assert refresh_deadlines(ticket, gen, at("2027-02-01 12:00")) is False


def test_state_says_how_much_is_used_and_when_it_is_breached(desk, dana):
    gen = desk.settings.product("GEN")
    ticket = open_ticket(desk, "GEN", dana, MONDAY_10, "critical")
    # At 13:12, 3.2 of the 4 hours are used: 80 %. The 1-hour first response is long gone.
    state = sla_state(ticket, gen, at("2027-02-01 13:12"))
    assert state.resolution.share == pytest.approx(0.8)
    assert not state.resolution.breached
    assert state.first_response.breached and state.first_response.share == pytest.approx(3.2)
    assert sla_state(ticket, gen, at("2027-02-01 14:00")).resolution.breached
    # Answered at 11:00 exactly: just in time, and it stays so.
    answer(desk, ticket, at("2027-02-01 11:00"))
    first = sla_state(ticket, gen, at("2027-02-03 09:00")).first_response
    assert not first.running and not first.breached and first.used == H
