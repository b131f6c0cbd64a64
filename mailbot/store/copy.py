"""`mailbot db copy --to postgresql://...`: an SQLite installation moved to a server database.

Every table of the schema is copied row by row with its keys, in the order the tables are
created (a row's foreign keys point at rows already copied), inside one transaction on the
target: a copy that fails leaves the target as empty as it was. The key sequences of the target
are then set past the largest key copied, the product counters (the sequence of ticket numbers)
come along as rows, and the rows of every table are counted on both sides. The raw mails and
attachments stay where they are, under MAILBOT_DATA_DIR; the rows name them.

The target must be empty: a copy never merges two installations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from peewee import Database, PostgresqlDatabase

from mailbot.errors import MailbotError
from mailbot.store.migrations import migrate
from mailbot.store.models import MODELS, BaseModel, SchemaVersion

BATCH = 500


class CopyRefused(MailbotError):
    """The target already holds an installation, or the counts differ after the copy."""

    exit_code = 73  # EX_CANTCREAT


def tables() -> list[type[BaseModel]]:
    """The models whose rows are copied: all but the schema's own history (the target has its
    own, from the migrations that built it)."""
    return [model for model in MODELS if model is not SchemaVersion]


def count_rows(source: Database) -> dict[str, int]:
    with source.bind_ctx(tables()):
        return {model._meta.table_name: model.select().count() for model in tables()}


def prepare_target(target: Database) -> None:
    """Build the latest schema on `target`; refuse one that already holds rows."""
    with target.bind_ctx(MODELS):
        migrate(target)
    with target.bind_ctx(tables()):
        busy = [model._meta.table_name for model in tables() if model.select().exists()]
    if busy:
        raise CopyRefused(
            f"the target database is not empty ({', '.join(busy)} have rows): copy into a new one"
        )


def copy_installation(source: Database, target: Database, progress: Callable[[int], None]) -> dict[str, int]:
    """Copy every row of `source` (at the latest schema) into `target`, made ready by
    `prepare_target`; `progress` is told how many rows were written after each batch. Returns
    the rows per table."""
    with target.atomic():
        for model in tables():
            for rows in _batches(source, model):
                with target.bind_ctx([model]):
                    model.insert_many(rows).execute()
                progress(len(rows))
        if isinstance(target, PostgresqlDatabase):
            _advance_sequences(target)
    copied, expected = count_rows(target), count_rows(source)
    if copied != expected:
        wrong = [
            f"{name}: {expected[name]} -> {copied[name]}"
            for name in expected
            if copied[name] != expected[name]
        ]
        raise CopyRefused(f"the counts differ after the copy: {'; '.join(wrong)}")
    return copied


def _batches(source: Database, model: type[BaseModel]) -> Iterator[list[dict]]:
    """The rows of `model` in `source`, in key order, BATCH at a time, as column values."""
    key = model._meta.primary_key
    with source.bind_ctx([model]):
        query = model.select().order_by(key).dicts()
        batch: list[dict] = []
        for row in query.iterator():
            batch.append(row)
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def _advance_sequences(target: Database) -> None:
    """Each table with a serial key goes on after its largest copied key."""
    for model in tables():
        key: Any = model._meta.primary_key
        if not model._meta.auto_increment:
            continue
        table, column = model._meta.table_name, key.column_name
        target.execute_sql(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), "
            f'COALESCE(MAX("{column}"), 1), MAX("{column}") IS NOT NULL) FROM "{table}"'
        )
