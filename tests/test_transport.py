"""Outgoing mail through a real SMTP server (aiosmtpd) and into a local Maildir: what gets
through, what is refused for good, and what must be tried again later."""

from __future__ import annotations

import ssl
import time

import pytest
import trustme

from mailbot.errors import ConfigError, PermanentError, TransientError
from mailbot.transports import Delivery, MaildirTransport, SmtpTransport, transport_from_url
from tests.helpers.servers import SilentServer
from tests.helpers.smtp_sink import SmtpSink

pytestmark = pytest.mark.servers

SENDER = "visi.support@produsoft.test"
DANA, ERIN, FRED = "dana@customer.test", "erin@produsoft.test", "fred@customer.test"


def reply(subject: str = "Re: [VISI-1] Export fails") -> bytes:
    return (
        f"From: VISI Support <{SENDER}>\r\nTo: {DANA}\r\nSubject: {subject}\r\n"
        "Message-ID: <visi-1.2@produsoft.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        "\r\nWe are on it. Caf\u00e9 later?\r\n.leading dot survives\r\n"
    ).encode()


_open: list[SmtpTransport] = []


@pytest.fixture(autouse=True)
def _close_transports():
    """Every transport a test makes is closed afterwards, as the outbox does."""
    yield
    while _open:
        _open.pop().close()


def transport_for(sink: SmtpSink, url: str | None = None, **kwargs) -> SmtpTransport:
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("ssl_context", sink.client_context())
    transport = SmtpTransport(url or sink.url, **kwargs)
    _open.append(transport)
    return transport


@pytest.mark.parametrize("tls", [None, "starttls", "implicit"])
def test_a_reply_goes_out_byte_for_byte_with_auth(tls):
    with SmtpSink(tls, auth=("desk", "p@ss/word")) as sink:
        delivery = transport_for(sink).send(SENDER, [DANA, ERIN], reply())
        [mail] = sink.wait_for(1)
    assert delivery == Delivery(accepted=(DANA, ERIN), refused={})
    assert mail.mail_from == SENDER and mail.rcpt_tos == [DANA, ERIN]
    assert mail.raw == reply()
    assert mail.login == "desk"
    assert mail.tls is (tls is not None)


def test_one_connection_serves_many_mails_and_a_lost_one_is_replaced(smtp_sink):
    transport = transport_for(smtp_sink)
    for n in range(3):
        transport.send(SENDER, [DANA], reply(f"mail {n}"))
    assert smtp_sink.connections == 1
    smtp_sink.stop()  # the server restarts between two sends
    smtp_sink.start()
    transport.send(SENDER, [DANA], reply("after restart"))
    assert len(smtp_sink.wait_for(4)) == 4
    assert smtp_sink.connections == 2


def test_an_address_with_non_ascii_letters_goes_out_with_smtputf8(smtp_sink):
    assert transport_for(smtp_sink).send(SENDER, ["zoë@exämple.test"], reply()).accepted
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ["zoë@exämple.test"]


def test_bare_newlines_go_out_as_crlf(smtp_sink):
    transport_for(smtp_sink).send(SENDER, [DANA], b"Subject: unix\nFrom: a@b.test\n\nline one\nline two\n")
    [mail] = smtp_sink.wait_for(1)
    assert mail.raw == b"Subject: unix\r\nFrom: a@b.test\r\n\r\nline one\r\nline two\r\n"


def test_a_certificate_from_another_ca_is_refused():
    with SmtpSink("implicit") as sink:
        stranger = ssl.create_default_context()
        trustme.CA().configure_trust(stranger)
        with pytest.raises(TransientError, match="certificate not trusted"):
            transport_for(sink, ssl_context=stranger).send(SENDER, [DANA], reply())
    assert sink.messages == []


def test_starttls_required_but_not_offered_sends_nothing(smtp_sink):
    transport = transport_for(smtp_sink, smtp_sink.url_for(starttls=True))
    with pytest.raises(TransientError, match="STARTTLS required but not offered"):
        transport.send(SENDER, [DANA], reply())
    assert smtp_sink.messages == [] and smtp_sink.connections == 0


def test_greylisting_451_is_transient_and_the_retry_works(smtp_sink):
    smtp_sink.fail_next(451, "4.7.1 Greylisted, try again later")
    transport = transport_for(smtp_sink)
    with pytest.raises(TransientError, match="451 4.7.1 Greylisted"):
        transport.send(SENDER, [DANA], reply())
    assert transport.send(SENDER, [DANA], reply()).accepted == (DANA,)
    assert len(smtp_sink.wait_for(1)) == 1
    assert smtp_sink.connections == 1  # the connection survived the refusal (RSET)


@pytest.mark.parametrize("stage", ["mail", "data"])
def test_550_is_permanent_and_carries_the_code(smtp_sink, stage):
    smtp_sink.fail_next(550, "5.7.1 Message rejected as spam", stage=stage)
    with pytest.raises(PermanentError, match="550 5.7.1 Message rejected"):
        transport_for(smtp_sink).send(SENDER, [DANA], reply())
    assert smtp_sink.messages == []


def test_one_of_three_recipients_refused_is_reported_not_hidden(smtp_sink):
    smtp_sink.fail_next(550, "5.1.1 No such user", stage="rcpt", recipient=ERIN)
    delivery = transport_for(smtp_sink).send(SENDER, [DANA, ERIN, FRED], reply())
    assert delivery.accepted == (DANA, FRED)
    assert delivery.refused == {ERIN: "550 5.1.1 No such user"}
    assert smtp_sink.wait_for(1)[0].rcpt_tos == [DANA, FRED]


def test_every_recipient_refused_is_permanent(smtp_sink):
    smtp_sink.fail_next(550, "5.1.1 No such user", stage="rcpt", times=2)
    with pytest.raises(PermanentError, match="every recipient refused"):
        transport_for(smtp_sink).send(SENDER, [DANA, ERIN], reply())
    assert smtp_sink.messages == []


def test_a_4xx_for_one_recipient_defers_the_whole_send(smtp_sink):
    smtp_sink.fail_next(452, "4.2.2 Mailbox full", stage="rcpt", recipient=ERIN)
    with pytest.raises(TransientError, match="452 4.2.2"):
        transport_for(smtp_sink).send(SENDER, [DANA, ERIN], reply())
    assert smtp_sink.messages == []


def test_a_connection_lost_after_data_is_transient(smtp_sink):
    smtp_sink.drop_after_data()
    transport = transport_for(smtp_sink)
    with pytest.raises(TransientError, match="may have been delivered"):
        transport.send(SENDER, [DANA], reply())
    assert transport.send(SENDER, [DANA], reply()).accepted == (DANA,)  # reconnects


def test_a_server_that_is_down_is_transient(smtp_sink):
    smtp_sink.stop()
    with pytest.raises(TransientError, match="cannot connect"):
        transport_for(smtp_sink).send(SENDER, [DANA], reply())


def test_a_silent_server_times_out():
    with SilentServer() as silent:
        transport = SmtpTransport(
            f"smtp://127.0.0.1:{silent.port}", ssl_context=ssl.create_default_context(), timeout=0.5
        )
        _open.append(transport)
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out"):
            transport.send(SENDER, [DANA], reply())
        assert time.monotonic() - started < 10


def test_a_wrong_password_is_transient_and_not_repeated():
    with SmtpSink("starttls", auth=("desk", "right")) as sink:
        url = sink.url.replace(":right@", ":wrong-secret@")
        with pytest.raises(TransientError, match="authentication failed") as caught:
            transport_for(sink, url).send(SENDER, [DANA], reply())
    assert "wrong-secret" not in str(caught.value)


def test_maildir_transport_writes_one_file_per_mail_into_new(tmp_path):
    outbox = tmp_path / "outbox"
    transport = MaildirTransport(outbox)
    first = transport.send(SENDER, [DANA, ERIN], reply("one"))
    transport.send(SENDER, [DANA], reply("two"))
    assert first == Delivery(accepted=(DANA, ERIN), refused={})
    files = sorted((outbox / "new").iterdir())
    assert sorted(f.read_bytes() for f in files) == sorted([reply("one"), reply("two")])
    assert list((outbox / "tmp").iterdir()) == []


def test_transport_from_url_picks_by_scheme(tmp_path):
    context = ssl.create_default_context()
    kwargs = {"ssl_context": context, "timeout": 5}
    assert isinstance(transport_from_url(None, tmp_path, **kwargs), MaildirTransport)
    assert isinstance(transport_from_url("", tmp_path, **kwargs), MaildirTransport)
    smtp = transport_from_url("smtps://u:secret@mail.test:465", tmp_path, **kwargs)
    assert isinstance(smtp, SmtpTransport) and "secret" not in smtp.name
    assert isinstance(transport_from_url("smtp://mail.test", tmp_path, **kwargs), SmtpTransport)
    for bad in (
        "lmtp://mail.test",
        "smtp://mail.test:x",
        "smtp://mail.test?tls=1",
        "smtps://mail.test?starttls=true",
    ):
        with pytest.raises(ConfigError, match="MAILBOT_SMTP_URL"):
            transport_from_url(bad, tmp_path, **kwargs)
