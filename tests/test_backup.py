"""An admin backs up a running installation and restores it elsewhere: `mailbot db backup` while the
daemon takes a full mailbox from Dovecot, then the backup put into a fresh data folder as
docs/operating.md says, and the restored installation goes on with the same mailbox: what came
after the backup is taken again, nothing twice, and a customer's reply threads onto the ticket
the backup kept."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.bulk import append_many
from tests.helpers.mails import write_mail
from tests.helpers.site import Site, make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"
MAILS = 200


def wait_until(condition, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_daemon(site: Site) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    with (site.root / "daemon.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def stop(daemon: subprocess.Popen) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def ledger_rows(site: Site) -> int:
    try:
        return site.query("SELECT count(*) FROM seen")[0][0]
    except sqlite3.OperationalError:  # the daemon is creating a table right now
        return 0


def make_visi(root: Path, mailbox: str, smtp_url: str) -> Site:
    root.mkdir()
    # Open to unknown senders: each mail another customer's, so that no flood limit folds them.
    visi = {"address": VISI, "mailbox": mailbox, "unknown_senders": "open"}
    return make_site(root, {"VISI": visi}, smtp_url=smtp_url)


@pytest.mark.sqlite_only("db backup is SQLite's online backup (PostgreSQL: pg_dump)")
def test_a_backup_taken_while_the_daemon_ingests_restores_into_a_working_installation(
    tmp_path, dovecot, mail_user, smtp_sink
):
    site = make_visi(tmp_path / "live", mail_user.url(), smtp_sink.url)
    site.add_account(DANA, "VISI", name="Dana Customer")
    site.add_account(ERIN, "VISI", "engineer")
    site.write_env()
    senders = [DANA] + [f"customer{n}@customer.test" for n in range(1, MAILS)]
    mails = [
        write_mail(who, VISI, f"Licence server {n} down", f"Nothing starts ({n}).")
        for n, who in enumerate(senders)
    ]
    append_many(dovecot, mail_user.name, mails)

    daemon = start_daemon(site)
    try:
        wait_until(lambda: ledger_rows(site) > 0, 60, "the daemon's first mails")
        backup = tmp_path / "backup-1"
        out = site.mailbot("db", "backup", str(backup)).stdout
        assert f"backup written to {backup}" in out
        wait_until(lambda: ledger_rows(site) == MAILS, 180, "the daemon to take every mail")
    finally:
        stop(daemon)
    assert "Traceback" not in (site.root / "daemon.log").read_text()

    # The copy is one consistent moment: every mail it records has its ticket and its raw mail.
    copy = sqlite3.connect(backup / "mailbot.db")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        taken = copy.execute("SELECT count(*) FROM seen").fetchone()[0]
        tickets = copy.execute("SELECT count(*) FROM ticket").fetchone()[0]
        raws = [row[0] for row in copy.execute("SELECT raw_path FROM seen")]
    finally:
        copy.close()
    assert 0 < taken <= MAILS
    assert tickets == taken
    assert all((backup / "raw" / Path(raw).name[:2] / Path(raw).name).is_file() for raw in raws)
    assert not (backup / "mailbot.db-wal").exists()

    # Restore as docs/operating.md says: the files into a fresh data folder, then db init.
    restored = make_visi(tmp_path / "restored", mail_user.url(), smtp_sink.url)
    shutil.rmtree(restored.data_dir)
    restored.data_dir.mkdir()
    for name in ("mailbot.db", "raw", "attachments", "quarantine"):
        if (backup / name).is_dir():
            shutil.copytree(backup / name, restored.data_dir / name)
        elif (backup / name).exists():
            shutil.copy2(backup / name, restored.data_dir / name)
    restored.mailbot("db", "init")
    assert len(restored.tickets()) == taken

    # The mails the daemon took after the backup are still on the server, above the cursor the
    # backup kept: the restored installation takes them again, and each mail is one ticket.
    restored.poll()
    assert len(restored.tickets()) == MAILS
    assert restored.query("SELECT count(*) FROM seen")[0][0] == MAILS

    # Dana answers the first ticket's acknowledgement: it threads onto the restored ticket.
    # Hers was the first mail, in the backup; the acknowledgement came from the live daemon.
    ack = next(m.message for m in smtp_sink.messages if m.rcpt_tos == [DANA])
    reference = restored.query(
        f"SELECT reference FROM ticket JOIN account ON requester_id = account.id WHERE email = '{DANA}'"
    )[0][0]
    assert f"[{reference}]" in ack["Subject"]
    answer = write_mail(
        DANA, VISI, f"Re: {ack['Subject']}", "It starts again, thanks.", in_reply_to=ack["Message-ID"]
    )
    dovecot.append(mail_user.name, answer)
    restored.poll()
    first = restored.ticket(reference)
    assert [m["text"].strip() for m in first["messages"] if m["direction"] == "in"][-1].startswith(
        "It starts again"
    )
    assert len(restored.tickets()) == MAILS  # a reply, not a new ticket


@pytest.mark.sqlite_only("db backup is SQLite's online backup (PostgreSQL: pg_dump)")
def test_a_backup_refuses_a_folder_that_holds_something(tmp_path):
    site = make_site(tmp_path, {"VISI": {"address": VISI, "mailbox": f"maildir://{tmp_path}/inbox"}})
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = site.mailbot("db", "backup", str(tmp_path / "taken"), expect=73)
    assert result.output.strip().splitlines() == [
        f"mailbot: {tmp_path / 'taken'} exists and is not an empty folder: give a new path for the backup"
    ]
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_a_server_database_is_not_backed_up_by_mailbot(tmp_path):
    site = make_site(tmp_path, {"VISI": {"address": VISI, "mailbox": f"maildir://{tmp_path}/inbox"}})
    site.env["MAILBOT_DATABASE_URL"] = "postgresql://mailbot@127.0.0.1:1/mailbot"
    result = site.mailbot("db", "backup", str(tmp_path / "b"), expect=64)
    assert "pg_dump" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()
