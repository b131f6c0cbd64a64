"""Who gets which mail when a ticket opens, and what every mail we send carries."""

from __future__ import annotations

from mailbot.desk.tickets import watchers_of
from tests.fast.people import CARLA, CHRIS, EDDIE, ERIN, VERA, VICTOR, open_ticket
from tests.helpers.desks import MailDesk, person

BOARD = "bob.board@produsoft.test"


def test_a_new_ticket_acknowledges_the_customer_and_tells_each_engineer_once(desk: MailDesk):
    open_ticket(desk)
    assert [m.template for m in desk.inbox(CARLA)] == ["ticket_opened"]
    assert [m.template for m in desk.inbox(ERIN)] == ["new_ticket"]
    assert [m.template for m in desk.inbox(EDDIE)] == ["new_ticket"]
    assert desk.inbox(VICTOR) == [], "another product's engineers hear nothing"
    assert len(desk.delivered) == 3


def test_a_product_with_a_board_sends_new_tickets_to_the_board_only(desk: MailDesk):
    person(BOARD, "VISI", "board", name="Bob Board")
    desk.send(VERA, "VISI", "Licence expired", "Please renew.")
    assert [m.template for m in desk.inbox(BOARD)] == ["new_ticket"]
    assert desk.inbox(VICTOR) == []


def test_every_mail_comes_from_the_product_address_with_the_reference(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "#status resolved\n\nFixed.")
    for mail in desk.delivered:
        assert "support@generic.test" in str(mail.message["From"])
        assert "[GEN-1]" in mail.subject
        assert mail.message["Message-ID"].endswith("@mailbot.test>")


def test_automatic_mail_is_marked_and_a_relayed_answer_is_not(desk: MailDesk):
    new = open_ticket(desk)
    ack = desk.last_to(CARLA)
    assert ack.message["Auto-Submitted"] == "auto-replied"
    desk.reply(ERIN, "GEN", new, "Looking into it.")
    answer = desk.last_to(CARLA)
    assert answer.template == "reply" and answer.message["Auto-Submitted"] is None


def test_the_answer_threads_in_the_customers_client(desk: MailDesk):
    new = open_ticket(desk)
    ack = desk.last_to(CARLA)
    desk.reply(ERIN, "GEN", new, "Looking into it.")
    answer = desk.last_to(CARLA)
    assert ack.message["Message-ID"] in (answer.message["In-Reply-To"], answer.message["References"])


def test_only_cc_addresses_with_access_become_watchers(desk: MailDesk):
    desk.send(CARLA, "GEN", "Printer on fire", "It burns.", cc=f"{CHRIS}, {VERA}")
    assert [a.email for a in watchers_of(desk.ticket("GEN-1"))] == [CHRIS]


def test_a_customer_reply_goes_to_the_engineers_and_not_back_to_the_customer(desk: MailDesk):
    open_ticket(desk)
    ack = desk.last_to(CARLA)
    desk.clear()
    desk.reply(CARLA, "GEN", ack, "A photo of the fire follows.")
    assert desk.inbox(CARLA) == []
    assert [m.template for m in desk.inbox(ERIN)] == ["customer_reply"]
    assert [m.template for m in desk.inbox(EDDIE)] == ["customer_reply"]
