"""Secrets and TLS, as an admin meets them: passwords in mailbox and SMTP URLs never reach the
output of `mailbot check` or `poll --once` (not even with debug logging, not URL-encoded, not in
the base64 of an SMTP AUTH), a `.env` file with secrets that every user may read stops mailbot
before it starts, and a mailbox whose certificate is not trusted is one clear line and nothing
processed, until MAILBOT_CA_FILE names the CA (reliability S11, S12)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from mailbot.cli.main import main
from mailbot.store.db import close_database
from tests.helpers.mails import write_mail
from tests.helpers.servers import HOST, SilentServer, free_port
from tests.helpers.site import make_site
from tests.helpers.smtp_sink import SmtpSink

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
WORKNC = "worknc.support@produsoft.test"
DANA = "dana@customer.test"
SMTP_USER, SMTP_PASSWORD = "desk", "Smtp-S3cret/pw@%?x"
DEAD_PASSWORD = "Dead-S3cret:pw@%?y"


def forms(password: str, user: str = SMTP_USER) -> list[str]:
    """Every way a password could show up in output: as is, URL-encoded, and as the base64 an
    SMTP AUTH PLAIN or LOGIN sends."""
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    login = base64.b64encode(password.encode()).decode()
    return [password, quote(password, safe=""), quote(password), plain, login]


def assert_no_secret(text: str, *passwords: str) -> None:
    for password in passwords:
        for form in forms(password):
            assert form not in text, f"a password ({form!r}) appears in the output"


def run_cli(env_file: Path, *args: str):
    """`mailbot --env-file FILE ARGS` in-process, without touching the file's mode."""
    try:
        return CliRunner().invoke(main, ["--env-file", str(env_file), *args])
    finally:
        close_database()


@pytest.fixture
def tls_sink(dovecot):
    """An SMTP server that requires STARTTLS and AUTH."""
    with SmtpSink("starttls", auth=(SMTP_USER, SMTP_PASSWORD)) as sink:
        yield sink


@pytest.fixture
def ca_file(tmp_path, dovecot, tls_sink) -> Path:
    """One CA file that trusts both the test Dovecot and the TLS sink."""
    path = tmp_path / "ca.pem"
    path.write_bytes(dovecot.ca_file.read_bytes() + tls_sink.ca.cert_pem.bytes())
    return path


def test_check_and_poll_never_show_a_password_even_when_debugging(
    tmp_path, dovecot, mail_user, tls_sink, ca_file
):
    with SilentServer() as silent:
        dead = f"imap://visi:{quote(DEAD_PASSWORD, safe='')}@{HOST}:{free_port()}/INBOX"
        silent_url = f"imaps://visi:{quote(DEAD_PASSWORD, safe='')}@{HOST}:{silent.port}/INBOX"
        site = make_site(
            tmp_path,
            {
                "VISI": {"address": VISI, "mailbox": mail_user.url("starttls")},
                "WORKNC": {"address": WORKNC, "mailbox": dead},
                "SILENT": {"address": "silent.support@produsoft.test", "mailbox": silent_url},
            },
            smtp_url=tls_sink.url,
            ca_file=str(ca_file),
            log_level="debug",
            io_timeout="1",
        )
        site.add_account(DANA, "VISI")
        site.add_account("erin@produsoft.test", "VISI", "engineer")
        dovecot.append(mail_user.name, write_mail(DANA, VISI, "Licence", "Where is my licence?"))

        checked = site.mailbot("check", expect=None)
        polled = site.mailbot("poll", "--once", expect=None)
        # The same with the SMTP password wrong: the server's refusal must not echo it either.
        site.env["MAILBOT_SMTP_URL"] = tls_sink.url.replace(quote(SMTP_PASSWORD, safe=""), "wrong-pw")
        refused = site.mailbot("check", expect=None)

    outputs = [r.output + r.stderr for r in (checked, polled, refused)]
    for text in outputs:
        assert_no_secret(text, SMTP_PASSWORD, DEAD_PASSWORD, mail_user.password)
        assert "Traceback" not in text
    # The runs did what they should, so the output above is the output of real work.
    assert checked.exit_code == polled.exit_code == 75
    assert "ok   VISI" in checked.output
    assert "FAIL WORKNC" in checked.stderr and "FAIL SILENT" in checked.stderr
    assert "ok   outgoing mail" in checked.output and "authentication failed" in refused.stderr
    assert len(tls_sink.wait_for(2)) == 2 and all(m.tls and m.login == SMTP_USER for m in tls_sink.messages)
    assert [t["reference"] for t in site.tickets()] == ["VISI-1"]
    assert "DEBUG" in outputs[1], "debug logging was on"


def env_with_secret(tmp_path: Path, mode: int) -> Path:
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI}},
        smtp_url=f"smtp://{SMTP_USER}:{quote(SMTP_PASSWORD, safe='')}@{HOST}:{free_port()}",
    )
    site.write_env()
    site.env_file.chmod(mode)
    return site.env_file


@pytest.mark.parametrize("command", [["poll", "--once"], ["check"], ["ticket", "list"], ["db", "init"]])
def test_a_world_readable_env_file_with_a_password_stops_every_command(tmp_path, command):
    env_file = env_with_secret(tmp_path, 0o644)
    result = run_cli(env_file, *command)
    assert result.exit_code == 78
    [line] = result.stderr.splitlines()
    assert f"chmod 600 {env_file}" in line and "MAILBOT_SMTP_URL" in line
    assert_no_secret(result.output + result.stderr, SMTP_PASSWORD)


def test_the_daemon_refuses_to_start_on_a_world_readable_env_file(tmp_path):
    env_file = env_with_secret(tmp_path, 0o604)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    done = subprocess.run(
        [sys.executable, "-m", "mailbot", "--env-file", str(env_file), "run"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 78
    assert f"chmod 600 {env_file}" in done.stderr and "Traceback" not in done.stderr
    assert_no_secret(done.stdout + done.stderr, SMTP_PASSWORD)


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("MAILBOT_PRODUCT_VISI_MAILBOX=imaps://u:p%40ss@mail.test/INBOX", True),
        ("MAILBOT_DATABASE_URL=postgresql://mailbot:pw@db.test/mailbot", True),
        ("MAILBOT_SMTP_PASSWORD=pw", True),
        ("SOME_API_SECRET=abc", True),
        ("MAILBOT_PRODUCT_VISI_MAILBOX=imaps://user@mail.test/INBOX", False),
        ("MAILBOT_SMTP_URL=smtp://127.0.0.1:25", False),
    ],
)
def test_what_counts_as_a_secret(tmp_path, line, refused):
    env_file = tmp_path / "mailbot.env"
    env_file.write_text(
        f"MAILBOT_DATA_DIR={tmp_path / 'data'}\nMAILBOT_PRODUCTS=VISI\n"
        f"MAILBOT_PRODUCT_VISI_ADDRESS={VISI}\n{line}\n"
    )
    env_file.chmod(0o644)
    result = run_cli(env_file, "product", "list")
    assert (result.exit_code == 78) is refused, result.output + result.stderr
    env_file.chmod(0o640)  # readable by the service's group only: fine
    assert run_cli(env_file, "product", "list").exit_code == 0


def test_an_untrusted_mailbox_certificate_is_one_line_and_nothing_is_processed(
    tmp_path, dovecot, mail_user, smtp_sink
):
    site = make_site(
        tmp_path, {"VISI": {"address": VISI, "mailbox": mail_user.url("imaps")}}, smtp_url=smtp_sink.url
    )
    site.add_account(DANA, "VISI")
    uid = dovecot.append(mail_user.name, write_mail(DANA, VISI, "Licence", "Where is my licence?"))

    result = site.mailbot("poll", "--once", expect=75)
    [line] = [line for line in result.stderr.splitlines() if line.startswith("mailbot:")]
    assert line.startswith("mailbot: ") and "VISI" in line and "certificate" in line
    assert_no_secret(result.output + result.stderr, mail_user.password)
    assert site.tickets() == [] and smtp_sink.messages == []
    assert dovecot.flags(mail_user.name, uid) == frozenset(), "the mail was not touched"

    site.env["MAILBOT_CA_FILE"] = str(dovecot.ca_file)
    site.mailbot("poll", "--once")
    assert [t["reference"] for t in site.tickets()] == ["VISI-1"]
    assert len(smtp_sink.wait_for(1)) == 1


def test_starttls_asked_for_and_not_offered_sends_nothing_in_clear(tmp_path, dovecot, mail_user):
    with SmtpSink(auth=(SMTP_USER, SMTP_PASSWORD)) as plain:  # no STARTTLS offered at all
        site = make_site(
            tmp_path,
            {"VISI": {"address": VISI, "mailbox": mail_user.url()}},
            smtp_url=plain.url_for(starttls=True),
        )
        site.add_account(DANA, "VISI")
        dovecot.append(mail_user.name, write_mail(DANA, VISI, "Licence", "Where is my licence?"))
        result = site.mailbot("poll", "--once", expect=None)
        assert plain.messages == [] and plain.connections == 0, "no MAIL, no AUTH over plain text"
    assert "STARTTLS" in result.stderr
    assert_no_secret(result.output + result.stderr, SMTP_PASSWORD)
    # The acknowledgement is not lost: it waits in the outbox for a server that does TLS.
    [ticket] = site.tickets()
    assert any(m["direction"] == "out" for m in site.ticket(ticket["reference"])["messages"])
