"""Opening the database: SQLite with WAL, foreign keys and a busy timeout by default, any
`playhouse.db_url` URL (postgresql://...) for scale. Migrations live in `mailbot.migrations`.

SQLite transactions begin IMMEDIATE: each one takes the write lock at BEGIN, waiting up to the busy
timeout for another writer (the daemon's other thread, a CLI command). A deferred transaction that
read first would instead fail at once with "database is locked" when another connection committed
between its read and its first write; the busy timeout does not cover that case."""

from __future__ import annotations

from pathlib import Path

from peewee import Database, SqliteDatabase, _savepoint
from playhouse.db_url import connect

from mailbot.errors import ConfigError
from mailbot.models import database

DEFAULT_BUSY_TIMEOUT = 10.0  # seconds; MAILBOT_DB_BUSY_TIMEOUT
SQLITE_PRAGMAS = {
    # busy_timeout first: switching to WAL itself may have to wait for another connection.
    "busy_timeout": int(DEFAULT_BUSY_TIMEOUT * 1000),
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",  # with WAL: durable against process crashes, fast enough
}


class _SqliteDatabase(SqliteDatabase):
    def rollback(self) -> None:
        if not self.is_closed() and not self.connection().in_transaction:
            # SQLite rolled the transaction back itself, as it does on SQLITE_FULL and some I/O
            # errors: a ROLLBACK now would fail ("no transaction is active") and hide the cause.
            return
        super().rollback()

    def savepoint(self) -> _Savepoint:
        return _Savepoint(self)


class _Savepoint(_savepoint):
    """A savepoint (a mail within the poller's batch transaction) whose rollback, like the
    database's above, does not hide the cause when SQLite already rolled everything back."""

    def rollback(self, begin: bool = True) -> None:
        if not self.db.connection().in_transaction:
            return
        super().rollback(begin)


def open_database(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Database:
    """Connect the models to the database at `url` and return it (connected). `busy_timeout` is
    how many seconds SQLite waits for another writer before "database is locked"."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        pragmas = {**SQLITE_PRAGMAS, "busy_timeout": int(busy_timeout * 1000)}
        db: Database = _SqliteDatabase(str(path), pragmas=pragmas, check_same_thread=False,
                                       lock_type="IMMEDIATE")
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


def require_durable_commits() -> None:
    """From now on every commit is on disk when it returns (SQLite's synchronous=FULL; a server
    database already is). For `mailbot ingest`: the MTA deletes its copy of a mail as soon as we
    exit 0, while mail read from a mailbox stays on the server and needs no more than NORMAL."""
    db = database.obj
    if isinstance(db, SqliteDatabase):
        db.execute_sql("PRAGMA synchronous=FULL")
