"""The measured cases, each in child processes: the floor and mailbot's ingest over the same
mailbox, IDLE latency against a running daemon, and peak memory on a big first start and on one
very large mail.

mailbot is always run through its real command line (`mailbot poll --once`, `mailbot run`), from
a fresh site per run, so every run is a first pass over the mailbox.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from bench import corpus
from bench.lab import ChildRun, Lab, Site, make_site, rss_mb, run_child

LIVE = "2000-01-01T00:00:00Z"  # a cut-over before the corpus: every mail is answered, as live mail is


@dataclass
class IngestRun:
    mails: int
    seconds_to_last_commit: float  # spawn of `poll --once` to the commit of its last mail
    seconds_total: float  # spawn to exit: also the SLA jobs and sending the outbox
    peak_rss_mb: float
    tickets: int
    outbox: int
    rss_samples: list[tuple[float, float, int]] = field(default_factory=list)


def floor_run(lab: Lab, url: str, mode: str) -> tuple[float, dict]:
    """One floor child: its wall time from spawn to exit, and what it printed."""
    work = lab.scratch(f"floor-{mode}-{time.monotonic_ns()}")
    argv = [sys.executable, "-m", "bench.floor", mode, url, str(work / "floor.db")]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=True, cwd=_repo())
    return time.perf_counter() - started, json.loads(done.stdout)


def ingest_run(
    lab: Lab,
    url: str,
    mails: int,
    *,
    pythonpath: str = "",
    cutover: str = LIVE,
    sample_every: float = 0.5,
    **settings: str,
) -> IngestRun:
    """A fresh site, then `mailbot poll --once` over the whole mailbox in a child process."""
    root = lab.workdir / f"site-{time.monotonic_ns()}"
    site = make_site(
        root,
        url,
        lab.smtp.url,
        corpus.customer_count(mails),
        pythonpath=pythonpath,
        ack_cutover=cutover,
        **settings,
    )
    spawned = datetime.now(UTC)
    run = run_child(
        site.measured_command("poll", "--once"),
        env=site.process_env(),
        log=root / "poll.log",
        progress=site.database,
        sample_every=sample_every,
        cwd=root,
    )
    _check(run, "poll --once")
    counts = _counts(site.database)
    if counts["seen"] != mails:
        raise RuntimeError(f"poll --once handled {counts['seen']} of {mails} mails; see {root / 'poll.log'}")
    last_commit = (counts["last_seen"] - spawned).total_seconds()
    return IngestRun(
        mails, last_commit, run.seconds, run.peak_rss_mb, counts["tickets"], counts["outbox"], run.samples
    )


def _counts(database: Path) -> dict:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        seen, last = db.execute("SELECT COUNT(*), MAX(received_at) FROM seen").fetchone()
        tickets = db.execute("SELECT COUNT(*) FROM ticket").fetchone()[0]
        outbox = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        db.close()
    return {
        "seen": seen,
        "last_seen": datetime.fromisoformat(last).replace(tzinfo=UTC),
        "tickets": tickets,
        "outbox": outbox,
    }


def _check(run: ChildRun, what: str) -> None:
    if run.returncode != 0:
        raise RuntimeError(f"mailbot {what} exited {run.returncode}:\n{run.stderr_tail}")


def _repo() -> Path:
    return Path(__file__).resolve().parent.parent


# --- IDLE latency ----------------------------------------------------------------------------------


@dataclass
class Latency:
    mails: int
    to_commit: list[float]  # APPEND sent -> ticket and acknowledgement committed
    to_ack: list[float]  # APPEND sent -> acknowledgement accepted by the SMTP server
    daemon_peak_rss_mb: float
    dovecot_idle: list[float] = field(default_factory=list)  # APPEND -> EXISTS, no mailbot


def idle_latency(lab: Lab, count: int, *, pythonpath: str = "", interval: int = 300) -> Latency:
    """`mailbot run` with a long poll interval (300 s), so only IDLE can bring mail in quickly;
    one new mail at a time is APPENDed, and we watch the database (read-only) for its ledger
    row and the SMTP sink for its acknowledgement. A short `interval` shows what the moments
    between two runs of a worker cost."""
    user = lab.new_user()
    root = lab.workdir / f"daemon-{time.monotonic_ns()}"
    site = make_site(
        root,
        lab.dovecot.imap_url(user),
        lab.smtp.url,
        50,
        pythonpath=pythonpath,
        poll_interval=str(interval),
        outbox_interval=str(interval),
    )
    log = root / "daemon.log"
    with log.open("ab") as err:
        daemon = subprocess.Popen(
            site.command("run"),
            env=site.process_env(),
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        _wait(lambda: "mailbot running" in log.read_text(errors="replace"), 30, "the daemon to start")
        _wait(lambda: "connected" in log.read_text(errors="replace"), 30, "the mailbox worker to connect")
        time.sleep(1.5)  # its first pass is done and it sits in IDLE
        result = _measure(lab, user, site, count)
        result.daemon_peak_rss_mb = rss_mb(daemon.pid, "VmHWM") or 0.0
        return result
    finally:
        daemon.terminate()
        try:
            daemon.wait(40)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def dovecot_idle_delay(lab: Lab, count: int = 5) -> list[float]:
    """How long Dovecot itself takes to tell an IDLE client about a new mail (APPEND sent ->
    EXISTS read), with no mailbot at all: the floor under the IDLE latency."""
    user = lab.new_user()
    people = corpus.customers(5)
    delays = []
    with lab.dovecot.client(user) as idle, lab.dovecot.client(user) as writer:
        idle.select_folder("INBOX")
        for index in range(count):
            idle.idle()
            time.sleep(0.2)
            raw = corpus.live_mail(people[index], f"raw{index}.{time.monotonic_ns()}@mua.client.test", index)
            started = time.perf_counter()
            writer.append("INBOX", raw)
            while not any(len(r) > 1 and r[1] == b"EXISTS" for r in idle.idle_check(timeout=10)):
                if time.perf_counter() - started > 10:
                    raise RuntimeError("Dovecot sent no EXISTS within 10 s")
            delays.append(time.perf_counter() - started)
            idle.idle_done()
    return delays


def _measure(lab: Lab, user: str, site: Site, count: int) -> Latency:
    people = corpus.customers(50)
    to_commit, to_ack = [], []
    db = sqlite3.connect(f"file:{site.database}?mode=ro", uri=True, timeout=5)
    try:
        with lab.dovecot.client(user) as imap:
            for index in range(count):
                message_id = f"idle{index}.{time.monotonic_ns()}@mua.client.test"
                raw = corpus.live_mail(people[index % len(people)], message_id, index)
                already = len(lab.smtp.messages)
                started = time.perf_counter()
                imap.append("INBOX", raw)
                _wait(partial(_committed, db, message_id), 30, f"mail {index} to be committed")
                to_commit.append(time.perf_counter() - started)
                _wait(
                    partial(_acknowledged, lab, message_id, already),
                    30,
                    f"the acknowledgement of mail {index}",
                )
                to_ack.append(time.perf_counter() - started)
                time.sleep(0.3 + (index % 5) * 0.1)  # mail does not come in lockstep
    finally:
        db.close()
    return Latency(count, to_commit, to_ack, 0.0)


def _committed(db: sqlite3.Connection, message_id: str) -> bool:
    try:
        return db.execute("SELECT 1 FROM seen WHERE message_id = ?", (message_id,)).fetchone() is not None
    except sqlite3.OperationalError:  # the daemon holds a lock for a moment
        return False


def _acknowledged(lab: Lab, message_id: str, already: int) -> bool:
    return any(
        f"<{message_id}>" in str(m.message.get("In-Reply-To", "")) for m in lab.smtp.messages[already:]
    )


def _wait(condition, timeout: float, what: str, every: float = 0.002) -> None:  # type: ignore[no-untyped-def]
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if condition():
            return
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


# --- summaries -------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def rss_growth(samples: list[tuple[float, float, int]]) -> dict:
    """RSS once a tenth of the mails were handled, and at the end: flat means bounded."""
    handled = [s for s in samples if s[2] > 0]
    if len(handled) < 2:
        return {}
    total = handled[-1][2]
    early = next((s for s in handled if s[2] >= total * 0.1), handled[0])
    return {
        "at_mails": early[2],
        "rss_mb": round(early[1], 1),
        "end_mails": total,
        "end_rss_mb": round(max(s[1] for s in handled[-3:]), 1),
    }
