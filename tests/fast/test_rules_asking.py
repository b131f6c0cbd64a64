"""Customers who ask by mail: `#list` answers with their open tickets on the product, `#show REF`
with one ticket's public history. The answer goes to the sender alone, opens no ticket, and tells
nothing of a ticket the sender may not see, not even that it exists."""

from __future__ import annotations

import pytest

from mailbot.context import TEMPLATE_DIR
from mailbot.outgoing.render import Renderer
from mailbot.outgoing.template_check import sample_context
from mailbot.store.models import Account, Event, Message, Ticket
from tests.fast.people import CARLA, CHRIS, EDDIE, ERIN, STRANGER, VERA, VICTOR, open_ticket
from tests.helpers.desks import MailDesk, person
from tests.test_template_languages import sentences


def _html(mail) -> str:
    return mail.message.get_body(("html",)).get_content()


def _everyone(desk: MailDesk) -> dict[str, int]:
    return {who: len(desk.inbox(who)) for who in (CARLA, CHRIS, ERIN, EDDIE, VERA, VICTOR)}


def _three_tickets(desk: MailDesk) -> None:
    """Carla: GEN-1 (answered, with an internal note), GEN-2 (closed); Chris: GEN-3."""
    new = open_ticket(desk, "Printer on fire", "It burns since Monday.")
    desk.reply(ERIN, "GEN", new, "#internal\n\nCarla's printer is out of warranty.")
    desk.reply(ERIN, "GEN", new, "Please unplug it first.")
    second = open_ticket(desk, "Old question", "Where is the manual?")
    desk.reply(ERIN, "GEN", second, "#status closed\n\nOn page 3.")
    desk.send(f"Chris Customer <{CHRIS}>", "GEN", "Chris's secret plans", "Our merger is next week.")
    desk.clear()


def test_list_answers_the_sender_alone_with_their_open_tickets(desk: MailDesk):
    _three_tickets(desk)
    tickets_before = Ticket.select().count()
    desk.send(CARLA, "GEN", "my tickets", "#list")
    [answer] = desk.inbox(CARLA)
    assert answer.template == "query_answer"
    assert answer.message["To"].addresses[0].addr_spec == CARLA
    assert "GEN-1" in answer.text and "Printer on fire" in answer.text
    assert "In progress" in answer.text and "Medium" in answer.text
    assert "November 23, 2026" in answer.text  # the last change
    assert "GEN-2" not in answer.text  # closed
    assert "GEN-3" not in answer.text and "secret" not in answer.text  # Chris's
    assert "#ef6c00" in _html(answer)  # in progress: orange, as the policies colour it
    assert _everyone(desk) == {CARLA: 1, CHRIS: 0, ERIN: 0, EDDIE: 0, VERA: 0, VICTOR: 0}
    assert Ticket.select().count() == tickets_before


def test_list_includes_the_tickets_one_watches(desk: MailDesk):
    desk.send(f"Chris Customer <{CHRIS}>", "GEN", "Shared printer", "Jammed.", cc=CARLA)
    desk.clear()
    desk.send(CARLA, "GEN", "list", "#list")
    assert "Shared printer" in desk.last_to(CARLA).text


def test_show_answers_with_the_public_history_and_never_an_internal_note(desk: MailDesk):
    _three_tickets(desk)
    conversation = desk.ticket("GEN-1").messages.count()
    desk.send(CARLA, "GEN", "history", "#show GEN-1")
    [answer] = desk.inbox(CARLA)
    assert "It burns since Monday." in answer.text
    assert "Please unplug it first." in answer.text
    assert "Erin Engineer" in answer.text and ERIN not in answer.text  # the team signs by name
    assert "warranty" not in answer.text and "warranty" not in _html(answer)
    assert answer.subject == "[GEN-1] Printer on fire"
    assert _everyone(desk)[ERIN] == 0
    # Neither the question nor its answer joins the ticket's conversation.
    assert not Message.select().where(Message.text.contains("#show")).exists()
    assert desk.ticket("GEN-1").messages.count() == conversation


def test_show_of_another_customers_ticket_tells_nothing_of_it(desk: MailDesk):
    _three_tickets(desk)
    desk.send(CARLA, "GEN", "peek", "#show GEN-3")
    desk.send(CARLA, "GEN", "peek", "#show GEN-99")
    refused, missing = desk.inbox(CARLA)
    for mail in (refused, missing):
        assert "secret" not in mail.text and "merger" not in mail.text and CHRIS not in mail.text
        assert "secret" not in _html(mail)
    # Not even whether it exists: the two answers differ only in the reference asked for.
    assert refused.text.replace("GEN-3", "REF") == missing.text.replace("GEN-99", "REF")
    assert refused.subject.replace("GEN-3", "REF") == missing.subject.replace("GEN-99", "REF")
    assert _everyone(desk) == {CARLA: 2, CHRIS: 0, ERIN: 0, EDDIE: 0, VERA: 0, VICTOR: 0}


def test_the_team_sees_who_tried_to_read_a_ticket(desk: MailDesk):
    _three_tickets(desk)
    desk.send(CARLA, "GEN", "peek", "#show GEN-3")
    [event] = Event.select().where(Event.kind == "show_refused")
    assert (event.ticket.reference, event.actor_email) == ("GEN-3", CARLA)


def test_asking_again_and_again_is_answered_ten_times_an_hour(desk: MailDesk, clock):
    _three_tickets(desk)
    for number in range(12):
        desk.send(CARLA, "GEN", "guess", f"#show GEN-{number + 3}")
    assert len(desk.inbox(CARLA)) == 10
    clock.advance(hours=1)
    desk.send(CARLA, "GEN", "list", "#list")
    assert len(desk.inbox(CARLA)) == 11


def test_show_of_another_products_ticket_tells_nothing_of_it(desk: MailDesk):
    desk.send(f"Vera Visi <{VERA}>", "VISI", "VISI licence", "Our licence key is ABC-123.")
    desk.clear()
    desk.send(CARLA, "GEN", "peek", "#show VISI-1")
    [answer] = desk.inbox(CARLA)
    assert "ABC-123" not in answer.text and "licence" not in answer.text.lower()
    # Through the other product's own address: Carla has no access there at all.
    desk.send(CARLA, "VISI", "peek", "#show VISI-1")
    assert [m.template for m in desk.inbox(CARLA)] == ["query_answer", "refused"]
    assert "ABC-123" not in desk.last_to(CARLA).text
    assert _everyone(desk)[VERA] == 0 and _everyone(desk)[VICTOR] == 0
    assert Ticket.select().count() == 1


def test_an_engineer_may_show_any_ticket_of_their_product(desk: MailDesk):
    _three_tickets(desk)
    desk.send(EDDIE, "GEN", "look", "#show GEN-3")
    assert "Our merger is next week." in desk.last_to(EDDIE).text


def test_a_stranger_is_refused_and_no_ticket_is_opened(desk: MailDesk):
    _three_tickets(desk)
    desk.send(STRANGER, "GEN", "list", "#list")
    [answer] = desk.inbox(STRANGER)
    assert answer.template == "refused"
    assert Ticket.select().count() == 3


def test_a_stranger_on_an_open_product_hears_they_have_no_requests(make_desk):
    desk = make_desk(PRODUCT_GEN_UNKNOWN_SENDERS="open")
    _three_tickets(desk)
    desk.send(STRANGER, "GEN", "list", "#list")
    [answer] = desk.inbox(STRANGER)
    assert answer.template == "query_answer" and "You have no open requests" in answer.text
    assert Ticket.select().count() == 3
    assert not Account.select().where(Account.email == STRANGER).exists()


def test_a_robot_asking_gets_no_answer(desk: MailDesk):
    _three_tickets(desk)
    desk.send(CARLA, "GEN", "Automatic reply: list", "#list", headers={"Auto-Submitted": "auto-replied"})
    assert desk.inbox(CARLA) == []


def test_a_list_mentioned_below_the_text_is_an_ordinary_mail(desk: MailDesk):
    desk.send(CARLA, "GEN", "New problem", "The scanner is broken.\n#list")
    assert [m.template for m in desk.inbox(CARLA)] == ["ticket_opened"]


def test_the_answer_is_in_the_senders_language(desk: MailDesk):
    person("nora@customer.test", "GEN", name="Nora", language="nl")
    desk.send("nora@customer.test", "GEN", "Kapot", "De printer is kapot.")
    desk.clear()
    desk.send("nora@customer.test", "GEN", "lijst", "#list")
    assert "Uw openstaande aanvragen" in desk.last_to("nora@customer.test").text


RENDERER = Renderer(TEMPLATE_DIR)
PRODUCT = {"key": "DEMO", "name": "Demo", "address": "support@demo.example"}
VARIANTS = {
    "list": {"asked": "list"},
    "empty list": {"asked": "list", "tickets": []},
    "show": {"asked": "show", "found": True},
    "not found": {"asked": "show", "found": False},
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("language", ["nl", "fr"])
def test_every_answer_is_translated(variant, language):
    """Every branch of `query_answer` (the shared language test renders one), read for English."""
    context = {**sample_context(PRODUCT), **VARIANTS[variant]}
    english = RENDERER.render("query_answer", "en", "", context)
    other = RENDERER.render("query_answer", language, "", context)
    for part in ("text", "html"):
        found = sentences(getattr(english, part), context)
        assert found, f"{variant}: the English {part} has sentences"
        assert sorted(found & sentences(getattr(other, part), context)) == []
    assert sentences(english.subject, context).isdisjoint(sentences(other.subject, context))
