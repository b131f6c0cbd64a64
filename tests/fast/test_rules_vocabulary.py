"""One vocabulary (`mailbot.vocabulary`): a value outside it is refused when it is written, the
templates on disk are exactly the Template members, and a ticket's flags are rows a mail or a
person sets, shown in listings and mails and used to filter."""

from __future__ import annotations

import pytest

from mailbot.context import TEMPLATE_DIR
from mailbot.desk import accounts, tickets, views
from mailbot.outgoing import render
from mailbot.store import statements
from mailbot.store.models import Account, Grant, Seen, Ticket, TicketFlag
from mailbot.vocabulary import Category, Flag, Language, Priority, Role, Status, Template, values
from tests.fast.people import CARLA, CHRIS, ERIN, open_ticket


def test_a_status_outside_the_vocabulary_is_refused_when_written(desk):
    open_ticket(desk)
    ticket = desk.ticket("GEN-1")
    ticket.status = "bogus"
    with pytest.raises(ValueError) as refused:
        statements.save(ticket)  # the hot path's named statement
    assert str(refused.value) == "ticket.status: 'bogus' is not one of new, open, waiting, resolved, closed"
    with pytest.raises(ValueError, match="ticket.status: 'bogus'"):
        ticket.save()  # peewee's own save
    assert desk.ticket("GEN-1").status == Status.NEW, "nothing was written"


@pytest.mark.parametrize(
    ("model", "column", "value"),
    [
        (Ticket, "priority", "urgent"),
        (Ticket, "category", "feature"),
        (Account, "language", "de"),
        (Grant, "role", "watcher"),  # a watcher is one per ticket, never a grant
        (Seen, "outcome", "lost"),
        (TicketFlag, "flag", "vip"),
    ],
)
def test_every_vocabulary_column_checks_its_values(desk, model, column, value):
    with pytest.raises(ValueError, match=f"{model._meta.table_name}.{column}: '{value}' is not one of"):
        getattr(model, column).db_value(value)


def test_a_known_value_reads_back_as_its_member_and_equals_its_string(desk):
    open_ticket(desk)
    ticket = desk.ticket("GEN-1")
    assert ticket.status is Status.NEW and ticket.status == "new"
    assert Account.get(Account.email == CARLA).language is Language.EN


def test_a_grant_role_outside_the_vocabulary_is_one_clear_error(desk):
    with pytest.raises(accounts.AccountError, match="expected one of customer, engineer, board"):
        accounts.grant(Account.get(Account.email == CARLA), "GEN", "watcher")


def test_the_templates_on_disk_are_exactly_the_template_members():
    for language in values(Language):
        files = (TEMPLATE_DIR / language).glob("*.txt")
        names = {path.stem for path in files if not path.stem.startswith("_")}
        assert names == set(values(Template)), language


@pytest.mark.parametrize("language", values(Language))
def test_every_value_a_mail_shows_has_a_word_in_every_language(language):
    words = render.names(language)
    for kind, enum in (("status", Status), ("priority", Priority), ("category", Category), ("flag", Flag)):
        assert set(values(enum)) <= set(words[kind]), (language, kind)
    assert set(values(Role)) <= set(words["role"]), language


def test_what_a_template_is_decides_how_its_mail_goes_out(desk):
    # A person's words are relayed as they are; mailbot's own mails are marked automatic.
    assert Template.REPLY.auto_submitted == ""
    assert Template.TICKET_OPENED.auto_submitted == "auto-replied"
    assert Template.STATUS_CHANGED.auto_submitted == "auto-generated"
    # An answer about a mail that changed nothing is not part of the ticket's conversation.
    open_ticket(desk)
    desk.send(CARLA, "GEN", "[GEN-1] Re: Printer on fire", "#bogus\n\nStill burning.")
    assert desk.inbox(CARLA)[-1].template == Template.COMMAND_ERROR
    kinds = [m.kind for m in desk.ticket("GEN-1").messages if m.direction == "out"]
    assert Template.COMMAND_ERROR not in kinds and Template.TICKET_OPENED in kinds


def test_a_flag_set_by_mail_is_listed_shown_in_mail_and_filterable(make_desk):
    desk = make_desk(PRODUCT_GEN_CONTRACT_REQUIRED="true", PRODUCT_GEN_CONTRACT_POLICY="flag")
    accounts.upsert_account(accounts.AccountSpec(CHRIS, contract_until=_next_year(desk)))
    desk.send(CARLA, "GEN", "Printer", "No contract.")  # expired: opened, flagged
    desk.send(CHRIS, "GEN", "Scanner", "A contract until next year.")
    assert views.ticket_summary(desk.ticket("GEN-1"))["flags"] == ["contract_expired"]
    assert views.ticket_summary(desk.ticket("GEN-2"))["flags"] == []
    flagged = Ticket.select().where(tickets.flagged(Flag.CONTRACT_EXPIRED))
    assert [t.reference for t in flagged] == ["GEN-1"]
    assert [t.reference for t in Ticket.select().where(~tickets.flagged(Flag.CONTRACT_EXPIRED))] == ["GEN-2"]
    [first, second] = [m for m in desk.inbox(ERIN) if m.template == "new_ticket"]
    assert "maintenance contract has expired" in first.text
    assert "maintenance contract has expired" not in second.text


def test_a_flag_is_set_once_and_can_be_taken_off(desk):
    open_ticket(desk)
    ticket = desk.ticket("GEN-1")
    assert tickets.add_flag(ticket, Flag.NO_CREDIT) and not tickets.add_flag(ticket, "no_credit")
    assert tickets.flags_of(ticket) == [Flag.NO_CREDIT]
    assert TicketFlag.select().count() == 1
    assert tickets.remove_flag(ticket, Flag.NO_CREDIT) and not tickets.remove_flag(ticket, Flag.NO_CREDIT)
    assert tickets.flags_of(ticket) == []
    with pytest.raises(ValueError, match="ticket_flag.flag: 'vip' is not one of"):
        tickets.add_flag(ticket, "vip")


def _next_year(desk):
    today = desk.clock().date()
    return today.replace(year=today.year + 1)
