"""Schema versions and the steps between them, so an existing database is upgraded in place and
never needs to be thrown away. Version 1 is the schema in `schema.sql`; each later step is a
function that changes an existing database (playhouse.migrate), appended to `STEPS`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from peewee import Database, PostgresqlDatabase
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as apply_operations

from mailbot.store.models import (
    MODELS,
    Alarm,
    Attachment,
    CreditEntry,
    MailboxHealth,
    MailboxLease,
    Notice,
    Organisation,
    Outbox,
    SchemaVersion,
    TicketFlag,
    TicketLink,
)
from mailbot.store.search import FTS_INDEX_SQL

log = logging.getLogger(__name__)


def _create_initial(db: Database) -> None:
    db.create_tables(MODELS)


def _add_credit_and_notices(db: Database) -> None:
    """Version 2: organisations with prepaid credit, the time and credit ledger, and the record
    of what the scheduler's jobs sent. New tables only; safe=True because a database created
    fresh already has them from step 1."""
    db.create_tables([Organisation, CreditEntry, Notice], safe=True)


def _add_outbox_drafts_and_claims(db: Database) -> None:
    """Version 3: an outbox row keeps what to say (language, context, headers) and is rendered
    when sent; `claimed_by`/`claimed_until` let one process at a time send it. Existing rows
    keep their rendered `data` and are sent as they are. Columns a fresh database already has
    from step 1 are left alone."""
    fields = (Outbox.language, Outbox.context, Outbox.headers, Outbox.claimed_by, Outbox.claimed_until)
    _add_missing_columns(db, Outbox, fields)


def _add_mailbox_health(db: Database) -> None:
    """Version 6: what the passes over each mailbox found (`mailbot status`, metrics, health
    alerts) and the health alerts currently raised. New tables only; safe=True because a
    database created fresh already has them from step 1."""
    db.create_tables([MailboxHealth, Alarm], safe=True)


def _add_ticket_links(db: Database) -> None:
    """Version 8: tickets related by `#link`, by a reference named in a new mail, or merged by
    `#merge`. A new table only; safe=True because a database created fresh already has it."""
    db.create_tables([TicketLink], safe=True)


def _add_enclosures(db: Database) -> None:
    """Version 10: an outbox row names the stored attachments it encloses when sent, and an
    attachment keeps its Content-ID and whether it was shown inline. Existing rows enclose
    nothing and existing attachments count as files."""
    _add_missing_columns(db, Outbox, (Outbox.attachments,))
    _add_missing_columns(db, Attachment, (Attachment.content_id, Attachment.inline))


def _add_missing_columns(db: Database, model: type, fields: tuple) -> None:
    """Add `fields` to `model`'s table, leaving alone the columns a fresh database already has
    from step 1."""
    table = model._meta.table_name  # type: ignore[attr-defined]
    have = {column.name for column in db.get_columns(table)}
    migrator = SchemaMigrator.from_database(db)
    apply_operations(
        *(migrator.add_column(table, f.column_name, f) for f in fields if f.column_name not in have)
    )


def _move_ticket_flags_to_rows(db: Database) -> None:
    """Version 7: a ticket's flags become `ticket_flag` rows (one per ticket and flag) instead of
    the comma list in `ticket.flags`, which is dropped. A database created fresh has the table
    and never had the column. Flags outside the vocabulary (none were ever written) are moved
    as they are: the check is on writes through the model, not on this copy."""
    db.create_tables([TicketFlag], safe=True)
    if "flags" not in {column.name for column in db.get_columns("ticket")}:
        return
    moved = 0
    for ticket_id, flags in db.execute_sql("SELECT id, flags FROM ticket WHERE flags != ''").fetchall():
        for flag in dict.fromkeys(f.strip() for f in flags.split(",") if f.strip()):
            sql = f'INSERT INTO "ticket_flag" ("ticket_id", "flag") VALUES ({db.param}, {db.param})'
            db.execute_sql(sql, (ticket_id, flag))  # each flag once per ticket: dict.fromkeys
            moved += 1
    # SQLite 3.35+ and PostgreSQL drop the column in place (no index or constraint names it);
    # playhouse rebuilds the table on an older SQLite.
    apply_operations(SchemaMigrator.from_database(db).drop_column("ticket", "flags"))
    log.info("moved %d ticket flags into ticket_flag rows", moved)


def _add_leases_and_text_search(db: Database) -> None:
    """Version 9: the mailbox leases of several daemons on one server database; on PostgreSQL
    also the full-text index that `mailbot ticket search` uses there (`mailbot.store.search`).
    safe=True because a database created fresh already has the table from step 1."""
    db.create_tables([MailboxLease], safe=True)
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql(FTS_INDEX_SQL)


# version -> step that brings the database from version-1 to version.
STEPS: dict[int, Callable[[Database], None]] = {
    1: _create_initial,
    2: _add_credit_and_notices,
    3: _add_outbox_drafts_and_claims,
    6: _add_mailbox_health,
    7: _move_ticket_flags_to_rows,
    8: _add_ticket_links,
    9: _add_leases_and_text_search,
    10: _add_enclosures,
}
LATEST = max(STEPS)


def applied_versions(db: Database) -> set[int]:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return set()
    return {row.version for row in SchemaVersion.select(SchemaVersion.version)}


def current_version(db: Database) -> int:
    """The version the database is complete up to: every step up to it applied (0 for none)."""
    applied = applied_versions(db)
    done = 0
    for version in sorted(STEPS):
        if version not in applied:
            break
        done = version
    return done


def migrate(db: Database) -> tuple[int, int]:
    """Bring the database to LATEST, applying every step not yet recorded, in order (a step
    numbered below the newest applied one, from work that was released later, still runs);
    returns (version before, version after)."""
    before, applied = current_version(db), applied_versions(db)
    for version in sorted(v for v in STEPS if v not in applied):  # numbers may have gaps
        with db.atomic():
            STEPS[version](db)
            SchemaVersion.create(version=version)
        log.info("database migrated to schema version %d", version)
    return before, LATEST


def schema_sql(db: Database) -> str:
    """The SQL that creates the latest schema on `db`'s dialect: the source of `schema.sql`."""
    statements = []
    for model in MODELS:
        bound = model._meta.database
        # Bound to `db` only while its SQL is generated; set_database, not the attribute, since
        # the schema manager keeps a database of its own once a model was ever bound (db copy).
        model._meta.set_database(db)
        try:
            table_sql, _ = model._schema._create_table(safe=False).query()  # type: ignore[attr-defined]
            statements.append(table_sql + ";")
            for index in model._schema._create_indexes(safe=False):  # type: ignore[attr-defined]
                statements.append(index.query()[0] + ";")
        finally:
            model._meta.set_database(bound)
    header = f"-- mailbot schema, version {LATEST}. Generated from mailbot/store/models.py by "
    header += "`mailbot db schema`;\n"
    header += "-- a test fails when the two differ. Change the models and add a migration, then regenerate.\n"
    return header + "\n".join(statements) + "\n"
