"""Commands that are wrong or not the sender's to give: nothing changes, and the sender (only)
gets one mail that says what is wrong and lists what is valid."""

from __future__ import annotations

from tests.fast.people import CARLA, EDDIE, ERIN, open_ticket
from tests.helpers.desks import MailDesk


def unchanged(desk: MailDesk) -> tuple[str, str, str]:
    ticket = desk.ticket("GEN-1")
    return ticket.status, ticket.priority, ticket.category


def test_an_unknown_command_changes_nothing_and_the_engineer_is_told(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#frobnicate now\n#status resolved\n\nDone.")
    assert unchanged(desk) == ("new", "medium", "question")
    [error] = desk.inbox(ERIN)
    assert error.template == "command_error"
    assert "#frobnicate" in error.text and "#status" in error.text
    assert desk.inbox(CARLA) == [], "the customer hears nothing of a reply that was not applied"


def test_a_status_that_does_not_exist_changes_nothing(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#status pending\n\nOn hold.")
    assert unchanged(desk) == ("new", "medium", "question")
    assert [m.template for m in desk.inbox(ERIN)] == ["command_error"]
    assert "resolved" in desk.last_to(ERIN).text  # the valid choices are listed


def test_a_command_given_twice_changes_nothing(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#priority high\n#priority low\n\nHm.")
    assert unchanged(desk) == ("new", "medium", "question")
    assert [m.template for m in desk.inbox(ERIN)] == ["command_error"]


def test_info_together_with_status_is_refused(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#info\n#status resolved\n\nWhich model?")
    assert unchanged(desk) == ("new", "medium", "question")
    assert desk.inbox(CARLA) == []


def test_assigning_to_someone_who_is_not_an_engineer_changes_nothing(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, f"#assign {CARLA}\n\nCarla takes it.")
    assert desk.ticket("GEN-1").assignee is None
    assert [m.template for m in desk.inbox(ERIN)] == ["command_error"]


def test_a_customer_may_not_set_the_status_but_their_text_is_kept(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "Looking into it.")
    answer = desk.last_to(CARLA)
    desk.clear()
    desk.reply(CARLA, "GEN", answer, "#status resolved\n\nIt works again.")
    assert desk.ticket("GEN-1").status == "open"
    [error] = desk.inbox(CARLA)
    assert error.template == "command_error" and "#close" in error.text
    texts = [m.text for m in desk.ticket("GEN-1").messages]
    assert any("It works again." in t for t in texts)


def test_a_customer_may_raise_the_priority_and_the_engineers_hear_of_it(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "Looking into it.")
    answer = desk.last_to(CARLA)
    desk.clear()
    desk.reply(CARLA, "GEN", answer, "#priority critical\n\nThe whole office is down now.")
    assert desk.ticket("GEN-1").priority == "critical"
    for engineer in (ERIN, EDDIE):
        [mail] = desk.inbox(engineer)
        assert "The whole office is down now." in mail.text and "Critical" in mail.text


def test_a_customer_closes_with_close_and_gets_the_confirmation(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "#status resolved\n\nFixed.")
    resolved = desk.last_to(CARLA)
    desk.clear()
    desk.reply(CARLA, "GEN", resolved, "#close")
    assert desk.ticket("GEN-1").status == "closed"
    assert [m.template for m in desk.inbox(CARLA)] == ["ticket_closed"]
