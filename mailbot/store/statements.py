"""The statements every mail runs, with their SQL built once per shape instead of once per call.

Peewee builds a statement's SQL from its expression tree on every call; for the short, fixed
statements ingest runs some twenty times a mail (a row by key, a new row, a row saved) that cost
several times what SQLite spends running them. The SQL here is the same peewee would write: the
model's columns, `?` parameters, the values converted by the fields' own `db_value` and read back
with their `python_value`. Anything else (joins, ordering, NULL tests, other operators) is left to
peewee: `key_filter` returns None and the caller takes peewee's own path. So does every statement
on a database other than SQLite (`prepared` is False): the SQL here is SQLite's.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache, reduce
from typing import Any

from peewee import OP, Expression, Field, Model, Node, SqliteDatabase


def prepared(model: type[Model]) -> bool:
    """Whether `model`'s statements may run here: its database is SQLite."""
    return isinstance(model._meta.database.obj, SqliteDatabase)


def key_filter(model: type[Model], query: tuple[Any, ...]) -> tuple[tuple[Field, ...], list[Any]] | None:
    """The fields and values of `query` when it is a primary key or `field == value` terms joined
    by AND, all on `model`'s own columns; None for anything else."""
    meta = model._meta
    if len(query) == 1 and isinstance(query[0], int) and meta.auto_increment:
        return (meta.primary_key,), [query[0]]
    terms: list[tuple[Field, Any]] = []
    if not all(_collect(term, model, terms) for term in query) or not terms:
        return None
    return tuple(field for field, _ in terms), [field.db_value(value) for field, value in terms]


def _collect(node: Any, model: type[Model], terms: list[tuple[Field, Any]]) -> bool:
    if not isinstance(node, Expression):
        return False
    if node.op == OP.AND:
        return _collect(node.lhs, model, terms) and _collect(node.rhs, model, terms)
    field = node.lhs
    value = node.rhs  # a plain value, or a row of the model a foreign key points to
    if (
        node.op != OP.EQ
        or not isinstance(field, Field)
        or value is None
        or (isinstance(value, Node) and not isinstance(value, Model))
    ):
        return False
    if field.model is not model or model._meta.fields.get(field.name) is not field:
        return False  # an alias, or a field of another model
    terms.append((field, value))
    return True


def first_row(model: type[Model], fields: tuple[Field, ...], values: list[Any]) -> Model | None:
    """The first row whose `fields` equal `values` (already converted), as a clean instance."""
    columns = model._meta.sorted_fields
    row = model._meta.database.execute_sql(_select_sql(model, fields), [*values, 1]).fetchone()
    if row is None:
        return None
    data = {field.name: field.python_value(value) for field, value in zip(columns, row, strict=True)}
    instance = model(__no_default__=1, **data)
    instance._dirty.clear()
    return instance


def count_rows(model: type[Model], equal: Mapping[Field, Any], later: tuple[Field, Any]) -> int:
    """How many rows have the values of `equal` and a value of `later`'s field after its value
    (the limits' "how many in the last day")."""
    if not prepared(model):
        terms = [field == value for field, value in equal.items()]
        return model.select().where(reduce(operator.and_, terms, later[0] > later[1])).count()  # type: ignore[no-any-return]
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
        query = model.update(
            {f["claimed_by"]: holder, f["claimed_until"]: until, f["attempts"]: f["attempts"] + 1}
        ).where(
            (meta.primary_key == key)
            & (f["status"] == "pending")
            & (f["next_attempt_at"] <= now)
            & (f["claimed_until"].is_null() | (f["claimed_until"] < now))
        )
        return bool(query.execute())
    params = [
        holder,
        f["claimed_until"].db_value(until),
        meta.primary_key.db_value(key),
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
    params.append(model._meta.primary_key.db_value(key))
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
    table, key = _quoted(model._meta.table_name), _quoted(model._meta.primary_key.column_name)
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
    key = _quoted(model._meta.primary_key.column_name)
    return f"UPDATE {_quoted(model._meta.table_name)} SET {assignments} WHERE {key} = ?"
