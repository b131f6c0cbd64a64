"""Run twice, killed hard: an admin (or a second systemd unit, or a cron line meant for
`poll --once`) starts `mailbot run` on an installation whose daemon already runs. The second one
refuses with one line naming the database and the daemon's pid, and exits 75; once the first is
killed with SIGKILL, a new one starts at once (the lock dies with its process). And a daemon killed
with SIGKILL in the middle of a backlog takes its parse helper, the forkserver and the resource
tracker with it: nothing keeps running for ever.

The installations here read a local Maildir: no server is needed to run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.mails import write_mail
from tests.helpers.processes import command_line, descendants, wait_gone
from tests.helpers.site import Site, make_site

VISI = "visi.support@produsoft.test"


def wait_until(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def maildir_site(root: Path) -> Site:
    site = make_site(
        root, {"VISI": {"address": VISI, "unknown_senders": "open"}}, poll_interval="2", outbox_interval="2"
    )
    site.write_env()
    return site


def deliver(site: Site, count: int) -> None:
    maildir = site.data_dir / "maildirs" / "VISI"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for n in range(count):
        raw = write_mail(
            f"customer{n}@company{n % 13}.test",
            VISI,
            f"Case {n}: export fails",
            "The export stops at 80 %.\n" * 40,
        )
        (maildir / "tmp" / f"m{n}").write_bytes(raw)
        os.rename(maildir / "tmp" / f"m{n}", maildir / "new" / f"m{n}")


def start(site: Site, *args: str, log: str = "daemon.log") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    with (site.root / log).open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def log_of(site: Site, name: str = "daemon.log") -> str:
    return (site.root / name).read_text(errors="replace")


@pytest.mark.sqlite_only(
    "one daemon per SQLite file (on PostgreSQL several share the work: tests/test_fleet.py)"
)
def test_a_second_daemon_on_the_same_database_refuses_and_a_killed_one_leaves_no_lock(tmp_path):
    site = maildir_site(tmp_path)
    first = start(site, "run")
    try:
        wait_until(lambda: "mailbot running" in log_of(site), 30, "the first daemon to run")
        second = subprocess.run(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "run"],
            env={k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 75
        [line] = [line for line in second.stderr.splitlines() if line.startswith("mailbot:")]
        database = site.data_dir / "mailbot.db"
        assert str(database) in line and f"pid {first.pid}" in line, line
        assert "Traceback" not in second.stderr and "mailbot running" not in second.stderr
        assert first.poll() is None, "the first daemon runs on"

        deliver(site, 1)  # poll --once beside the daemon stays allowed
        site.mailbot("poll", "--once")
        wait_until(lambda: site.query("SELECT count(*) FROM ticket") == [(1,)], 30, "the ticket")

        first.send_signal(signal.SIGKILL)
        first.wait()
        third = start(site, "run", log="third.log")
        try:
            wait_until(lambda: "mailbot running" in log_of(site, "third.log"), 30, "a new daemon to run")
            assert third.poll() is None
        finally:
            third.send_signal(signal.SIGTERM)
            assert third.wait(40) == 0
    finally:
        stop(first)


def test_a_daemon_killed_in_a_backlog_takes_its_helper_processes_with_it(tmp_path):
    site = maildir_site(tmp_path)
    deliver(site, 1500)  # passes of 500 mails: each prepared ahead by a helper process

    daemon = start(site, "run")
    try:

        def helper_at_work() -> set[int]:
            family = descendants(daemon.pid)
            working = [pid for pid in family if "forkserver" in command_line(pid) and descendants(pid)]
            return family if working else set()

        family = wait_until(helper_at_work, 60, "the parse helper to start")
        assert site.query("SELECT count(*) FROM seen")[0][0] < 1500, "killed in the middle of the backlog"
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        left = wait_gone(family, timeout=20)
        assert not left, f"still running: {[command_line(pid) for pid in left]}"
    finally:
        stop(daemon)
