"""The prepared statements behind lookups by key, row saves and the limits' counts store and read
exactly what peewee's own statements would: aware datetimes, dates, booleans, foreign keys, NULLs,
quotes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from mailbot.store import migrations, statements
from mailbot.store.db import close_database, open_database
from mailbot.store.models import Account, Grant, MailboxState, Outbox, Ticket


@pytest.fixture(params=["prepared", "peewee"])
def db(request, tmp_path, monkeypatch):
    """Both paths: the prepared statements, and peewee's own (other databases than SQLite)."""
    if request.param == "peewee":
        monkeypatch.setattr(statements, "prepared", lambda model: False)
    database = open_database(f"sqlite:///{tmp_path}/state.db")
    migrations.migrate(database)
    yield database
    close_database()


def _ticket(requester: Account, **fields) -> Ticket:
    return Ticket.create(
        product="ACME", number=1, reference="ACME-1", subject='say "hi"; --', requester=requester, **fields
    )


def test_a_created_row_reads_back_the_same_through_peewee_and_through_a_key_lookup(db):
    at = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    account = Account.create(
        email="ann@example.com", name="Ann", contract_until=date(2027, 1, 31), undeliverable_since=at
    )
    ticket = _ticket(account, waiting_since=at)
    by_peewee = Ticket.select().where(Ticket.id == ticket.id).first()
    by_key = Ticket.get_or_none((Ticket.reference == "ACME-1") & (Ticket.product == "ACME"))
    for row in (by_peewee, by_key):
        assert row.id == ticket.id and row.subject == 'say "hi"; --'
        assert row.waiting_since == at and row.waiting_since.tzinfo is UTC
        assert row.requester.email == "ann@example.com"  # foreign key, loaded on use
        assert row.assignee is None and row.resolved_at is None
        assert row.priority == "medium"  # the field's default
    loaded = Account.get(Account.email == "ann@example.com")
    assert loaded.contract_until == date(2027, 1, 31) and loaded.undeliverable_since == at
    assert Grant.get_or_none((Grant.account == loaded) & (Grant.product == "ACME")) is None


def test_a_saved_change_is_what_the_next_reader_sees(db):
    account = Account.create(email="ann@example.com")
    engineer = Account.create(email="eve@example.com")
    ticket = _ticket(account)
    ticket.assignee, ticket.status = engineer, "open"
    assert ticket.save() == 1 and not ticket.is_dirty()
    ticket.status = "resolved"
    ticket.priority = "high"
    ticket.save(only=[Ticket.status])  # only what is named is written
    row = Ticket.select().where(Ticket.id == ticket.id).dicts().first()
    assert row["assignee"] == engineer.id and row["status"] == "resolved" and row["priority"] == "medium"


def test_boolean_text_keys_and_misses(db):
    state = MailboxState.create(mailbox="imap://support@example.com/INBOX", uidvalidity=7, last_uid=3)
    state.last_uid = 9
    state.save()
    assert MailboxState.get(MailboxState.mailbox == state.mailbox).last_uid == 9
    row = Outbox.create(
        message_id="<a@x>",
        product="ACME",
        template="t",
        recipient="r@x",
        envelope_from="p@x",
        data=b"mail",
        automatic=True,
    )
    assert Outbox.get_or_none(Outbox.message_id == "<a@x>").automatic is True
    assert Outbox.get_or_none(row.id).data == b"mail"
    assert Outbox.get_or_none(Outbox.message_id == "<b@x>") is None
    with pytest.raises(Outbox.DoesNotExist):
        Outbox.get(Outbox.message_id == "<b@x>")
    # Not a simple key: peewee's own path answers.
    assert Outbox.get_or_none(Outbox.message_id != "<b@x>").id == row.id


def test_the_limits_count_rows_after_a_moment(db):
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    for hours, recipient in ((30, "ann@x"), (20, "ann@x"), (2, "ann@x"), (1, "bob@x")):
        Outbox.create(
            message_id=f"<{hours}@x>",
            product="ACME",
            template="t",
            recipient=recipient,
            envelope_from="p@x",
            data=b"",
            created_at=now - timedelta(hours=hours),
        )
    day = (Outbox.created_at, now - timedelta(days=1))
    assert statements.count_rows(Outbox, {Outbox.recipient: "ann@x", Outbox.product: "ACME"}, day) == 2
    assert statements.count_rows(Outbox, {Outbox.recipient: "ann@x", Outbox.automatic: True}, day) == 2
    assert statements.count_rows(Outbox, {Outbox.recipient: "eve@x"}, day) == 0


def test_an_outbox_row_is_claimed_once_until_its_claim_lapses(db):
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    row = Outbox.create(
        message_id="m@x",
        product="ACME",
        template="t",
        recipient="r@x",
        envelope_from="",
        created_at=now,
        next_attempt_at=now,
    )
    later = Outbox.create(
        message_id="n@x",
        product="ACME",
        template="t",
        recipient="r@x",
        envelope_from="",
        created_at=now,
        next_attempt_at=now + timedelta(minutes=5),
    )
    until = now + timedelta(minutes=5)
    assert statements.claim_row(Outbox, row.id, "host:1:a", until, now) is True
    assert statements.claim_row(Outbox, row.id, "host:2:b", until, now) is False  # held
    assert statements.claim_row(Outbox, later.id, "host:2:b", until, now) is False  # not due
    claimed = Outbox.get_by_id(row.id)
    assert (claimed.claimed_by, claimed.claimed_until, claimed.attempts) == ("host:1:a", until, 1)
    lapsed = until + timedelta(seconds=1)
    assert statements.claim_row(Outbox, row.id, "host:2:b", lapsed + timedelta(minutes=5), lapsed) is True
    assert Outbox.get_by_id(row.id).claimed_by == "host:2:b" and Outbox.get_by_id(row.id).attempts == 2
    Outbox.update(status="sent", claimed_until=None).where(Outbox.id == row.id).execute()
    assert statements.claim_row(Outbox, row.id, "host:3:c", lapsed + timedelta(minutes=5), lapsed) is False
