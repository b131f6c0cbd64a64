"""The test harness itself: if these fail, the integration tests built on it mean nothing."""

from __future__ import annotations

import os
import smtplib
import socket

import pytest

from tests.helpers.servers import Dovecot, SilentServer, make_workdir, remove_workdir
from tests.helpers.smtp_sink import SmtpSink

pytestmark = pytest.mark.servers

MAIL = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\nHi there.\r\n"


def test_appended_mail_is_listed_with_its_flags(dovecot, mail_user):
    first = dovecot.append(mail_user.name, MAIL)
    second = dovecot.append(mail_user.name, MAIL, flags=[b"\\Seen"])
    assert dovecot.uids(mail_user.name) == [first, second]
    assert second > first
    assert dovecot.flags(mail_user.name, first) == frozenset()
    assert dovecot.flags(mail_user.name, second) == {"\\Seen"}


def test_each_user_has_an_own_inbox(dovecot, mail_user):
    dovecot.add_user("neighbour-" + mail_user.name, "other")
    dovecot.append(mail_user.name, MAIL)
    assert dovecot.uids("neighbour-" + mail_user.name) == []
    assert dovecot.uids(mail_user.name, "Nowhere") == []


def test_urls_name_the_right_ports(dovecot, mail_user):
    assert mail_user.url().startswith(f"imap://{mail_user.name}:pw%2F")
    assert mail_user.url().endswith(f"@127.0.0.1:{dovecot.imap_port}/INBOX")
    assert mail_user.url("starttls").endswith("/INBOX?starttls=true")
    assert mail_user.url("imaps").startswith("imaps://")
    assert f":{dovecot.imaps_port}/" in mail_user.url("imaps")


def test_imaps_port_speaks_tls_with_the_test_ca(dovecot):
    context = dovecot.client_context()
    with socket.create_connection((dovecot.host, dovecot.imaps_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=dovecot.host) as tls:
            assert tls.recv(100).startswith(b"* OK")


def test_restart_keeps_mail_and_users():
    workdir = make_workdir()
    try:
        with Dovecot(workdir) as server:
            server.add_user("keeper", "secret")
            uid = server.append("keeper", MAIL, folder="Archive")
            pid = server.pid
            server.restart()
            assert server.pid != pid
            assert server.uids("keeper", "Archive") == [uid]
        with pytest.raises(ProcessLookupError):  # nothing of it is left behind
            os.killpg(pid, 0)
    finally:
        remove_workdir(workdir)


def test_a_workdir_the_dovecot_account_cannot_reach_is_refused_clearly(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root makes Dovecot drop to another account")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(ValueError, match="cannot reach"):
        Dovecot(private / "dovecot")


def test_smtp_sink_is_exported_here_too():
    from tests.helpers.servers import SmtpSink as exported

    assert exported is SmtpSink


def test_capabilities_can_be_overridden():
    workdir = make_workdir()
    try:
        with Dovecot(workdir, capabilities="IMAP4rev1 UIDPLUS") as server:
            server.add_user("plain", "secret")
            with server.client("plain") as imap:
                assert not imap.has_capability("MOVE")
                assert not imap.has_capability("IDLE")
                assert imap.has_capability("UIDPLUS")
    finally:
        remove_workdir(workdir)


def test_sink_records_envelope_raw_bytes_and_parsed_message(smtp_sink):
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        client.sendmail("a@example.test", ["b@example.test", "c@example.test"], MAIL)
    [mail] = smtp_sink.wait_for(1)
    assert mail.mail_from == "a@example.test"
    assert mail.rcpt_tos == ["b@example.test", "c@example.test"]
    assert mail.raw == MAIL
    assert mail.message["Subject"] == "hello"
    assert mail.login is None and not mail.tls
    assert smtp_sink.connections == 1


def test_sink_faults_fire_as_often_as_asked(smtp_sink):
    smtp_sink.fail_next(451, "4.7.1 try later", times=2)
    smtp_sink.fail_next(550, "5.1.1 no such user", stage="rcpt", recipient="x@example.test")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPSenderRefused):
                client.sendmail("a@example.test", ["b@example.test"], MAIL)
            client.rset()
        refused = client.sendmail("a@example.test", ["x@example.test", "b@example.test"], MAIL)
    assert refused == {"x@example.test": (550, b"5.1.1 no such user")}
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [["b@example.test"]]


def test_sink_drop_after_data_and_down_and_up_again(smtp_sink):
    smtp_sink.drop_after_data()
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.sendmail("a@example.test", ["b@example.test"], MAIL)
    assert smtp_sink.messages == []
    smtp_sink.stop()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5)
    smtp_sink.start()
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
        client.sendmail("a@example.test", ["b@example.test"], MAIL)
    smtp_sink.wait_for(1)


def test_sink_wait_for_says_what_it_got(smtp_sink):
    with pytest.raises(AssertionError, match=r"expected 1 message\(s\) within 0.1 s, got \[\]"):
        smtp_sink.wait_for(1, timeout=0.1)


def test_sink_with_starttls_and_auth():
    with SmtpSink("starttls", auth=("robot", "s3cret")) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.ehlo()
            with pytest.raises(smtplib.SMTPSenderRefused):  # STARTTLS comes first
                client.sendmail("a@example.test", ["b@example.test"], MAIL)
            client.starttls(context=sink.client_context())
            client.login("robot", "s3cret")
            client.sendmail("a@example.test", ["b@example.test"], MAIL)
        [mail] = sink.wait_for(1)
    assert mail.login == "robot" and mail.tls


def test_silent_server_accepts_and_never_answers():
    with SilentServer() as silent:
        with socket.create_connection((silent.host, silent.port), timeout=5) as conn:
            conn.settimeout(0.3)
            with pytest.raises(TimeoutError):
                conn.recv(1)
