"""Who may open a ticket on which product, and who may write to which ticket. A refusal is
neutral (it confirms no reference), at most one a day, and nothing is attached to any ticket."""

from __future__ import annotations

from datetime import date

import pytest

from mailbot.desk import accounts, tickets
from mailbot.store.models import Account, Message, Ticket
from tests.fast.people import CARLA, CHRIS, EDDIE, ERIN, STRANGER, VERA, VICTOR, open_ticket
from tests.helpers.desks import MailDesk


def mails_in(desk: MailDesk, reference: str) -> int:
    return desk.ticket(reference).messages.where(Message.direction == "in").count()


def test_a_stranger_gets_one_neutral_refusal_a_day_and_no_ticket(desk: MailDesk):
    desk.send(STRANGER, "GEN", "Help", "Please.")
    desk.send(STRANGER, "GEN", "Help again", "Please!")
    assert Ticket.select().count() == 0
    assert [m.template for m in desk.inbox(STRANGER)] == ["refused"]
    desk.clock.advance(days=1, minutes=1)
    desk.send(STRANGER, "GEN", "Help, a day later", "Please!!")
    assert len(desk.inbox(STRANGER)) == 2
    assert desk.inbox(ERIN) == [], "the engineers are not bothered with refused mail"


def test_a_customer_of_another_product_is_refused_here(desk: MailDesk):
    desk.send(VERA, "GEN", "Printer", "Mine too.")
    assert Ticket.select().count() == 0
    assert [m.template for m in desk.inbox(VERA)] == ["refused"]


@pytest.mark.parametrize("outsider", [STRANGER, CHRIS, VERA, VICTOR])
def test_nobody_but_the_requester_watchers_and_its_engineers_may_write_to_a_ticket(
    desk: MailDesk, outsider: str
):
    open_ticket(desk)
    desk.clear()
    desk.send(outsider, "GEN", "Re: [GEN-1] Printer on fire", "Let me in.")
    assert mails_in(desk, "GEN-1") == 1, "nothing is attached"
    [refusal] = desk.inbox(outsider)
    assert refusal.template == "refused"
    assert "GEN-1" not in refusal.subject and "GEN-1" not in refusal.text, "the reference is not confirmed"
    assert desk.inbox(CARLA) == [] and desk.inbox(ERIN) == []


def test_an_engineer_of_another_product_cannot_act_on_a_ticket_by_its_message_id(desk: MailDesk):
    new = open_ticket(desk)
    desk.send(VICTOR, "GEN", "Re: hello", "#status closed", in_reply_to=str(new.message["Message-ID"]))
    assert desk.ticket("GEN-1").status == "new"


def test_every_engineer_of_the_product_may_answer(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(EDDIE, "GEN", new, "#priority low\n\nI take a look too.")
    assert desk.ticket("GEN-1").priority == "low"


def test_a_product_open_to_unknown_senders_opens_a_ticket_and_an_account(make_desk):
    desk = make_desk(PRODUCT_GEN_UNKNOWN_SENDERS="open")
    desk.send(f"Sam Someone <{STRANGER}>", "GEN", "Printer", "Hello.")
    assert desk.ticket("GEN-1").requester.email == STRANGER
    assert accounts.role_of(Account.get(Account.email == STRANGER), "GEN") == "customer"
    assert [m.template for m in desk.inbox(STRANGER)] == ["ticket_opened"]


def test_an_expired_contract_is_refused_where_one_is_required(make_desk):
    desk = make_desk(PRODUCT_GEN_CONTRACT_REQUIRED="true")
    accounts.upsert_account(accounts.AccountSpec(CHRIS, contract_until=date(2027, 1, 1)))
    desk.send(CARLA, "GEN", "Printer", "No contract.")
    desk.send(CHRIS, "GEN", "Scanner", "A contract until next year.")
    assert [t.requester.email for t in Ticket.select()] == [CHRIS]
    assert [m.template for m in desk.inbox(CARLA)] == ["refused"]


def test_a_flagged_contract_policy_accepts_and_flags(make_desk):
    desk = make_desk(PRODUCT_GEN_CONTRACT_REQUIRED="true", PRODUCT_GEN_CONTRACT_POLICY="flag")
    desk.send(CARLA, "GEN", "Printer", "No contract.")
    assert "contract_expired" in tickets.flags_of(desk.ticket("GEN-1"))
