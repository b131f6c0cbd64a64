"""Who hears of a missed deadline: the board, the ticket's assignee beside them, and the second
line; never the customers or the other engineers (`mailbot.desk.recipients.board`)."""

from __future__ import annotations

from collections import Counter

from mailbot.desk.jobs import sla_sweep
from tests.fast.people import CARLA, CHRIS, EDDIE, ERIN
from tests.helpers.desks import MailDesk, person

BOB = "bob@desk.test"
SECOND = "second-line@generic.test"  # GEN's escalation address


def test_a_breach_reaches_the_board_the_assignee_and_the_second_line(desk: MailDesk, clock):
    person(BOB, "GEN", "board", name="Bob Board")
    desk.send(f"Carla Customer <{CARLA}>", "GEN", "Printer on fire", "It burns.", cc=CHRIS)
    desk.reply(BOB, "GEN", desk.last_to(BOB), f"#assign {ERIN}")  # no text: not an answer
    desk.clear()

    clock.advance(days=14)
    assert sla_sweep(desk.desk, clock()) > 0
    desk.drain()

    breaches = {m.recipients[0] for m in desk.delivered if m.template == "sla_breach"}
    assert breaches == {BOB, ERIN, SECOND}
    assert desk.inbox(EDDIE) == [] and desk.inbox(CARLA) == [] and desk.inbox(CHRIS) == []


def test_without_a_board_the_engineers_hear_of_a_breach_and_the_assignee_once(desk: MailDesk, clock):
    desk.send(f"Carla Customer <{CARLA}>", "GEN", "Printer on fire", "It burns.")
    desk.reply(ERIN, "GEN", desk.last_to(ERIN), f"#assign {ERIN}")
    desk.clear()

    clock.advance(days=14)
    sla_sweep(desk.desk, clock())
    desk.drain()

    # Two deadlines missed (first response, resolution): two mails each, the assignee's not doubled.
    breaches = Counter(m.recipients[0] for m in desk.delivered if m.template == "sla_breach")
    assert breaches == {EDDIE: 2, ERIN: 2, SECOND: 2}
