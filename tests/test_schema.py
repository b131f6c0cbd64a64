"""schema.sql is the schema of record: it must be what the models and the migrations make."""

from __future__ import annotations

from pathlib import Path

import pytest
from peewee import SqliteDatabase

from mailbot.store import migrations
from mailbot.store.db import close_database, open_database

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "mailbot" / "store" / "schema.sql"


def table_shapes(db) -> dict[str, object]:
    shapes = {}
    for (table,) in db.execute_sql("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
        columns = db.execute_sql(f'PRAGMA table_info("{table}")').fetchall()
        indexes = sorted((row[1], row[2]) for row in db.execute_sql(f'PRAGMA index_list("{table}")'))
        shapes[table] = ([(c[1], c[2], c[3], c[5]) for c in columns], indexes)
    return shapes


def test_schema_sql_is_generated_from_the_models():
    assert SCHEMA.read_text() == migrations.schema_sql(SqliteDatabase(":memory:")), (
        "schema.sql differs from the models: run `mailbot db schema > mailbot/schema.sql` and add a migration"
    )


@pytest.mark.sqlite_only("schema.sql is SQLite's schema, compared with a migrated SQLite file")
def test_migrated_database_matches_schema_sql(tmp_path):
    from_sql = SqliteDatabase(str(tmp_path / "from_sql.db"))
    from_sql.connect()
    for statement in SCHEMA.read_text().split(";\n"):
        if statement.strip() and not statement.strip().startswith("--"):
            from_sql.execute_sql(statement)
        elif "CREATE" in statement:
            from_sql.execute_sql(statement.split("\n", 2)[-1])
    migrated = open_database(f"sqlite:///{tmp_path}/migrated.db")
    try:
        before, after = migrations.migrate(migrated)
        assert (before, after) == (0, migrations.LATEST)
        assert table_shapes(migrated) == table_shapes(from_sql)
        assert migrations.migrate(migrated) == (migrations.LATEST, migrations.LATEST)
    finally:
        close_database()
        from_sql.close()


@pytest.mark.sqlite_only("SQLite's pragmas")
def test_sqlite_runs_with_wal_foreign_keys_and_busy_timeout(tmp_path):
    db = open_database(f"sqlite:///{tmp_path}/m.db")
    try:
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000
    finally:
        close_database()
