"""What an engineer's reply does: the commands at its top change the ticket, and the customer
gets one mail carrying the text, every change and the status after them."""

from __future__ import annotations

from mailbot.store.models import Ticket
from tests.fast.people import CARLA, CHRIS, EDDIE, ERIN, open_ticket
from tests.helpers.desks import MailDesk


def test_one_reply_with_text_status_and_priority_is_one_mail_to_the_customer(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#status resolved\n#priority high\n\nThe fire is out.")
    mails = desk.inbox(CARLA)
    assert len(mails) == 1, [m.template for m in mails]
    assert "The fire is out." in mails[0].text
    assert "Priority: Medium → High" in mails[0].text
    assert "Status: New → Resolved" in mails[0].text
    assert "Current status: Resolved" in mails[0].text  # the status after the change
    ticket = desk.ticket("GEN-1")
    assert (ticket.status, ticket.priority) == ("resolved", "high")


def test_commands_without_text_are_one_mail_of_the_changes(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#status open\n#priority critical")
    mails = desk.inbox(CARLA)
    assert len(mails) == 1
    assert "Priority: Medium → Critical" in mails[0].text
    assert "Status: New → In progress" in mails[0].text  # "open", in the customer's words
    assert "November 23, 2026, 2:00" in mails[0].text  # critical: 4 business hours from 10:00


def test_a_plain_answer_to_a_new_ticket_takes_it_into_work(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "Looking into it.")
    ticket = desk.ticket("GEN-1")
    assert ticket.status == "open"
    assert ticket.first_response_at is not None
    [mail] = desk.inbox(CARLA)
    assert mail.template == "reply" and "Looking into it." in mail.text


def test_info_asks_the_customer_and_waits(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#info\n\nWhich printer model?")
    [mail] = desk.inbox(CARLA)
    assert mail.template == "info_requested" and "Which printer model?" in mail.text
    assert desk.ticket("GEN-1").status == "waiting"


def test_the_customer_answer_to_an_info_request_reopens_the_ticket(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "#info\n\nWhich printer model?")
    question = desk.last_to(CARLA)
    desk.clear()
    desk.reply(CARLA, "GEN", question, "An HP LaserJet 4.")
    assert desk.ticket("GEN-1").status == "open"
    assert [m.template for m in desk.inbox(ERIN)] == ["customer_reply"]
    assert desk.inbox(CARLA) == []


def test_an_internal_note_reaches_the_other_engineers_and_never_the_customer(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#internal\n\nCarla's printer is out of warranty.")
    assert desk.inbox(CARLA) == []
    assert desk.inbox(ERIN) == []
    [note] = desk.inbox(EDDIE)
    assert "out of warranty" in note.text


def test_assign_me_sends_the_customer_replies_to_the_assignee_only(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "#assign me\n\nMine.")
    assert desk.ticket("GEN-1").assignee.email == ERIN
    answer = desk.last_to(CARLA)
    desk.clear()
    desk.reply(CARLA, "GEN", answer, "Thanks, waiting.")
    assert len(desk.inbox(ERIN)) == 1
    assert desk.inbox(EDDIE) == []


def test_category_and_time_are_recorded(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "#category bug\n#time 20m\n\nA bug in the driver.")
    ticket = desk.ticket("GEN-1")
    assert ticket.category == "bug"
    assert ticket.time_spent == 30  # started 15-minute blocks


def test_a_hash_line_below_the_text_is_text_not_a_command(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "Please check the fuser.\n#priority low")
    assert desk.ticket("GEN-1").priority == "medium"
    assert "#priority low" in desk.last_to(CARLA).text


def test_a_watcher_in_cc_gets_the_engineers_reply(desk: MailDesk):
    desk.send(CARLA, "GEN", "Printer on fire", "It burns.", cc=CHRIS)
    new = desk.last_to(ERIN)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "On our way.")
    assert len(desk.inbox(CARLA)) == 1
    assert len(desk.inbox(CHRIS)) == 1


def test_an_engineer_may_answer_a_closed_ticket_without_opening_a_new_one(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "#status closed\n\nClosing.")
    desk.reply(ERIN, "GEN", new, "One more thing: the toner is on its way.")
    assert desk.ticket("GEN-1").status == "closed"
    assert desk.sources["GEN"].unacknowledged == []
    assert Ticket.select().count() == 1
