"""The named queries of the hot path (lookups by key, rows added and saved, the limits' counts, the
outbox's claim) store and read exactly what peewee's own public API would: aware datetimes,
dates, booleans, foreign keys, NULLs, quotes; and the peewee installed is one the fast path is
pinned to."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import peewee
import pytest
from packaging.requirements import Requirement
from playhouse.shortcuts import model_to_dict

from mailbot.store import migrations, statements
from mailbot.store.db import close_database, open_database
from mailbot.store.models import (
    Account,
    Grant,
    MailboxState,
    Message,
    Outbox,
    ProductCounter,
    Seen,
    Ticket,
    Watcher,
)


@pytest.fixture(params=["prepared", "peewee"])
def db(request, database_url, monkeypatch):
    """Both paths: the prepared statements, and peewee's own (other databases than SQLite), on
    each engine (PostgreSQL always takes peewee's path, so there the two runs are the same)."""
    if request.param == "peewee":
        monkeypatch.setattr(statements, "prepared", lambda model: False)
    database = open_database(database_url)
    migrations.migrate(database)
    yield database
    close_database()


def _ticket(requester: Account, **fields) -> Ticket:
    return statements.add(
        Ticket,
        product="ACME",
        number=1,
        reference="ACME-1",
        subject='say "hi"; --',
        requester=requester,
        **fields,
    )


def test_a_created_row_reads_back_the_same_through_peewee_and_through_a_key_lookup(db):
    at = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    account = Account.create(
        email="ann@example.com", name="Ann", contract_until=date(2027, 1, 31), undeliverable_since=at
    )
    ticket = _ticket(account, waiting_since=at)
    by_peewee = Ticket.select().where(Ticket.id == ticket.id).first()
    by_key = statements.ticket_by_reference("ACME", "ACME-1")
    for row in (by_peewee, by_key):
        assert row.id == ticket.id and row.subject == 'say "hi"; --'
        assert row.waiting_since == at and row.waiting_since.tzinfo is UTC
        assert row.requester.email == "ann@example.com"  # foreign key, loaded on use
        assert row.assignee is None and row.resolved_at is None
        assert row.priority == "medium"  # the field's default
    loaded = statements.account_by_email("ann@example.com")
    assert loaded.contract_until == date(2027, 1, 31) and loaded.undeliverable_since == at
    assert statements.grant_of(loaded, "ACME") is None


def test_a_saved_change_is_what_the_next_reader_sees(db):
    account = Account.create(email="ann@example.com")
    engineer = Account.create(email="eve@example.com")
    ticket = _ticket(account)
    ticket.assignee, ticket.status = engineer, "open"
    assert statements.save(ticket) == 1 and not ticket.is_dirty()
    ticket.status = "resolved"
    ticket.priority = "high"
    statements.save(ticket, only=[Ticket.status])  # only what is named is written
    row = Ticket.select().where(Ticket.id == ticket.id).dicts().first()
    assert row["assignee"] == engineer.id and row["status"] == "resolved" and row["priority"] == "medium"


def test_boolean_text_keys_and_misses(db):
    state = statements.add(
        MailboxState, mailbox="imap://support@example.com/INBOX", uidvalidity=7, last_uid=3
    )
    state.last_uid = 9
    statements.save(state)
    assert MailboxState.get(MailboxState.mailbox == state.mailbox).last_uid == 9
    row = statements.add(
        Outbox,
        message_id="<a@x>",
        product="ACME",
        template="t",
        recipient="r@x",
        envelope_from="p@x",
        data=b"mail",
        automatic=True,
    )
    assert statements.outbox_by_message_id("<a@x>").automatic is True
    assert statements.outbox_by_message_id("<a@x>", "ACME").data == b"mail"
    assert statements.outbox_by_message_id("<a@x>").id == row.id
    assert statements.outbox_by_message_id("<b@x>") is None


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


def test_the_installed_peewee_is_in_the_range_the_fast_path_is_pinned_to():
    """statements.py reads peewee internals (`__data__`, `_dirty`, `_meta`): pyproject.toml names
    the versions it works with, and the peewee installed must be one of them."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    pins = [Requirement(line) for line in pyproject["project"]["dependencies"]]
    (pin,) = [req for req in pins if req.name == "peewee"]
    assert pin.specifier and pin.specifier.contains(peewee.__version__), (pin, peewee.__version__)


def _same(found, public) -> None:
    """Both paths found the same row, field by field (or both found none)."""
    assert (found is None) == (public is None)
    if found is not None:
        assert type(found) is type(public) and not found.is_dirty()
        assert model_to_dict(found, recurse=False) == model_to_dict(public, recurse=False)


@pytest.fixture
def memory():
    database = open_database("sqlite:///:memory:")
    migrations.migrate(database)
    yield database
    close_database()


@pytest.mark.sqlite_only(
    "SQLite's named statements against peewee's SQL (PostgreSQL takes peewee's path: the tests above)"
)
def test_each_named_query_finds_the_rows_its_public_api_equivalent_finds(memory):
    at = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    ann = statements.add(Account, email="ann@example.com", undeliverable_since=at)
    eve = Account.create(email="eve@example.com")
    Grant.create(account=ann, product="ACME", role="customer")
    ProductCounter.create(product="ACME", last_number=4)
    ticket = statements.add(Ticket, product="ACME", number=4, reference="ACME-4", subject="s", requester=ann)
    Watcher.create(ticket=ticket, account=eve)
    Message.create(ticket=ticket, direction="out", message_id="<m@x>", created_at=at)
    Outbox.create(message_id="<m@x>", product="ACME", template="t", recipient="r@x", envelope_from="p@x")
    for uid in ("1", "2"):
        Seen.create(
            mailbox="INBOX", uidvalidity=7, uid=uid, product="ACME", message_id="<a@x>", sha256="ab",
            outcome="ticket", ticket=ticket, received_at=at,
        )  # fmt: skip
    cases = [
        (
            statements.seen_at("INBOX", 7, "2"),
            (Seen.mailbox == "INBOX") & (Seen.uidvalidity == 7) & (Seen.uid == "2"),
        ),
        (
            statements.seen_at("INBOX", 8, "2"),
            (Seen.mailbox == "INBOX") & (Seen.uidvalidity == 8) & (Seen.uid == "2"),
        ),
        (
            statements.seen_twin("ACME", "ab", "<a@x>"),
            (Seen.product == "ACME") & (Seen.sha256 == "ab") & (Seen.message_id == "<a@x>"),
        ),
        (statements.account_by_email("ann@example.com"), Account.email == "ann@example.com"),
        (statements.account_by_email("bob@example.com"), Account.email == "bob@example.com"),
        (statements.grant_of(ann, "ACME"), (Grant.account == ann) & (Grant.product == "ACME")),
        (statements.grant_of(eve, "ACME"), (Grant.account == eve) & (Grant.product == "ACME")),
        (statements.counter_of("ACME"), ProductCounter.product == "ACME"),
        (statements.ticket_by_number("ACME", 4), (Ticket.product == "ACME") & (Ticket.number == 4)),
        (
            statements.ticket_by_reference("ACME", "ACME-4"),
            (Ticket.product == "ACME") & (Ticket.reference == "ACME-4"),
        ),
        (
            statements.ticket_by_reference("VISI", "ACME-4"),
            (Ticket.product == "VISI") & (Ticket.reference == "ACME-4"),
        ),
        (statements.watcher_of(ticket, eve), (Watcher.ticket == ticket) & (Watcher.account == eve)),
        (statements.watcher_of(ticket, ann), (Watcher.ticket == ticket) & (Watcher.account == ann)),
        (statements.outbox_by_message_id("<m@x>"), Outbox.message_id == "<m@x>"),
        (
            statements.outbox_by_message_id("<m@x>", "VISI"),
            (Outbox.message_id == "<m@x>") & (Outbox.product == "VISI"),
        ),
        (
            statements.outgoing_message("<m@x>"),
            (Message.message_id == "<m@x>") & (Message.direction == "out"),
        ),
    ]
    for found, where in cases:
        _same(found, _public(where))
    assert sum(found is not None for found, _ in cases) == 10


def _public(where):
    model = _model_of(where)
    return model.get_or_none(where)


def _model_of(node):
    while not hasattr(node, "model"):
        node = node.lhs
    return node.model


@pytest.mark.sqlite_only(
    "SQLite's named statements against peewee's SQL (PostgreSQL takes peewee's path: the tests above)"
)
def test_rows_added_and_saved_by_name_are_the_rows_peewee_writes(memory):
    at = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    fields = {"message_id": "<x>", "product": "ACME", "template": "t", "recipient": "r@x"}
    fields |= {"envelope_from": "p@x", "created_at": at, "next_attempt_at": at}
    fast = statements.add(Outbox, **fields, data=b"mail", automatic=False, sent_at=at)
    slow = Outbox.create(**{**fields, "message_id": "<y>"}, data=b"mail", automatic=False, sent_at=at)
    assert fast.id and fast.id != slow.id and not fast.is_dirty()
    rows = {row["message_id"]: row for row in Outbox.select().dicts()}
    assert rows["<x>"] | {"id": 0, "message_id": ""} == rows["<y>"] | {"id": 0, "message_id": ""}
    fast.status, fast.last_error, fast.attempts = "dead", "gone", 3
    slow.status, slow.last_error, slow.attempts = "dead", "gone", 3
    assert statements.save(fast, only=[Outbox.status, Outbox.last_error]) == slow.save(
        only=[Outbox.status, Outbox.last_error]
    )
    state = statements.add(MailboxState, mailbox="INBOX", uidvalidity=7)  # a text key
    state.last_uid = 9
    assert statements.save(state) == 1
    rows = {row["message_id"]: row for row in Outbox.select().dicts()}
    assert rows["<x>"]["status"] == "dead" and rows["<x>"]["attempts"] == 0  # only what is named
    assert rows["<x>"] | {"id": 0, "message_id": ""} == rows["<y>"] | {"id": 0, "message_id": ""}
    assert MailboxState.get(MailboxState.mailbox == "INBOX").last_uid == 9
