"""Prepaid support time as Alias sells it: packages of 1, 2 or 5 hours, used in started
15-minute blocks from the moment a request is taken into work, nothing charged for a confirmed
bug, credit that expires; and the admin's `mailbot account credit`."""

from __future__ import annotations

import json
from datetime import date

import pytest
from click.testing import CliRunner

from mailbot.cli.main import AppState
from mailbot.cli.report import credit as credit_command
from mailbot.desk import credit, tickets
from mailbot.store import migrations
from mailbot.store.db import close_database, open_database
from mailbot.store.models import Account, CreditEntry, Event, Organisation, SchemaVersion, Ticket
from tests.helpers.desks import PRODUCTS, Clock, at, open_desk, open_ticket, outbox, person

MONDAY = at("2027-02-01 10:00", "Europe/Paris")
ENGINEER = "marc@alias.test"


@pytest.fixture
def clock():
    return Clock(MONDAY)


@pytest.fixture
def desk(tmp_path, clock):
    with open_desk(tmp_path, clock) as desk:
        person(ENGINEER, "ALIAS", "engineer", name="Marc")
        yield desk


@pytest.fixture
def claire(desk):
    return person("claire@atelier.test", "ALIAS", name="Claire", language="fr")


def ticket_for(desk, requester, subject="Rendu bloqué"):
    return open_ticket(desk, "ALIAS", requester, MONDAY, "medium", subject)


def test_time_is_charged_in_started_quarter_hours(desk, claire):
    credit.add_credit(claire, 120, MONDAY)  # a 2-hour package
    ticket = ticket_for(desk, claire)
    first = credit.charge_time(desk, ticket, ENGINEER, 45, MONDAY)  # three whole blocks
    second = credit.charge_time(desk, ticket, ENGINEER, 16, MONDAY)  # 16 min: two started blocks
    assert (first.minutes, first.charged, first.balance) == (45, 45, 75)
    assert (second.minutes, second.charged, second.balance) == (30, 30, 45)
    assert Ticket.get_by_id(ticket.id).time_spent == 75
    assert Account.get_by_id(claire.id).credit_minutes == 45
    [event, _] = Event.select().where((Event.ticket == ticket) & (Event.kind == "time"))
    assert event.new == "45" and event.actor_email == ENGINEER
    assert "45 min taken from the credit of claire@atelier.test (75 min left)" in event.detail


def test_a_confirmed_bug_is_recorded_but_not_charged(desk, claire):
    credit.add_credit(claire, 60, MONDAY)
    ticket = ticket_for(desk, claire)
    ticket.category = "bug"
    ticket.save()
    result = credit.charge_time(desk, ticket, ENGINEER, 50, MONDAY)
    assert (result.minutes, result.charged) == (60, 0)
    assert Account.get_by_id(claire.id).credit_minutes == 60
    assert Ticket.get_by_id(ticket.id).time_spent == 60
    event = Event.get((Event.ticket == ticket) & (Event.kind == "time"))
    assert "confirmed bug, not charged" in event.detail


def test_the_organisation_pays_first_then_the_account(desk):
    employee = person("paul@studio.test", "ALIAS", organisation="Studio Nord")
    studio = credit.get_or_create_organisation("Studio Nord")
    credit.add_credit(studio, 30, MONDAY)
    credit.add_credit(employee, 60, MONDAY)
    ticket = ticket_for(desk, employee)
    assert credit.charge_time(desk, ticket, ENGINEER, 20, MONDAY).holder == "organisation Studio Nord"
    # The organisation's 30 minutes are gone: the next entry is the account's.
    later = credit.charge_time(desk, ticket, ENGINEER, 15, MONDAY)
    assert (later.holder, later.charged, later.balance) == ("paul@studio.test", 15, 45)
    assert Organisation.get_by_id(studio.id).credit_minutes == 0


def test_expired_credit_is_not_used(desk, claire, clock):
    credit.add_credit(claire, 120, MONDAY, expires=date(2027, 1, 31))
    ticket = ticket_for(desk, claire)
    result = credit.charge_time(desk, ticket, ENGINEER, 30, MONDAY)
    assert (result.charged, result.uncovered, result.balance) == (0, 30, 0)
    assert "no credit left" in result.note
    kinds = [e.kind for e in CreditEntry.select().order_by(CreditEntry.id)]
    assert kinds == ["add", "expire", "time"]
    # The team sees on the ticket that there is nothing left to charge.
    assert "no_credit" in tickets.flags_of(ticket)
    # Valid through its last day: a package until 1 February still pays on 1 February.
    credit.add_credit(claire, 60, MONDAY, expires=date(2027, 2, 1))
    assert credit.charge_time(desk, ticket, ENGINEER, 15, MONDAY).charged == 15


def test_customer_is_told_once_when_credit_runs_low(desk, claire):
    credit.add_credit(claire, 90, MONDAY, expires=date(2028, 6, 30))
    ticket = ticket_for(desk, claire, "Licence réseau")
    assert not credit.charge_time(desk, ticket, ENGINEER, 15, MONDAY).credit_low_mailed  # 75 left
    assert credit.charge_time(desk, ticket, ENGINEER, 30, MONDAY).credit_low_mailed  # 45 < 60
    credit.charge_time(desk, ticket, ENGINEER, 15, MONDAY)  # 30 left: already told
    [mail] = outbox("credit_low")
    assert mail.recipient == "claire@atelier.test"
    assert "[ALIAS-1] Licence réseau" in mail.subject
    assert "45" in mail.text and "30 juin 2028" in mail.text, "the date as French writes it"


def test_customers_without_prepaid_credit_get_no_credit_mail_or_flag(desk):
    contract = person("anna@contract.test", "ALIAS")
    ticket = ticket_for(desk, contract)
    result = credit.charge_time(desk, ticket, ENGINEER, 30, MONDAY)
    assert (result.minutes, result.charged, result.uncovered) == (30, 0, 30)
    assert outbox("credit_low") == [] and tickets.flags_of(ticket) == []


@pytest.mark.sqlite_only("upgrade of a SQLite database at schema 1")
def test_version_1_database_is_upgraded_keeping_its_accounts(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/old.db")
    try:
        db.create_tables(migrations.MODELS[:12])  # the tables of schema version 1
        SchemaVersion.create(version=1)
        Account.create(email="old@customer.test", credit_minutes=300)
        assert migrations.migrate(db) == (1, migrations.LATEST)
        old = Account.get(Account.email == "old@customer.test")
        assert credit.credit_of(old, date(2027, 2, 1)).minutes == 300
        credit.add_credit(old, 60, MONDAY)
        assert CreditEntry.select().count() == 1 and Organisation.table_exists()
    finally:
        close_database()


# --- the admin's command ---------------------------------------------------------------------


@pytest.fixture
def admin(tmp_path):
    """`mailbot account credit` against a site of its own, through click."""
    env_file = tmp_path / "site.env"
    lines = [f"MAILBOT_DATA_DIR={tmp_path / 'site'}", "MAILBOT_PRODUCTS=ALIAS"]
    lines += [f"MAILBOT_PRODUCT_ALIAS_{k}={v}" for k, v in PRODUCTS["ALIAS"].items()]
    env_file.write_text("\n".join(lines) + "\n")
    app = AppState(env_file)
    app.open()
    person("claire@atelier.test", "ALIAS", organisation="Atelier")
    close_database()

    def run(*args: str, code: int = 0):
        try:
            result = CliRunner().invoke(credit_command, list(args), obj=AppState(env_file))
        finally:
            close_database()
        assert result.exit_code == code, result.output
        return result

    return run


def test_admin_adds_and_reads_credit(admin):
    admin("claire@atelier.test", "--add", "120", "--expires", "2028-12-31")
    admin("--organisation", "Atelier", "--add", "300")
    out = admin("claire@atelier.test").output
    assert "claire@atelier.test: 120 min, valid until 2028-12-31" in out
    assert "organisation Atelier: 300 min, no expiry" in out
    [mine, theirs] = json.loads(admin("claire@atelier.test", "--json").output)
    assert (mine["minutes"], mine["expires"], theirs["minutes"]) == (120, "2028-12-31", 300)
    assert mine["history"][0]["kind"] == "add" and mine["history"][0]["minutes"] == 120
    admin("claire@atelier.test", "--expires", "none")
    assert json.loads(admin("claire@atelier.test", "--json").output)[0]["expires"] is None


def test_admin_mistakes_are_named(admin):
    assert "either EMAIL or --organisation" in admin(code=2).output
    assert "expected YYYY-MM-DD" in admin("claire@atelier.test", "--expires", "soon", code=2).output
