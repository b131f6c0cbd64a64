"""Opening the database: SQLite with WAL, foreign keys and a busy timeout by default, any
`playhouse.db_url` URL (postgresql://...) for scale. Migrations live in `mailbot.store.migrations`.

SQLite transactions begin IMMEDIATE: each one takes the write lock at BEGIN, waiting up to the busy
timeout for another writer (the daemon's other thread, a CLI command). A deferred transaction that
read first would instead fail at once with "database is locked" when another connection committed
between its read and its first write; the busy timeout does not cover that case.

Also here: the lock that keeps a second daemon off one SQLite installation, and the one line that
says what is wrong with a database that cannot be used (locked, full, read-only, not a database)."""

from __future__ import annotations

import fcntl
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

from peewee import Database, ImproperlyConfigured, PostgresqlDatabase, SqliteDatabase, _savepoint
from playhouse.db_url import connect

from mailbot.errors import AlreadyRunning, ConfigError, DatabaseUnavailable
from mailbot.store.models import database

T = TypeVar("T")
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


class _PostgresqlDatabase(PostgresqlDatabase):
    """PostgreSQL through psycopg 3 (peewee 4 drives it natively). A connection the server
    dropped (restart, network) is replaced by a new one at the next statement outside a
    transaction, so that the pass that met the loss fails with one line and the next pass just
    works; and the rollback of a transaction whose connection is gone does not hide the cause
    (the server has already rolled it back)."""

    def _broken(self) -> bool:
        conn = getattr(self, "_state").conn  # noqa: B009 - peewee's stubs do not name its state
        return conn is not None and bool(conn.closed or conn.broken)

    def cursor(self, named_cursor=None):  # type: ignore[no-untyped-def]
        # Every statement and BEGIN comes through here; inside a transaction the loss must be
        # seen (its work is gone), outside it a new connection is simply opened.
        if not self.in_transaction() and self._broken():
            getattr(self, "_state").reset()  # noqa: B009 - peewee connects again (autoconnect)
        return super().cursor(named_cursor)

    def rollback(self) -> None:
        if self._broken():
            return
        super().rollback()

    def savepoint(self) -> _PgSavepoint:
        return _PgSavepoint(self)

    def close(self) -> bool:
        if self._broken():
            getattr(self, "_state").reset()  # noqa: B009
            return True
        return bool(super().close())


class _PgSavepoint(_savepoint):
    """A savepoint whose rollback, on a connection the server dropped, does not hide the cause."""

    db: _PostgresqlDatabase

    def rollback(self, begin: bool = True) -> None:
        if self.db._broken():
            return
        super().rollback(begin)


def _postgresql(url: str) -> Database:
    parts = urlsplit(url)
    if not parts.path.strip("/"):
        raise ConfigError("MAILBOT_DATABASE_URL: name the database, postgresql://user:pass@host:port/NAME")
    # psycopg reads the URL itself (a conninfo URI: ?sslmode=..., percent-encoded passwords).
    return _PostgresqlDatabase("postgresql://" + url.split("://", 1)[1], connect_timeout=10)


def open_database(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Database:
    """Connect the models to the database at `url` and return it (connected). `busy_timeout` is
    how many seconds SQLite waits for another writer before "database is locked"."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) != ":memory:":
            _make_folder(path.parent)
        pragmas = {**SQLITE_PRAGMAS, "busy_timeout": int(busy_timeout * 1000)}
        db: Database = _SqliteDatabase(
            str(path), pragmas=pragmas, check_same_thread=False, lock_type="IMMEDIATE"
        )
    elif url.startswith(("postgresql://", "postgres://")):
        db = _postgresql(url)
    else:
        try:
            db = connect(url)
        except Exception as exc:  # peewee raises plain errors for bad URLs
            raise ConfigError(f"MAILBOT_DATABASE_URL: {exc}") from None
    close_database()  # the one replaced (a second desk in one process) leaves no connection open
    try:
        database.initialize(db)
        db.connect(reuse_if_open=True)
    except ImproperlyConfigured as exc:  # e.g. "Postgres driver not installed."
        raise ConfigError(
            f"MAILBOT_DATABASE_URL: {exc} (pip install psycopg2-binary for PostgreSQL)"
        ) from None
    return db


def server_database(url: str) -> Database:
    """A PostgreSQL database of its own, connected, not the one the models use (`db copy`)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("the target must be a postgresql://user:pass@host:port/NAME URL")
    db = _postgresql(url)
    db.connect()
    return db


def close_database() -> None:
    db = database.obj
    if db is not None and not db.is_closed():
        db.close()


def closing_thread_connection(job: Callable[..., T]) -> Callable[..., T]:
    """`job`, closing the database connection of the thread it ran in when it returns: for the
    daemon's scheduler threads. Peewee keeps a connection per thread; when the pool's threads
    end (the daemon stops) a server connection left to the garbage collector is dropped without
    a goodbye (psycopg warns). A thread's next run simply connects again."""

    @functools.wraps(job)
    def run(*args: Any, **kwargs: Any) -> T:
        try:
            return job(*args, **kwargs)
        finally:
            close_database()

    return run


def require_durable_commits() -> None:
    """From now on every commit is on disk when it returns (SQLite's synchronous=FULL; a server
    database already is). For `mailbot ingest`: the MTA deletes its copy of a mail as soon as we
    exit 0, while mail read from a mailbox stays on the server and needs no more than NORMAL."""
    db = database.obj
    if isinstance(db, SqliteDatabase):
        db.execute_sql("PRAGMA synchronous=FULL")


def erase_freed_pages() -> None:
    """After personal data was erased: no copy of it left in the database file. SQLite keeps
    deleted and overwritten text in free pages and in the write-ahead log until they are reused;
    VACUUM rewrites the file without them and a TRUNCATE checkpoint empties the log. (A server
    database reclaims its own space: nothing to do here.) Takes the write lock for as long as
    the rewrite lasts, which a live daemon waits out (busy timeout)."""
    db = database.obj
    if isinstance(db, SqliteDatabase):
        db.execute_sql("VACUUM")
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for a server database or one in memory."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    return Path(url.removeprefix("sqlite:///"))


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot create the database folder {folder}: {exc.strerror}") from None


def hold_daemon_lock(url: str) -> BinaryIO | None:
    """One daemon per SQLite installation: an exclusive flock(2) on `<database>.lock`, held while
    the returned file stays open, i.e. for the daemon's life. The kernel drops it when the process
    ends, however it ends, so a kill -9 leaves no stale lock. The file holds the holder's pid, for
    the refusal. None for a server database, whose daemons share it (SPEC, "Past one machine")."""
    path = sqlite_file(url)
    if path is None:
        return None
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = open(lock_path, "a+b")  # noqa: SIM115 - held open for the daemon's life
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot open the lock file {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read(20).decode("ascii", "replace").strip()
        handle.close()
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise AlreadyRunning(
            f"another mailbot daemon{pid} already runs on the database {path} "
            f"(it holds {lock_path}): one daemon per SQLite database"
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    return handle


def explain(exc: Exception, url: str) -> DatabaseUnavailable:
    """One line for a database that cannot be used, naming its file and, when that is why, the
    files beside it that cannot be written (a -wal or -shm left read-only)."""
    text = " ".join(str(exc).split())  # psycopg's messages span lines: one line here
    path = sqlite_file(url)
    if path is None:
        return DatabaseUnavailable(f"database unavailable: {text}")
    lowered = text.lower()
    if "not a database" in lowered or "malformed" in lowered:
        return DatabaseUnavailable(
            f"database unavailable: {path} is damaged ({text}); restore it from a "
            "backup (mailbot has not written to it)"
        )
    if "full" in lowered or ("disk i/o error" in lowered and _no_room_beside(path)):
        # A full disk shows as an I/O error where SQLite could not grow its -shm file.
        return DatabaseUnavailable(
            f"database unavailable: no space left on the disk for {path} ({text}); make room and try again"
        )
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        stuck = read_only_files(path)
        what = f"; {', '.join(map(str, stuck))} cannot be written" if stuck else ""
        return DatabaseUnavailable(f"database unavailable: {text} ({path}){what}")
    return DatabaseUnavailable(f"database unavailable: {text} ({path})")


def _no_room_beside(path: Path) -> bool:
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


def read_only_files(path: Path) -> list[Path]:
    """The database file, its -wal and -shm, and its folder, where they exist and cannot be
    written by this process (file modes, an immutable flag, a read-only mount)."""
    beside = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"), path.parent]
    return [p for p in beside if p.exists() and not os.access(p, os.W_OK)]
