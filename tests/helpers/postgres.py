"""A private PostgreSQL cluster on loopback for the tests and the benchmark: the system's
Debian `postgresql` binaries (`initdb`, `postgres`) run on a cluster in a temp dir, on a free
port, never the system's cluster. As root the server runs as the `postgres` account (it refuses
to run as root). `fsync` is off: the tests kill mailbot and restart the server, never the
machine, and the operating system keeps what the server wrote.

Each test gets a database of its own, copied from a migrated template (CREATE DATABASE ...
TEMPLATE), which is much faster than running the migrations per test.

Plain Python, no pytest: fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import ctypes
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.helpers.servers import HOST, free_port

INSTALL_HINT = (
    "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb). The tests on PostgreSQL "
    "need it: install the Debian package postgresql (apt-get install postgresql), or run "
    "scripts/test.sh, which installs it when run as root."
)
SUPERUSER = "mailbot"
RUN_AS_ROOT = "postgres"  # the Debian package's account; `nobody` when it is missing


def binaries() -> Path | None:
    """The folder of the newest installed PostgreSQL's programs, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _account() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in (RUN_AS_ROOT, "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, and neither a postgres nor a nobody account exists")


def _stop_with_parent() -> None:
    """Runs in the server's child before exec (after it took the account's identity, which
    would clear it): an immediate shutdown (SIGQUIT) when the test process dies without stop().
    Tied to the thread that started the server, as Dovecot's is."""
    with contextlib.suppress(Exception):
        _PRCTL(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG


try:  # looked up before fork, so the child only makes the call
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _PRCTL = None


class Cluster:
    """`initdb` once, then `start()`/`stop()` (a restart keeps the data and the port)."""

    def __init__(self) -> None:
        bindir = binaries()
        if bindir is None:
            raise RuntimeError(INSTALL_HINT)
        self.bindir = bindir
        self.workdir = Path(tempfile.mkdtemp(prefix="mailbot-postgres-"))
        self.data = self.workdir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._numbers = itertools.count(1)
        self.account = _account()
        if self.account is not None:
            os.chown(self.workdir, self.account.pw_uid, self.account.pw_gid)
        initdb = [str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust"]
        self._run([*initdb, "-E", "UTF8", "--no-sync"])

    def _user_kwargs(self) -> dict:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}

    def _run(self, argv: list[str]) -> None:
        subprocess.run(
            argv,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
            **self._user_kwargs(),
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        argv = [
            str(self.bindir / "postgres"),
            "-D", str(self.data),
            "-h", HOST,
            "-p", str(self.port),
            "-k", str(self.workdir),
            "-c", "fsync=off",
            "-c", "synchronous_commit=on",  # a crash of the server keeps every commit
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
            "-c", "log_min_messages=warning",
        ]  # fmt: skip
        log = open(self.workdir / "postgres.log", "ab")  # noqa: SIM115 - the server's own log
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=log,
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=_stop_with_parent,
            **self._user_kwargs(),
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "the test PostgreSQL did not start:\n" + (self.workdir / "postgres.log").read_text()
                    ) from None
                time.sleep(0.1)

    def stop(self, mode: signal.Signals = signal.SIGINT) -> None:
        """Stop the server: SIGINT is PostgreSQL's "fast" shutdown (clients cut off), SIGKILL
        a crash (recovery at the next start)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, mode) if mode == signal.SIGKILL else self.proc.send_signal(mode)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self, template: str | None = None) -> str:
        """A fresh database (a copy of `template` when given); its URL."""
        name = f"t{os.getpid()}_{next(self._numbers)}"
        copy = f" TEMPLATE {template}" if template else ""
        self.execute(f"CREATE DATABASE {name}{copy}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
