"""Long work shows how far it got, where someone watches: a first start on a full mailbox
(`poll --once` on Dovecot) and an account import draw a progress bar when stderr is a terminal
(a pty here), and under systemd (stderr a pipe to journald, here a pipe to the test) the same
runs write the plain log lines only, one line per event, no bar, no carriage return."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading

import pytest

from tests.helpers.bulk import append_many
from tests.helpers.mails import write_mail
from tests.helpers.site import Site, make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
MAILS = 120
ACCOUNTS = 60


def run_mailbot(site: Site, *args: str, terminal: bool) -> tuple[int, str, str]:
    """`mailbot ARGS` in its own process; returns its exit code, stdout and what reached its
    stderr: a pty when `terminal`, else a pipe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    env["COLUMNS"] = "100"
    command = [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), *args]
    if not terminal:
        done = subprocess.run(command, env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
        return done.returncode, done.stdout.decode(), done.stderr.decode()
    controller, terminal_end = pty.openpty()
    chunks: list[bytes] = []

    def read_all() -> None:
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    try:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal_end
        )
    finally:
        os.close(terminal_end)
    stdout, _ = process.communicate(timeout=300)
    reader.join(timeout=30)
    os.close(controller)
    return process.returncode, stdout.decode(), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def site(tmp_path, dovecot, mail_user, smtp_sink) -> Site:
    visi = {"address": VISI, "mailbox": mail_user.url(), "unknown_senders": "open"}
    site = make_site(tmp_path, {"VISI": visi}, smtp_url=smtp_sink.url)
    site.write_env()
    senders = [f"customer{n}@customer.test" for n in range(MAILS)]
    append_many(
        dovecot,
        mail_user.name,
        [write_mail(s, VISI, f"Question {n}", "Hello.") for n, s in enumerate(senders)],
    )
    return site


def customer_list(site: Site) -> str:
    path = site.root / "customers.csv"
    rows = [f"person{n}@customer.test,Person {n},Customer BV" for n in range(ACCOUNTS)]
    path.write_text("email,name,organisation\n" + "\n".join(rows) + "\n")
    return str(path)


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "systemd"])
def test_a_first_start_on_a_full_mailbox(site, terminal):
    code, _, stderr = run_mailbot(site, "poll", "--once", terminal=terminal)
    assert code == 0, stderr
    assert len(site.tickets()) == MAILS
    # Each mail's log line is there either way, whole.
    assert sum(": ticket VISI-" in line for line in stderr.splitlines()) == MAILS
    if terminal:
        assert "VISI mails: 100%" in stderr
        assert f"{MAILS}/{MAILS}" in stderr
    else:
        assert "\r" not in stderr
        assert "%|" not in stderr and "VISI mails" not in stderr


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "systemd"])
def test_an_account_import(site, terminal):
    code, stdout, stderr = run_mailbot(
        site, "account", "import", "VISI", customer_list(site), terminal=terminal
    )
    assert code == 0, stderr
    assert stdout.strip() == f"{ACCOUNTS} account(s) imported for VISI"
    if terminal:
        assert "VISI accounts: 100%" in stderr
        assert f"{ACCOUNTS}/{ACCOUNTS}" in stderr
    else:
        assert stderr == ""
    assert len(site.json("account", "list")) == ACCOUNTS
