"""Prepaid time as Alias sells it, by mail: bug time given back, the remaining credit in the
mails that mention time, and the customer and the engineer told once when the credit runs out.
One engineer mail is still one mail to the customer."""

from __future__ import annotations

import pytest

from mailbot.desk import credit
from mailbot.store.models import Account, CreditEntry, Event
from tests.fast.people import CARLA, ERIN, open_ticket
from tests.helpers.desks import Delivered, MailDesk, person

CLAIRE = "claire@atelier.test"  # an Alias customer with prepaid credit, in French
MARC = "marc@alias.test"  # an Alias engineer


@pytest.fixture
def alias(desk: MailDesk) -> MailDesk:
    person(CLAIRE, "ALIAS", name="Claire", language="fr")
    person(MARC, "ALIAS", "engineer", name="Marc")
    return desk


def with_credit(desk: MailDesk, minutes: int) -> Delivered:
    """Claire holds `minutes` of credit and opens ALIAS-1; returns Marc's new-ticket mail."""
    credit.add_credit(Account.get(Account.email == CLAIRE), minutes, desk.clock())
    desk.send(CLAIRE, "ALIAS", "Rendu bloqué", "Le rendu s'arrête à 50 %.")
    return desk.last_to(MARC)


def balance() -> int:
    return Account.get(Account.email == CLAIRE).credit_minutes


def test_the_reply_that_records_time_shows_the_remaining_credit(alias: MailDesk):
    new = with_credit(alias, 120)
    alias.clear()
    alias.reply(MARC, "ALIAS", new, "#time 45m\n\nJe regarde le journal.")
    [mail] = alias.inbox(CLAIRE)
    assert mail.template == "reply"
    assert "Temps saisi sur cette demande : 45 min." in mail.text
    assert "Votre crédit de support restant : 75 min." in mail.text
    assert balance() == 75


def test_a_ticket_that_becomes_a_bug_gives_back_the_time_already_charged_in_the_one_reply(alias: MailDesk):
    new = with_credit(alias, 120)
    alias.reply(MARC, "ALIAS", new, "#time 45m\n\nJe regarde.")
    alias.reply(MARC, "ALIAS", new, "#time 30m\n\nToujours en cours.")
    assert balance() == 45
    alias.clear()
    alias.reply(MARC, "ALIAS", new, "#category bug\n\nC'est un bug confirmé, corrigé dans la 5.2.")
    [mail] = alias.inbox(CLAIRE)
    assert mail.template == "reply"
    assert "les 1 h 15 min déjà déduites de votre crédit vous ont été rendues" in mail.text
    assert "Votre crédit de support restant : 120 min." in mail.text
    assert balance() == 120
    ticket = alias.ticket("ALIAS-1")
    [event] = Event.select().where((Event.ticket == ticket) & (Event.kind == "credit_refund"))
    assert event.new == "75" and event.actor_email == MARC
    # Back to a question and a bug again: nothing is given back twice.
    alias.reply(MARC, "ALIAS", new, "#category question")
    alias.reply(MARC, "ALIAS", new, "#category bug")
    assert balance() == 120
    assert CreditEntry.select().where(CreditEntry.kind == "refund").count() == 1


def test_bug_without_text_sends_the_credit_mail_alone(alias: MailDesk):
    new = with_credit(alias, 120)
    alias.reply(MARC, "ALIAS", new, "#time 30m\n\nJe regarde.")
    alias.clear()
    alias.reply(MARC, "ALIAS", new, "#category bug")
    [mail] = alias.inbox(CLAIRE)
    assert mail.template == "credit_refunded"
    assert "bug logiciel confirmé" in mail.text and "120 min" in mail.text
    assert alias.inbox(MARC) == []


def test_bug_time_recorded_in_the_same_mail_is_not_charged(alias: MailDesk):
    new = with_credit(alias, 120)
    alias.clear()
    alias.reply(MARC, "ALIAS", new, "#category bug\n#time 1h\n\nReproduit, c'est un bug.")
    [mail] = alias.inbox(CLAIRE)
    assert balance() == 120
    assert "Temps saisi sur cette demande : 1 h." in mail.text
    assert "rendues" not in mail.text, "nothing had been charged, nothing is given back"


def test_credit_running_out_is_told_once_to_the_customer_and_the_engineer(alias: MailDesk):
    new = with_credit(alias, 30)
    alias.clear()
    alias.reply(MARC, "ALIAS", new, "#time 45m\n\nJ'ai trouvé la cause.")
    [to_claire] = alias.inbox(CLAIRE)
    assert to_claire.template == "reply", "one engineer mail, one mail to the customer"
    assert "Votre crédit de support prépayé est maintenant épuisé" in to_claire.text
    [to_marc] = alias.inbox(MARC)
    assert to_marc.template == "credit_exhausted"
    assert "claire@atelier.test" in to_marc.text and "used up" in to_marc.text
    assert balance() == 0
    alias.clear()
    alias.reply(MARC, "ALIAS", new, "#time 15m\n\nCorrectif en test.")
    [again] = alias.inbox(CLAIRE)
    assert "épuisé" not in again.text and "Votre crédit de support restant : 0 min." in again.text
    assert alias.inbox(MARC) == []
    told = [m for m in alias.delivered if m.template == "credit_exhausted"]
    assert told == []  # the transport was cleared: none since the first


def test_credit_running_out_without_text_is_its_own_mail(alias: MailDesk):
    new = with_credit(alias, 15)
    alias.clear()
    alias.reply(MARC, "ALIAS", new, "#time 30m")
    assert [m.template for m in alias.inbox(CLAIRE)] == ["credit_exhausted"]
    assert "épuisé" in alias.inbox(CLAIRE)[0].text
    assert [m.template for m in alias.inbox(MARC)] == ["credit_exhausted"]


def test_running_low_is_said_in_the_reply_not_in_a_second_mail(alias: MailDesk):
    new = with_credit(alias, 90)  # Alias warns below 60 minutes
    alias.clear()
    alias.reply(MARC, "ALIAS", new, "#time 45m\n\nJe regarde.")
    [mail] = alias.inbox(CLAIRE)
    assert mail.template == "reply"
    assert "Il est bientôt épuisé" in mail.text


def test_customers_without_prepaid_credit_read_nothing_about_credit(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#time 30m\n#category bug\n\nLooking into it.")
    [mail] = desk.inbox(CARLA)
    assert "credit" not in mail.text.lower() and "Time recorded" not in mail.text
