"""The daemon as an admin runs it: `mailbot run` in its own process, on Dovecot and SMTP, with
IMAP IDLE bringing mail in, systemd's notify protocol, and SIGTERM stopping it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.mails import write_mail
from tests.helpers.servers import SilentServer
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers
VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"


def wait_until(condition, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def site(tmp_path, dovecot, mail_user, smtp_sink):
    # A long poll interval: only IDLE can bring the second mail in quickly.
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": mail_user.url()}},
        smtp_url=smtp_sink.url,
        poll_interval="300",
        outbox_interval="300",
    )
    site.add_account(DANA, "VISI")
    site.add_account("erin@produsoft.test", "VISI", "engineer")
    site.write_env()
    return site


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield path, sock
    sock.close()


def start_daemon(site, extra_env=None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    env.update(extra_env or {})
    with (site.root / "daemon.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def datagrams(sock) -> list[str]:
    seen = []
    while True:
        try:
            seen.append(sock.recv(256).decode())
        except (TimeoutError, BlockingIOError):
            return seen


def test_mail_arrives_through_idle_and_sigterm_stops_the_daemon(
    site, dovecot, mail_user, smtp_sink, notify_socket
):
    path, sock = notify_socket
    daemon = start_daemon(site, {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
    try:
        messages = []
        wait_until(lambda: messages.extend(datagrams(sock)) or "READY=1" in messages, 20, "READY=1")
        wait_until(
            lambda: messages.extend(datagrams(sock)) or "WATCHDOG=1" in messages, 10, "a watchdog ping"
        )
        time.sleep(1)  # the worker is now in IDLE; no poll is due for 300 s
        dovecot.append(mail_user.name, write_mail(DANA, VISI, "Licence server down", "Nothing starts."))
        mails = smtp_sink.wait_for(2, timeout=30)
        assert sorted(m.rcpt_tos[0] for m in mails) == [DANA, "erin@produsoft.test"]
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=40)
        assert daemon.returncode == 0
        stderr = (site.root / "daemon.log").read_text()
        assert "mailbot stopped" in stderr
        assert "Traceback" not in stderr
        assert "STOPPING=1" in messages + datagrams(sock)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert [t["reference"] for t in site.tickets()] == ["VISI-1"]


def test_a_second_signal_exits_at_once(tmp_path, smtp_sink):
    # A mailbox that accepts connections and never answers keeps a worker busy for a while.
    with SilentServer() as silent:
        site = make_site(
            tmp_path,
            {"VISI": {"address": VISI, "mailbox": f"imap://u:p@127.0.0.1:{silent.port}/INBOX"}},
            smtp_url=smtp_sink.url,
            io_timeout="120",
        )
        site.write_env()
        daemon = start_daemon(site)
        try:
            log = site.root / "daemon.log"
            wait_until(lambda: "mailbot running" in log.read_text(), 20, "the daemon to start")
            time.sleep(1)
            daemon.send_signal(signal.SIGTERM)
            wait_until(lambda: "stopping" in log.read_text(), 10, "the first signal to be seen")
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=10)
            assert daemon.returncode != 0
            assert "second signal" in log.read_text()
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()


def test_the_unit_runs_mailbot_directly_under_notify_with_a_watchdog():
    unit = (Path(__file__).resolve().parent.parent / "systemd" / "mailbot.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    assert settings["ExecStart"].split()[0].endswith("/mailbot"), (
        "no shell wrapper: signals must reach Python"
    )
    assert settings["Type"] == "notify" and settings["WatchdogSec"]
    assert settings["Restart"] == "on-failure" and settings["User"] == "mailbot"
    assert settings["StateDirectory"] == "mailbot" and settings["EnvironmentFile"]
