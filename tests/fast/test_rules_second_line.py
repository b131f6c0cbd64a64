"""The second line: an engineer's `#escalate [text]` sends the ticket to the product's escalation
address, which may answer it by replying, without an account of its own; and the board's internal
note written with `#assign` reaches the new assignee."""

from __future__ import annotations

from mailbot.store.models import Message
from tests.fast.people import CARLA, EDDIE, ERIN, VERA, VICTOR, open_ticket
from tests.helpers.desks import MailDesk, person

SECOND = "second-line@generic.test"  # GEN's MAILBOT_PRODUCT_GEN_ESCALATION_ADDRESS


def _escalated(desk: MailDesk, body: str = "#escalate Firmware 2.3 crashes on boot") -> None:
    new = open_ticket(desk, "Door station reboots", "It reboots every hour.")
    desk.reply(ERIN, "GEN", new, body)


def test_escalate_sends_the_ticket_to_the_second_line_with_the_note(desk: MailDesk):
    _escalated(desk, "#escalate Firmware 2.3 crashes on boot\n\nWe passed this to our developers.")
    [mail] = desk.inbox(SECOND)
    assert mail.template == "escalated"
    assert "Firmware 2.3 crashes on boot" in mail.text
    assert "It reboots every hour." in mail.text  # the customer's own words
    assert "[GEN-1]" in mail.subject
    assert "In progress" in mail.text  # the ticket as the engineer's mail left it
    # The engineer's text below the commands goes to the customer as usual; the note does not.
    answer = desk.last_to(CARLA)
    assert answer.template == "reply" and "We passed this to our developers." in answer.text
    assert "Firmware" not in answer.text
    assert len(desk.inbox(CARLA)) == 2  # the acknowledgement, then the answer


def test_the_second_lines_answer_reaches_the_customer_like_an_engineers(desk: MailDesk):
    _escalated(desk)
    escalation = desk.last_to(SECOND)
    desk.clear()
    desk.reply(SECOND, "GEN", escalation, "Fixed in firmware 2.4, please update.")
    [answer] = desk.inbox(CARLA)
    assert answer.template == "reply" and "Fixed in firmware 2.4, please update." in answer.text
    assert desk.inbox(SECOND) == [] and desk.inbox(ERIN) == [] and desk.inbox(EDDIE) == []
    ticket = desk.ticket("GEN-1")
    assert ticket.status == "open" and ticket.first_response_at is not None
    stored = Message.select().where(Message.text.contains("firmware 2.4")).get()
    assert (stored.visibility, stored.author_email) == ("public", SECOND)


def test_the_second_line_may_not_answer_a_ticket_not_escalated_to_it(desk: MailDesk):
    _escalated(desk)
    escalation = desk.last_to(SECOND)
    other = open_ticket(desk, "Another thing", "Second problem.")
    desk.clear()
    desk.send(
        SECOND, "GEN", f"Re: {other.subject}", "Hello customer!", in_reply_to=str(other.message["Message-ID"])
    )
    assert desk.inbox(CARLA) == []
    assert not Message.select().where(Message.text.contains("Hello customer!")).exists()
    # ...nor, of course, on another product's ticket with the same escalation address in From.
    desk.send(f"Vera Visi <{VERA}>", "VISI", "VISI question", "Help.")
    desk.clear()
    desk.reply(SECOND, "VISI", escalation, "Wrong desk.")
    assert desk.inbox(VERA) == []


def test_the_second_lines_internal_note_reaches_the_team_and_never_the_customer(desk: MailDesk):
    _escalated(desk)
    escalation = desk.last_to(SECOND)
    desk.clear()
    desk.reply(SECOND, "GEN", escalation, "#internal\n\nThis is a known bug, customer should not know yet.")
    assert desk.inbox(CARLA) == []
    assert [m.template for m in desk.inbox(ERIN)] == ["internal_note"]
    assert "known bug" in desk.last_to(ERIN).text and "the second line" in desk.last_to(ERIN).text


def test_an_unverified_second_line_mail_is_kept_internal(make_desk):
    desk = make_desk(TRUSTED_AUTHSERV_ID="mx.generic.test")
    new = open_ticket(desk)
    desk.reply(
        ERIN, "GEN", new, "#escalate please look", headers={"Authentication-Results": _PASS % "desk.test"}
    )
    escalation = desk.last_to(SECOND)
    desk.clear()
    desk.reply(SECOND, "GEN", escalation, "Forged answer.")  # no Authentication-Results of ours
    assert desk.inbox(CARLA) == []
    assert [m.template for m in desk.inbox(SECOND)] == ["command_not_trusted"]
    desk.clear()
    desk.reply(
        SECOND, "GEN", escalation, "Real answer.", headers={"Authentication-Results": _PASS % "generic.test"}
    )
    assert "Real answer." in desk.last_to(CARLA).text


_PASS = "mx.generic.test; dmarc=pass header.from=%s"


def test_escalate_on_a_product_without_a_second_line_is_an_error(desk: MailDesk):
    desk.send(f"Vera Visi <{VERA}>", "VISI", "VISI question", "Help.")
    new = desk.last_to(VICTOR)
    desk.clear()
    desk.reply(VICTOR, "VISI", new, "#escalate\n\nPassed on.")
    [error] = desk.inbox(VICTOR)
    assert error.template == "command_error" and "no second line" in error.text
    assert desk.inbox(VERA) == []


def test_the_escalation_is_in_the_second_lines_language_else_the_products(make_desk):
    desk = make_desk(PRODUCT_GEN_LANGUAGE="fr")
    _escalated(desk)
    assert "vous transmet le ticket" in desk.last_to(SECOND).text
    person(SECOND, "OTHER", name="Developers", language="nl")  # an account, here for its language
    desk.reply(ERIN, "GEN", desk.last_to(ERIN), "#escalate once more")
    assert "geeft ticket" in desk.last_to(SECOND).text


def test_the_boards_internal_note_with_assign_reaches_the_new_assignee(desk: MailDesk):
    person("bob@desk.test", "GEN", "board", name="Bob Board")
    desk.send(f"Carla Customer <{CARLA}>", "GEN", "Printer on fire", "It burns.")
    assert desk.inbox(ERIN) == []  # a product with a board: the board triages
    board_mail = desk.last_to("bob@desk.test")
    desk.clear()
    desk.reply(
        "bob@desk.test", "GEN", board_mail, f"#assign {ERIN}\n#internal\n\nErin, this one is yours: VIP."
    )
    notes = [m for m in desk.inbox(ERIN) if m.template == "internal_note"]
    assert len(notes) == 1 and "this one is yours" in notes[0].text
    assert desk.inbox(CARLA) == [] and desk.inbox(EDDIE) == []
