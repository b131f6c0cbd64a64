"""The disk under the installation fails the admin: it fills up, the database file is damaged,
or the database is made read-only and only half made writable again. Every command that writes
then ends with one `mailbot:` line that says what is wrong and where, and exit 75 (try again
later: behind an MTA the mail waits in its queue, on a mailbox it stays there), without a
traceback, without changing the database file, and once repaired the mail is taken exactly once.

For root (CI) these are real: a tiny tmpfs that is really full, and the immutable flag
(`chattr +i`), which root cannot write through either (tests/helpers/lockdown.py); a machine that allows
neither skips with the reason."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.lockdown import fill, immutable, small_disk, writable_again
from tests.helpers.mails import write_mail
from tests.helpers.site import Site, make_site

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"


def visi(data_dir: Path, root: Path) -> Site:
    site = make_site(root, {"VISI": {"address": VISI, "unknown_senders": "open"}})
    site.env["MAILBOT_DATA_DIR"] = str(data_dir)
    site.mailbot("db", "init")
    return site


def mailbot(site: Site, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`mailbot ARGS` as its own process, as cron, an MTA or systemd runs it."""
    site.write_env()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_line(done: subprocess.CompletedProcess, code: int = 75) -> str:
    """The one `mailbot:` line a failed command wrote (`poll --once` also logs the failed mailbox
    as a warning), and no traceback."""
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("mailbot: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def deliver(site: Site, name: str, raw: bytes) -> None:
    maildir = site.data_dir / "maildirs" / "VISI"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (maildir / "tmp" / name).write_bytes(raw)
    (maildir / "tmp" / name).rename(maildir / "new" / name)


def on_sqlite(site: Site) -> bool:
    return not site.env.get("MAILBOT_DATABASE_URL", "").startswith("postgresql://")


def ledger(site: Site) -> int:
    return site.query("SELECT count(*) FROM seen")[0][0]


# -- a full disk ------------------------------------------------------------------------------


def test_on_a_full_disk_every_command_that_writes_exits_75_and_the_mail_waits(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        site = visi(disk / "data", tmp_path)
        waiting = tmp_path / "waiting.eml"
        waiting.write_bytes(write_mail(DANA, VISI, "Export fails", "At 80 %.\n" * 50))
        deliver(site, "m1", write_mail(DANA, VISI, "Licence server down", "Nothing starts.\n" * 50))
        fill(disk)

        # The line names what found no room: SQLite's file, or with the database on a PostgreSQL
        # server, the raw mail. A daemon on SQLite meets the full disk at its first write and
        # exits; on PostgreSQL it starts and retries the mailbox each pass (as for an outage).
        commands = [["poll", "--once"], ["ingest", "VISI", str(waiting)]]
        if on_sqlite(site):
            full, commands = site.data_dir / "mailbot.db", [*commands, ["run"]]
        else:
            full = site.data_dir / "raw"
        for args in commands:
            line = one_line(mailbot(site, *args))
            assert "no space left on the disk" in line and str(full) in line, (args, line)
        assert [p.name for p in (site.data_dir / "maildirs" / "VISI" / "new").iterdir()] == ["m1"]

        (disk / "filler").unlink()  # the admin makes room
        assert ledger(site) == 0
        assert mailbot(site, "poll", "--once").returncode == 0
        assert mailbot(site, "ingest", "VISI", str(waiting)).returncode == 0
        assert mailbot(site, "poll", "--once").returncode == 0
        assert ledger(site) == 2 and site.query("SELECT count(*) FROM ticket") == [(2,)]


def test_when_the_raw_mail_finds_no_room_the_line_names_its_file(tmp_path):
    """A daemon runs (its connection keeps the WAL and its index allocated), and the disk fills:
    the database still has room in its WAL, the raw mail has none."""
    with small_disk(tmp_path / "disk") as disk:
        site = visi(disk / "data", tmp_path)
        waiting = tmp_path / "waiting.eml"
        waiting.write_bytes(write_mail(DANA, VISI, "Export fails", "At 80 %.\n" * 50))
        deliver(site, "m1", write_mail(DANA, VISI, "Licence server down", "Nothing starts.\n" * 50))
        daemon = sqlite3.connect(site.data_dir / "mailbot.db") if on_sqlite(site) else None
        try:
            if daemon is not None:  # SQLite: the database's own file keeps room in its WAL
                daemon.execute("SELECT count(*) FROM seen").fetchall()
            fill(disk)
            line = one_line(mailbot(site, "ingest", "VISI", str(waiting)))
            assert "no space left on the disk to write" in line and str(site.data_dir / "raw") in line, line
            line = one_line(mailbot(site, "poll", "--once"))  # its cursor's write may come first
            assert "mailbox of VISI" in line and "no space left on the disk" in line, line
            (disk / "filler").unlink()
            assert ledger(site) == 0
            assert mailbot(site, "ingest", "VISI", str(waiting)).returncode == 0
            assert mailbot(site, "poll", "--once").returncode == 0
            assert ledger(site) == 2
        finally:
            if daemon is not None:
                daemon.close()


# -- a damaged database -----------------------------------------------------------------------


@pytest.mark.sqlite_only("a damaged SQLite database file")
@pytest.mark.parametrize(
    "command",
    [
        ["poll", "--once"],
        ["ingest", "VISI"],
        ["run"],
        ["db", "init"],
        ["ticket", "list"],
        ["account", "add", DANA, "--product", "VISI"],
    ],
)
def test_a_damaged_database_is_named_and_left_as_it_is(tmp_path, command):
    site = visi(tmp_path / "data", tmp_path)
    database = site.data_dir / "mailbot.db"
    garbage = random.Random(7).randbytes(64 * 1024)
    database.write_bytes(garbage)
    mail = tmp_path / "mail.eml"
    mail.write_bytes(write_mail(DANA, VISI, "Export fails", "At 80 %."))
    args = [*command, str(mail)] if command[0] == "ingest" else command

    done = mailbot(site, *args)
    line = one_line(done)
    assert done.stderr.splitlines() == [line], "that line and nothing else"
    assert f"{database} is damaged" in line and "restore it from a backup" in line, line
    assert database.read_bytes() == garbage
    assert sorted(p.name for p in site.data_dir.iterdir()) == ["mailbot.db"]


# -- a database made read-only, and only half made writable again -----------------------------


@pytest.mark.sqlite_only("a read-only SQLite database file and its -wal/-shm")
def test_a_read_only_database_names_the_files_that_stay_read_only(tmp_path):
    site = visi(tmp_path / "data", tmp_path)
    database = site.data_dir / "mailbot.db"
    wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")
    mail = tmp_path / "mail.eml"
    mail.write_bytes(write_mail(DANA, VISI, "Export fails", "At 80 %."))
    # A daemon killed with SIGKILL leaves its -wal and -shm beside the database.
    killed = sqlite3.connect(database)
    killed.execute("PRAGMA journal_mode=wal")
    killed.execute("UPDATE mailbox_state SET last_uid = last_uid")
    killed.commit()
    assert wal.exists() and shm.exists()
    with immutable(database, wal, shm):
        killed.close()  # cannot checkpoint nor remove them: they stay, as after the kill
        line = one_line(mailbot(site, "ingest", "VISI", str(mail)))
        assert f"{database}, {wal}, {shm} cannot be written" in line, line

        with writable_again(database):  # the admin repaired the database file only
            line = one_line(mailbot(site, "ingest", "VISI", str(mail)))
            assert f"{wal}, {shm} cannot be written" in line and f"{database}," not in line, line
            line = one_line(mailbot(site, "poll", "--once"))
            assert f"{wal}, {shm} cannot be written" in line, line
    assert mailbot(site, "ingest", "VISI", str(mail)).returncode == 0  # all repaired
    assert mailbot(site, "ingest", "VISI", str(mail)).returncode == 0
    assert ledger(site) == 1 and site.query("SELECT count(*) FROM ticket") == [(1,)]
