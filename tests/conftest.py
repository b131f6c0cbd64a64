"""Shared fixtures: the real servers (one Dovecot per session, a fresh user and SMTP sink per
test), the real-world mail corpus and the generic business-hours calendar. The servers themselves
live in tests/helpers/servers.py.

Naming across the tests: `site` is a running installation (its own .env, data and database,
driven through the `mailbot` CLI against the real servers: tests/helpers/site.py); `desk` is the
in-process `mailbot.context.Desk` (tests/helpers/desks.py)."""

from __future__ import annotations

import inspect
import itertools
import os
import secrets
import signal
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbot.sla.calendar import Calendar
from mailbot.sla.notation import make_calendar
from tests.helpers import engines
from tests.helpers.engines import touches_database
from tests.helpers.postgres import INSTALL_HINT as PG_INSTALL_HINT
from tests.helpers.postgres import Cluster, binaries
from tests.helpers.processes import SESSION_MARK, command_line, marked, wait_gone
from tests.helpers.servers import DOVECOT_BINARY, INSTALL_HINT, Dovecot, make_workdir, remove_workdir
from tests.helpers.smtp_sink import SmtpSink

REPO = Path(__file__).resolve().parents[1]

# -- no process left behind -------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Mark every process this session starts (mailbot, its helpers, Dovecot) through the
    environment they inherit, so that the end of the session finds those it left, and only
    those: other sessions run on the same machine."""
    os.environ.setdefault(SESSION_MARK, f"{os.getpid()}-{secrets.token_hex(4)}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a process this session started still runs after every fixture stopped
    its own (a daemon's helper that outlived a kill -9, a Dovecot not stopped); they are named
    and ended, so that one leak does not pile up run after run."""
    _stop_own_multiprocessing_helpers()
    left = wait_gone(marked(os.environ[SESSION_MARK]), timeout=10)
    if not left:
        return
    lines = [f"  pid {pid}: {command_line(pid)}" for pid in sorted(left)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            "processes left running by this test session (now killed):\n" + "\n".join(lines), red=True
        )
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _stop_own_multiprocessing_helpers() -> None:
    """The forkserver and resource tracker that tests running mailbot in this process started:
    they end with this process anyway (their pipes close), so they are no leak; stopped here
    (multiprocessing's own test suite does the same) so that the check sees only real ones."""
    from multiprocessing import forkserver, resource_tracker

    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):  # noqa: SLF001
        stop = getattr(helper, "_stop", None)
        if stop is not None:
            stop()


# -- servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot for the whole session. Missing Dovecot fails (never skips) the tests that
    need it, saying what to install."""
    if not DOVECOT_BINARY.exists():
        pytest.fail(INSTALL_HINT.format(binary=DOVECOT_BINARY), pytrace=False)
    workdir = make_workdir()
    try:
        with Dovecot(workdir) as server:
            yield server
    finally:
        remove_workdir(workdir)


@dataclass(frozen=True)
class MailUser:
    """A Dovecot user of one test, with its own INBOX."""

    name: str
    password: str
    dovecot: Dovecot

    def url(self, tls: str = "none", folder: str = "INBOX") -> str:
        """mailbot's mailbox URL: tls is "none", "starttls" or "imaps"."""
        return self.dovecot.imap_url(self.name, tls=tls, folder=folder)


_user_numbers = itertools.count(1)


@pytest.fixture
def mail_user(dovecot: Dovecot) -> MailUser:
    """A fresh user per test. The password has URL-special characters, so every test also
    checks that mailbox URLs are decoded."""
    name = f"user{next(_user_numbers)}-{secrets.token_hex(3)}"
    password = f"pw/{secrets.token_hex(6)}@%?"
    dovecot.add_user(name, password)
    return MailUser(name, password, dovecot)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP server without AUTH that records every message (see SmtpSink for faults)."""
    with SmtpSink() as sink:
        yield sink


# -- data -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The real-world mail corpus: $MAILBOT_CORPUS, else <repo>/../shared/corpus."""
    path = Path(os.environ.get("MAILBOT_CORPUS") or REPO.parent / "shared" / "corpus")
    if not path.is_dir():
        pytest.skip(f"real-world corpus not found at {path}: set MAILBOT_CORPUS to its folder")
    return path


@pytest.fixture
def generic() -> Calendar:
    """The generic policy: Mon-Fri 09:00-18:00 UTC (test_businesshours, test_sla)."""
    return make_calendar("UTC", "mon-fri 09:00-18:00", "")


# -- database engines -------------------------------------------------------------------------

ENGINES = ("sqlite", "postgresql")
PG_TEMPLATE = "mailbot_template"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engine",
        choices=[*ENGINES, "both"],
        default="both",
        help="the database the tests that make one run on: sqlite, postgresql or both (default)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that touches the database runs once per engine chosen with --engine: those
    that take `engine` or `database_url`, and those that make an installation through the
    helpers (tests/helpers/engines.py says how that is seen), which the autouse fixture
    `_engine_databases` points at the test's engine. A test about SQLite itself carries
    `@pytest.mark.sqlite_only("why")` and runs on SQLite alone, whatever `--engine` says
    (listed in docs/development.md)."""
    if not _touches_database(metafunc):
        return
    chosen = metafunc.config.getoption("--engine")
    per_engine = ENGINES if chosen == "both" else (chosen,)
    only = metafunc.definition.get_closest_marker("sqlite_only")
    if only is not None:
        why = only.args[0] if only.args else ""
        if not why:
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: sqlite_only needs a reason")
        # About SQLite itself: it runs on SQLite whatever --engine says, and no PostgreSQL
        # variant is collected at all (a skipped variant would read as a check not made).
        per_engine = ("sqlite",)
    metafunc.parametrize("engine", per_engine, scope="function")


def _touches_database(metafunc: pytest.Metafunc) -> bool:
    """The test, or a fixture it uses (those of this file aside: they serve every engine),
    takes `engine` or `database_url` or reaches a helper that makes a database."""
    if "database_url" in metafunc.fixturenames or "engine" in metafunc.definition._fixtureinfo.argnames:
        return True
    if "postgres" in metafunc.fixturenames:  # the test names its engines itself (db copy, the fleet)
        return False
    if touches_database(metafunc.function):
        return True
    for defs in metafunc._arg2fixturedefs.values():  # noqa: SLF001 - the closure's fixtures
        for fixturedef in defs:
            func = fixturedef.func
            if inspect.getsourcefile(func) == __file__:
                continue
            if "engine" in fixturedef.argnames or touches_database(func):
                return True
    return False


@pytest.fixture
def engine() -> str:
    """The test's database engine: parametrised per engine for the tests that touch the
    database (pytest_generate_tests); SQLite, unused, for the others."""
    return "sqlite"


@pytest.fixture(autouse=True)
def _engine_databases(engine: str, request: pytest.FixtureRequest) -> Iterator[None]:
    """On PostgreSQL, each installation the test makes through the helpers (make_site,
    open_desk, open_mail_desk) gets a fresh database copied from the template, dropped at the
    end of the test, after the test's own fixtures stopped what used it."""
    if engine != "postgresql":
        yield
        return
    cluster: Cluster = request.getfixturevalue("postgres")
    made: dict[Hashable, str] = {}

    def fresh(key: Hashable) -> str:
        if key not in made:
            made[key] = cluster.new_database(template=PG_TEMPLATE)
        return made[key]

    engines.use(fresh)
    try:
        yield
    finally:
        engines.use(None)
        from mailbot.store.db import close_database

        close_database()
        for url in made.values():
            cluster.drop_database(url)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """One private PostgreSQL cluster for the session, with a migrated template database that
    each test's database is copied from. Missing PostgreSQL fails (never skips), saying what
    to install."""
    if binaries() is None:
        pytest.fail(PG_INSTALL_HINT, pytrace=False)
    cluster = Cluster()
    try:
        cluster.start()
        from mailbot.store.db import close_database, open_database
        from mailbot.store.migrations import migrate

        cluster.execute(f"CREATE DATABASE {PG_TEMPLATE}")
        migrate(open_database(cluster.url(PG_TEMPLATE)))
        close_database()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def database_url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a fresh database of the test's engine: a SQLite file in the test's folder
    (made by whoever opens it), or a PostgreSQL database already at the latest schema."""
    if engine == "sqlite":
        yield f"sqlite:///{tmp_path}/mailbot.db"
        return
    cluster: Cluster = request.getfixturevalue("postgres")
    url = cluster.new_database(template=PG_TEMPLATE)
    yield url
    from mailbot.store.db import close_database

    close_database()
    cluster.drop_database(url)
