"""A product's admin breaks an override template. A customer writes in all the same: the ticket
is opened and committed, the acknowledgement waits in the outbox with the file and line that
broke it, the admin gets one alert, nothing is quarantined. The admin fixes the template, queues
the mail again, and the customer gets exactly one acknowledgement. `mailbot check` finds the
broken file before any customer does.

Everything runs as the admin would: `mailbot poll --once` as its own process on a real Maildir,
mail out through the real SMTP sink."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.mails import write_mail
from tests.helpers.site import Site, make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"
ADMIN = "admin@ops.test"

# Each breaks the acknowledgement, and names the line a reader should look at (None: no line).
BROKEN = {
    "syntax error": (
        "{% block subject %}[{{ ticket.reference }}] Thanks{% endblock %}\n"
        "{% block body %}\n"
        "Hello {{ recipient.name }},\n"
        "{% if ticket.priority == 'high' %}\n"
        "We are on it.\n"
        "{% endblock %}\n",
        "ticket_opened.txt:6",
    ),
    "missing block": (
        "{% block subject %}[{{ ticket.reference }}] Thanks{% endblock %}\nWe have your mail.\n",
        "ticket_opened.txt: has no {% block body %}",
    ),
}
FIXED = (
    "{% block subject %}[{{ ticket.reference }}] We have your mail{% endblock %}\n"
    "{% block body %}\n"
    "{{ reply_marker }}\n"
    "Hello {{ recipient.name }}, your ticket is {{ ticket.reference }}.\n"
    "{% endblock %}\n"
)


@pytest.fixture
def site(tmp_path, smtp_sink) -> Site:
    inbox = tmp_path / "inbox"
    for folder in ("new", "cur", "tmp"):
        (inbox / folder).mkdir(parents=True)
    (tmp_path / "visi-templates" / "en").mkdir(parents=True)
    site = make_site(
        tmp_path,
        {
            "VISI": {
                "address": VISI,
                "mailbox": f"maildir://{inbox}",
                "templates": str(tmp_path / "visi-templates"),
            }
        },
        smtp_url=smtp_sink.url,
        alert_address=ADMIN,
    )
    site.add_account(DANA, "VISI", name="Dana Customer")
    site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
    return site


def override(site: Site, text: str) -> Path:
    path = site.root / "visi-templates" / "en" / "ticket_opened.txt"
    path.write_text(text)
    return path


def deliver(site: Site, raw: bytes, name: str) -> None:
    (site.root / "inbox" / "tmp" / name).write_bytes(raw)
    os.rename(site.root / "inbox" / "tmp" / name, site.root / "inbox" / "new" / name)


def poll_once(site: Site) -> None:
    """`mailbot poll --once` as its own process, as cron runs it."""
    site.write_env()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    command = [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "poll", "--once"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def mails_to(sink, address: str) -> list:
    return [m for m in sink.messages if address in m.rcpt_tos]


@pytest.mark.parametrize("how", ["by id", "all"])
@pytest.mark.parametrize("fault", sorted(BROKEN))
def test_a_broken_template_never_costs_the_customer_their_ticket(site, smtp_sink, fault, how):
    text, where = BROKEN[fault]
    path = override(site, text)
    deliver(
        site,
        write_mail(
            f"Dana Customer <{DANA}>",
            VISI,
            "Export stops halfway",
            "Since the update the export stops halfway.",
        ),
        "1.dana",
    )

    poll_once(site)

    [ticket] = site.tickets()  # read by another process: committed
    assert ticket["reference"] == "VISI-1" and ticket["requester"] == DANA
    assert site.query("SELECT outcome, count(*) FROM seen GROUP BY outcome") == [("ticket", 1)]
    assert not any((site.data_dir / "quarantine").glob("**/*.*"))
    [failed] = site.json("outbox", "list", "--failed")
    assert (failed["status"], failed["template"], failed["recipient"]) == ("failed", "ticket_opened", DANA)
    assert failed["ticket"] == "VISI-1" and failed["next_attempt_at"] is None
    assert f"{path.parent}/{where}" in failed["last_error"], failed["last_error"]
    listing = site.mailbot("outbox", "list").stdout
    assert f"{failed['id']:<6} failed" in listing and where in listing

    assert mails_to(smtp_sink, DANA) == []
    assert len(mails_to(smtp_sink, ERIN)) == 1  # the engineers' mail uses the default template
    [alert] = mails_to(smtp_sink, ADMIN)
    assert "could not be rendered" in alert.message["Subject"] and "VISI-1" in alert.message["Subject"]
    assert where in alert.message.get_body(("plain",)).get_content()

    poll_once(site)  # a failed mail is not tried again by itself, and not alerted again
    assert [row["id"] for row in site.json("outbox", "list", "--failed")] == [failed["id"]]
    assert len(mails_to(smtp_sink, ADMIN)) == 1 and mails_to(smtp_sink, DANA) == []

    override(site, FIXED)
    retried = site.mailbot("outbox", "retry", *([str(failed["id"])] if how == "by id" else ["--all"]))
    assert "1 mail(s) queued again" in retried.stdout
    assert site.json("outbox", "list", "--failed") == []
    poll_once(site)
    poll_once(site)

    [ack] = mails_to(smtp_sink, DANA)
    assert ack.message["Subject"] == "[VISI-1] We have your mail"
    assert ack.message["Message-ID"] == f"<{failed['message_id']}>"  # decided when queued
    assert "Hello Dana Customer, your ticket is VISI-1." in ack.message.get_body(("plain",)).get_content()
    assert site.json("outbox", "list") == []
    out = [m for m in site.ticket("VISI-1")["messages"] if m["direction"] == "out"]
    assert [m["text"] for m in out] == [ack.message.get_body(("plain",)).get_content().replace("\r\n", "\n")]
    assert len(mails_to(smtp_sink, ADMIN)) == 1


def test_retry_refuses_rows_that_did_not_fail(site, smtp_sink):
    deliver(site, write_mail(DANA, VISI, "Export stops halfway", "It stops."), "1.dana")
    poll_once(site)
    [(sent_id,)] = site.query("SELECT id FROM outbox WHERE recipient = 'dana@customer.test'")
    assert "is sent" in site.mailbot("outbox", "retry", str(sent_id), expect=65).output
    assert "no outbox row 999" in site.mailbot("outbox", "retry", "999", expect=65).output
    assert site.mailbot("outbox", "retry", expect=64).exit_code == 64  # neither ids nor --all: usage
    assert len(mails_to(smtp_sink, DANA)) == 1


@pytest.mark.parametrize("fault", sorted(BROKEN))
def test_check_names_the_broken_file_and_line(site, fault):
    text, where = BROKEN[fault]
    path = override(site, text)
    result = site.mailbot("check", expect=78)
    assert f"{path.parent}/{where}" in result.output, result.output
    assert "FAIL template ticket_opened (en, VISI)" in result.output

    override(site, FIXED)
    assert "ok   templates" in site.mailbot("check").output


def test_check_finds_a_broken_default_layout_and_a_broken_dutch_override(site, tmp_path):
    (site.root / "visi-templates" / "nl").mkdir()
    (site.root / "visi-templates" / "nl" / "_layout.html").write_text(
        "<html>\n<body>\n{% block content %}{% endblock %\n</body></html>\n"
    )
    result = site.mailbot("check", expect=78)
    assert f"{site.root}/visi-templates/nl/_layout.html:3" in result.output, result.output
    assert "(nl, VISI)" in result.output and "(en, VISI)" not in result.output


def test_the_running_daemon_sends_the_mail_once_the_template_is_fixed(site, smtp_sink):
    """No restart needed: the daemon reads the fixed file when it renders the mail again."""
    override(site, BROKEN["missing block"][0])  # compiles, so it would stay cached if kept
    site.env.update(MAILBOT_POLL_INTERVAL="1", MAILBOT_OUTBOX_INTERVAL="1")
    site.write_env()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    with (site.root / "mailbot.log").open("ab") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deliver(site, write_mail(DANA, VISI, "Export stops halfway", "It stops."), "1.dana")
        smtp_sink.wait_for(2, timeout=60)  # the engineer's mail and the alert
        wait_until(lambda: site.query("SELECT count(*) FROM outbox WHERE status = 'failed'") == [(1,)])
        override(site, FIXED)
        site.mailbot("outbox", "retry", "--all")
        smtp_sink.wait_for(3, timeout=60)
        wait_until(lambda: site.query("SELECT count(*) FROM outbox WHERE status != 'sent'") == [(0,)])
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    [ack] = mails_to(smtp_sink, DANA)
    assert ack.message["Subject"] == "[VISI-1] We have your mail"
    assert len(mails_to(smtp_sink, ADMIN)) == 1 and len(smtp_sink.messages) == 3


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.2)
