"""The statements every mail runs, by name, with their SQL built once per shape instead of once
per call; everything else in mailbot uses peewee's public API.

Peewee builds a statement's SQL from its expression tree on every call; for the short, fixed
statements ingest runs some twenty times a mail (a ledger or key lookup, a new row, a row saved,
a count) that cost several times what SQLite spends running them. The hot path (ingest, the desk,
the outbox) calls the named queries below instead. Their SQL is the same peewee would write: the
model's columns, `?` parameters, the values converted by the fields' own `db_value` and read back
with their `python_value`. On a database other than SQLite (`prepared` is False) each one takes
its public-API equivalent, which is also what tests/test_statements.py compares it with.

This is the one module that reads peewee internals (`Model.__data__`, `_dirty`, `_meta`): the
range of peewee versions it is known to work with is pinned in pyproject.toml and checked by
tests/test_statements.py.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache, reduce
from typing import Any, TypeVar

from peewee import Field, Model, PostgresqlDatabase, SqliteDatabase

from mailbot.store.models import (
    Account,
    Grant,
    Message,
    Outbox,
    ProductCounter,
    Seen,
    Ticket,
    TicketFlag,
    TicketLink,
    Watcher,
)

M = TypeVar("M", bound=Model)


def prepared(model: type[Model]) -> bool:
    """Whether `model`'s statements may run here: its database is SQLite."""
    return isinstance(model._meta.database.obj, SqliteDatabase)


# The named lookups: each is `Model.get_or_none` of `field == value` terms joined by AND.


def seen_at(mailbox: str, uidvalidity: int, uid: str) -> Seen | None:
    """The ledger row of a mail by its place in a mailbox."""
    return _first(Seen, {Seen.mailbox: mailbox, Seen.uidvalidity: uidvalidity, Seen.uid: uid})


def seen_twin(product: str, sha256: str, message_id: str) -> Seen | None:
    """The ledger row of the same mail (bytes and Message-ID) taken before in `product`."""
    return _first(Seen, {Seen.product: product, Seen.sha256: sha256, Seen.message_id: message_id})


def account_by_email(email: str) -> Account | None:
    """The account of an address, already lower-cased."""
    return _first(Account, {Account.email: email})


def grant_of(account: Account, product: str) -> Grant | None:
    return _first(Grant, {Grant.account: account, Grant.product: product})


def counter_of(product: str) -> ProductCounter | None:
    return _first(ProductCounter, {ProductCounter.product: product})


def ticket_by_number(product: str, number: int) -> Ticket | None:
    return _first(Ticket, {Ticket.product: product, Ticket.number: number})


def ticket_by_reference(product: str, reference: str) -> Ticket | None:
    return _first(Ticket, {Ticket.reference: reference, Ticket.product: product})


def related_references(ticket: Ticket) -> list[str]:
    """The references of the tickets linked to `ticket` (`mailbot.desk.links`), either way, in
    the order they were linked."""
    db, p = TicketLink._meta.database, TicketLink._meta.database.param
    sql = (
        'SELECT t."reference" FROM "ticket_link" AS l JOIN "ticket" AS t ON t."id" = CASE WHEN '
        f'l."ticket_id" = {p} THEN l."other_id" ELSE l."ticket_id" END '
        f'WHERE l."ticket_id" = {p} OR l."other_id" = {p} ORDER BY l."id"'
    )  # read for every mail queued about a ticket: one statement, no rows made into models
    found = [reference for (reference,) in db.execute_sql(sql, [ticket.id] * 3).fetchall()]
    return list(dict.fromkeys(found))


def merged_into_id(ticket_id: int) -> int | None:
    """The id of the ticket `ticket_id` was merged into, or None: asked for every reply."""
    db = TicketLink._meta.database
    sql = f'SELECT "other_id" FROM "ticket_link" WHERE "ticket_id" = {db.param} AND "kind" = {db.param}'
    row = db.execute_sql(sql, [ticket_id, "merged"]).fetchone()
    return None if row is None else int(row[0])


def watcher_of(ticket: Ticket, account: Account) -> Watcher | None:
    return _first(Watcher, {Watcher.ticket: ticket, Watcher.account: account})


def outbox_by_message_id(message_id: str, product: str | None = None) -> Outbox | None:
    """The outbox row of a mail we sent, by its Message-ID (and of `product` when given)."""
    if product is None:
        return _first(Outbox, {Outbox.message_id: message_id})
    return _first(Outbox, {Outbox.message_id: message_id, Outbox.product: product})


def outgoing_message(message_id: str) -> Message | None:
    """The conversation's record of a mail we send, by its Message-ID."""
    return _first(Message, {Message.message_id: message_id, Message.direction: "out"})


def flags_of(ticket: Ticket) -> list[Any]:
    """A ticket's flags (`TicketFlag.flag` values) in the order they were set: read for every
    mail queued about the ticket (its context)."""
    if not prepared(TicketFlag):
        query = TicketFlag.select(TicketFlag.flag).where(TicketFlag.ticket == ticket).order_by(TicketFlag.id)
        return [row.flag for row in query]
    rows = TicketFlag._meta.database.execute_sql(_FLAGS_SQL, [ticket.id]).fetchall()
    return [TicketFlag.flag.python_value(value) for (value,) in rows]


_FLAGS_SQL = 'SELECT "flag" FROM "ticket_flag" WHERE "ticket_id" = ? ORDER BY "id"'


def take_number(product: str) -> int:
    """The next ticket number of `product` in one statement, for a server database where other
    daemons and commands write at the same time (SQLite's IMMEDIATE transactions already keep
    them apart): the row is created at 1 or counted up under its row lock."""
    query = (
        ProductCounter.insert(product=product, last_number=1)
        .on_conflict(
            conflict_target=[ProductCounter.product],
            update={ProductCounter.last_number: ProductCounter.last_number + 1},
        )
        .returning(ProductCounter.last_number)
    )
    return int(next(iter(query.tuples().execute()))[0])


# The rows written: `Model.create` and `instance.save` with the same arguments.


def add(model: type[M], **values: Any) -> M:
    """`model.create(**values)`: the new row, saved, with its key."""
    if not prepared(model):
        return model.create(**values)
    instance = model(**values)
    save(instance, force_insert=True)
    return instance


def save(instance: Model, force_insert: bool = False, only: Iterable[Any] | None = None) -> int:
    """`instance.save(force_insert, only)`: the number of rows written."""
    model = type(instance)
    if not prepared(model):
        return int(instance.save(force_insert=force_insert, only=only))
    meta = model._meta
    row: Any = instance  # its private attributes are not in peewee's stubs
    data = row.__data__.copy()
    if only is not None:
        data = row._prune_fields(data, only)
    row._populate_unsaved_relations(data)
    key_field, key = _key(model), row._pk
    if key is not None and not force_insert:
        data.pop(key_field.name, None)
        if not data:
            raise ValueError("no data to save!")
        rows = update_row(model, data, key)
    else:
        if meta.auto_increment and key is None:
            data.pop(key_field.name, None)
        rowid = insert_row(model, data)
        if meta.auto_increment or key is None:
            row._pk = rowid
            row._dirty.discard(key_field.name)
        rows = 1
    row._dirty -= set(data)
    return rows


def _key(model: type[Model]) -> Field:
    key = model._meta.primary_key
    assert key is not False, f"{model.__name__} has a composite key"  # none of mailbot's has
    field: Field = key
    return field


# The counts and the outbox's claim, and the SQL underneath.


def _first(model: type[M], equal: Mapping[Field, Any]) -> M | None:
    if not prepared(model):
        terms = [field == value for field, value in equal.items()]
        return model.get_or_none(reduce(operator.and_, terms))
    fields = tuple(equal)
    return first_row(model, fields, [field.db_value(value) for field, value in equal.items()])


def first_row(model: type[M], fields: tuple[Field, ...], values: list[Any]) -> M | None:
    """The first row whose `fields` equal `values` (already converted), as a clean instance."""
    columns = model._meta.sorted_fields
    row = model._meta.database.execute_sql(_select_sql(model, fields), [*values, 1]).fetchone()
    if row is None:
        return None
    data = {field.name: field.python_value(value) for field, value in zip(columns, row, strict=True)}
    instance: Any = model(__no_default__=1, **data)
    instance._dirty.clear()  # not in peewee's stubs
    return instance  # type: ignore[no-any-return]


def count_rows(model: type[Model], equal: Mapping[Any, Any], later: tuple[Field, Any]) -> int:
    """How many rows have the values of `equal` and a value of `later`'s field after its value
    (the limits' "how many in the last day")."""
    if not prepared(model):
        terms = [field == value for field, value in equal.items()]
        return model.select().where(reduce(operator.and_, terms, later[0] > later[1])).count()
    fields = tuple(equal)
    params = [field.db_value(value) for field, value in equal.items()]
    params.append(later[0].db_value(later[1]))
    row = model._meta.database.execute_sql(_count_sql(model, fields, later[0]), params).fetchone()
    return row[0]  # type: ignore[no-any-return]


def claim_row(model: type[Model], key: int, holder: str, until: datetime, now: datetime) -> bool:
    """The outbox's claim, run before every mail is sent: on row `key` of `model` (the outbox,
    with its columns claimed_by, claimed_until, attempts, status, next_attempt_at) set the
    holder and the claim's end and count one attempt, only while the row is pending, due by
    `now` and not claimed by anyone else (claimed_until empty or before `now`). True when this
    call changed the row: the caller, and no other process, sends it."""
    meta = model._meta
    f = meta.fields
    if not prepared(model):
        claimable = (
            (_key(model) == key)
            & (f["status"] == "pending")
            & (f["next_attempt_at"] <= now)
            & (f["claimed_until"].is_null() | (f["claimed_until"] < now))
        )
        if isinstance(meta.database.obj, PostgresqlDatabase):
            # Several daemons drain one outbox: a row another one is claiming right now is
            # skipped, not waited for (it will be that one's), and it is never claimed twice.
            claimable = _key(model).in_(
                model.select(_key(model)).where(claimable).for_update(skip_locked=True)
            )
        values = {f["claimed_by"]: holder, f["claimed_until"]: until, f["attempts"]: f["attempts"] + 1}
        return bool(model.update(values).where(claimable).execute())
    params = [
        holder,
        f["claimed_until"].db_value(until),
        _key(model).db_value(key),
        f["next_attempt_at"].db_value(now),
        f["claimed_until"].db_value(now),
    ]
    return bool(meta.database.execute_sql(_claim_sql(model), params).rowcount)


def insert_row(model: type[Model], data: dict[str, Any]) -> int:
    """Insert `data` (field name to Python value); returns SQLite's rowid of the new row."""
    fields = tuple(model._meta.fields[name] for name in data)
    params = [field.db_value(data[field.name]) for field in fields]
    return model._meta.database.execute_sql(_insert_sql(model, fields), params).lastrowid  # type: ignore[no-any-return]


def update_row(model: type[Model], data: dict[str, Any], key: Any) -> int:
    """Set `data` on the row whose primary key is `key`; returns the number of rows changed."""
    fields = tuple(model._meta.fields[name] for name in data)
    params = [field.db_value(data[field.name]) for field in fields]
    params.append(_key(model).db_value(key))
    return model._meta.database.execute_sql(_update_sql(model, fields), params).rowcount  # type: ignore[no-any-return]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@lru_cache(maxsize=256)
def _select_sql(model: type[Model], fields: tuple[Field, ...]) -> str:
    columns = ", ".join(_quoted(f.column_name) for f in model._meta.sorted_fields)
    where = " AND ".join(f"{_quoted(f.column_name)} = ?" for f in fields)
    return f"SELECT {columns} FROM {_quoted(model._meta.table_name)} WHERE {where} LIMIT ?"


@lru_cache(maxsize=256)
def _count_sql(model: type[Model], fields: tuple[Field, ...], later: Field) -> str:
    terms = [f"{_quoted(f.column_name)} = ?" for f in fields] + [f"{_quoted(later.column_name)} > ?"]
    return f"SELECT COUNT(*) FROM {_quoted(model._meta.table_name)} WHERE {' AND '.join(terms)}"


@lru_cache(maxsize=16)
def _claim_sql(model: type[Model]) -> str:
    table, key = _quoted(model._meta.table_name), _quoted(_key(model).column_name)
    return (
        f'UPDATE {table} SET "claimed_by" = ?, "claimed_until" = ?, "attempts" = "attempts" + 1 '
        f"""WHERE {key} = ? AND "status" = 'pending' AND "next_attempt_at" <= ? """
        'AND ("claimed_until" IS NULL OR "claimed_until" < ?)'
    )


@lru_cache(maxsize=256)
def _insert_sql(model: type[Model], fields: tuple[Field, ...]) -> str:
    columns = ", ".join(_quoted(f.column_name) for f in fields)
    marks = ", ".join("?" for _ in fields)
    return f"INSERT INTO {_quoted(model._meta.table_name)} ({columns}) VALUES ({marks})"


@lru_cache(maxsize=256)
def _update_sql(model: type[Model], fields: tuple[Field, ...]) -> str:
    assignments = ", ".join(f"{_quoted(f.column_name)} = ?" for f in fields)
    key = _quoted(_key(model).column_name)
    return f"UPDATE {_quoted(model._meta.table_name)} SET {assignments} WHERE {key} = ?"
