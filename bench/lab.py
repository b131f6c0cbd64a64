"""The benchmark's bench: a private Dovecot and an SMTP sink on loopback (the test harness's own,
from tests/helpers/servers.py), mailboxes filled with MULTIAPPEND, mailbot installations driven through
the real command line in child processes, and the measuring of those children (wall time, peak
RSS from wait4, RSS samples while they run).

Dovecot is started from the benchmark's main thread, which lives as long as the run: Dovecot ends
itself when the thread that started it goes away.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import corpus
from tests.helpers.servers import Dovecot, make_workdir, remove_workdir
from tests.helpers.smtp_sink import SmtpSink

APPEND_CHUNK_BYTES = 8 * 1024 * 1024


class Lab:
    """Dovecot + SMTP sink + a scratch folder; `with Lab() as lab:` stops everything."""

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.workdir = make_workdir("mailbot-bench-")
        self.workdir.chmod(0o755)  # Dovecot, run by root, drops to `nobody`, which must reach its folder
        self.dovecot = Dovecot(self.workdir / "dovecot")
        self.smtp = SmtpSink()
        self._users = 0

    def __enter__(self) -> Lab:
        self.dovecot.start()
        self.smtp.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.smtp.stop()
        self.dovecot.stop()
        if not self.keep:
            remove_workdir(self.workdir)

    def new_user(self) -> str:
        self._users += 1
        name = f"bench{self._users}"
        self.dovecot.add_user(name, secrets.token_hex(8))
        return name

    def fill(self, user: str, raws: Iterable[bytes]) -> int:
        """Append the mails in order with MULTIAPPEND, a few MB per command."""
        count = 0
        with self.dovecot.client(user) as imap:
            chunk: list[bytes] = []
            size = 0
            for raw in raws:
                chunk.append(raw)
                size += len(raw)
                if size >= APPEND_CHUNK_BYTES or len(chunk) >= 500:
                    imap.multiappend("INBOX", chunk)
                    count += len(chunk)
                    chunk, size = [], 0
            if chunk:
                imap.multiappend("INBOX", chunk)
                count += len(chunk)
        return count

    def scratch(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=False)
        return path


@dataclass
class Site:
    """One mailbot installation (env file, data folder, SQLite database) run through the CLI."""

    root: Path
    env: dict[str, str]
    python: str = sys.executable
    pythonpath: str = ""

    @property
    def env_file(self) -> Path:
        return self.root / "mailbot.env"

    @property
    def database(self) -> Path:
        return self.root / "data" / "mailbot.db"

    def command(self, *args: str) -> list[str]:
        return [self.python, "-m", "mailbot", "--env-file", str(self.env_file), *args]

    def measured_command(self, *args: str) -> list[str]:
        """The same, through bench/child.py, which reports the process's own peak RSS."""
        return [
            self.python,
            str(Path(__file__).with_name("child.py")),
            "mailbot",
            "--env-file",
            str(self.env_file),
            *args,
        ]

    def process_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
        if self.pythonpath:
            env["PYTHONPATH"] = self.pythonpath
        return env

    def run(self, *args: str, input: bytes | None = None) -> str:
        done = subprocess.run(
            self.command(*args),
            env=self.process_env(),
            input=input,
            capture_output=True,
            check=False,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"mailbot {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stderr.decode(errors='replace')[-3000:]}"
            )
        return done.stdout.decode()


def make_site(
    root: Path, mailbox_url: str, smtp_url: str, customers: int, *, pythonpath: str = "", **settings: str
) -> Site:
    """A site for product VISI on `mailbox_url`, with `customers` customer accounts, two
    engineers and a board member, all made through the CLI (db init, account import)."""
    root.mkdir(parents=True, exist_ok=True)
    env = {
        "MAILBOT_DATA_DIR": str(root / "data"),
        "MAILBOT_DATABASE_URL": f"sqlite:///{root / 'data' / 'mailbot.db'}",
        "MAILBOT_MAIL_DOMAIN": "mailbot.test",
        "MAILBOT_SMTP_URL": smtp_url,
        "MAILBOT_PRODUCTS": "VISI",
        "MAILBOT_PRODUCT_VISI_ADDRESS": corpus.SUPPORT,
        "MAILBOT_PRODUCT_VISI_NAME": "VISI Support",
        "MAILBOT_PRODUCT_VISI_MAILBOX": mailbox_url,
        "MAILBOT_PRODUCT_VISI_PREFIX": corpus.PREFIX,
    }
    env.update({f"MAILBOT_{k.upper()}": v for k, v in settings.items()})
    env_file = root / "mailbot.env"
    env_file.touch(mode=0o600)  # it holds the mailbox password
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    site = Site(root, env, pythonpath=pythonpath)
    site.run("db", "init")
    rows = ["email,name,organisation,language,role"]
    rows += [
        f"{c},{c.split('@')[0].title()},{c.split('@')[1]},en,customer" for c in corpus.customers(customers)
    ]
    rows += [f"{e},{e.split('@')[0].title()},Produsoft,en,engineer" for e in corpus.ENGINEERS]
    rows += [f"{b},{b.split('@')[0].title()},Produsoft,en,board" for b in corpus.BOARD]
    csv = root / "accounts.csv"
    csv.write_text("\n".join(rows) + "\n")
    site.run("account", "import", "VISI", str(csv))
    return site


# --- measuring child processes -------------------------------------------------------------------


@dataclass
class ChildRun:
    seconds: float
    peak_rss_mb: float  # the child's own VmHWM when run through bench/child.py, else wait4's figure
    returncode: int
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, rss MB, progress)
    stderr_tail: str = ""


def run_child(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    progress: Path | None = None,
    sample_every: float = 0.5,
    cwd: Path | None = None,
) -> ChildRun:
    """Run `argv`, timing it and taking its peak RSS (see bench/child.py); with `progress` (a
    mailbot SQLite file) also sample its RSS and how many mails the ledger holds, to show
    whether memory grows with the mails handled."""
    log_handle = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    peak_file = Path(tempfile.mkstemp(prefix="bench-peak-")[1])
    env = {**(env if env is not None else os.environ), "BENCH_PEAK_FILE": str(peak_file)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_handle, cwd=cwd
    )
    samples: list[tuple[float, float, int]] = []
    stop = threading.Event()
    sampler = None
    if progress is not None:
        sampler = threading.Thread(
            target=_sample, args=(proc.pid, progress, started, sample_every, samples, stop), daemon=True
        )
        sampler.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): the child must not outlive the benchmark
        proc.kill()
        proc.wait()
        stop.set()
        raise
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    if sampler is not None:
        sampler.join()
    if log:
        log_handle.close()  # type: ignore[union-attr]
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    reported = peak_file.read_text().strip()
    peak_file.unlink()
    peak_kb = int(reported) if reported else usage.ru_maxrss  # wait4 includes our own peak: an upper bound
    return ChildRun(seconds, peak_kb / 1024, proc.returncode, samples, tail)


def _sample(pid: int, database: Path, started: float, every: float, out: list, stop: threading.Event) -> None:
    while not stop.wait(every):
        rss = rss_mb(pid)
        if rss is None:
            return
        out.append((round(time.perf_counter() - started, 2), rss, ledger_count(database)))


def rss_mb(pid: int, field_name: str = "VmRSS") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def ledger_count(database: Path) -> int:
    """Mails in mailbot's ledger, read-only, without disturbing the writer."""
    try:
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return -1
