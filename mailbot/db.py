"""Opening the database: SQLite with WAL, foreign keys and a busy timeout by default, any
`playhouse.db_url` URL (postgresql://...) for scale. Migrations live in `mailbot.migrations`."""

from __future__ import annotations

from pathlib import Path

from peewee import Database, SqliteDatabase
from playhouse.db_url import connect

from mailbot.errors import ConfigError
from mailbot.models import database

SQLITE_PRAGMAS = {
    # busy_timeout first: switching to WAL itself may have to wait for another connection.
    "busy_timeout": 10_000,
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",  # with WAL: durable against process crashes, fast enough
}


def open_database(url: str) -> Database:
    """Connect the models to the database at `url` and return it (connected)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        db: Database = SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    else:
        try:
            db = connect(url)
        except Exception as exc:  # peewee raises plain errors for bad URLs
            raise ConfigError(f"MAILBOT_DATABASE_URL: {exc}") from None
    database.initialize(db)
    db.connect(reuse_if_open=True)
    return db


def close_database() -> None:
    db = database.obj
    if db is not None and not db.is_closed():
        db.close()
