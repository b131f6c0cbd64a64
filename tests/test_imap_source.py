"""ImapSource against a real Dovecot: what a support mailbox goes through. Mail arrives, is read
without being marked, is marked (or moved) only when mailbot says so, survives another client
expunging, a recreated mailbox, a server without MOVE, and servers that are wrong or silent."""

from __future__ import annotations

import logging
import ssl
import threading
import time
import traceback

import pytest
import trustme

from mailbot.errors import ConfigError, SourceUnavailable
from mailbot.sources import open_source
from mailbot.sources.base import Cursor
from mailbot.sources.imap import ImapSource
from tests.helpers.servers import Dovecot, SilentServer, make_workdir, remove_workdir

pytestmark = pytest.mark.servers


def mail(subject: str) -> bytes:
    return (
        f"From: Dana <dana@customer.test>\r\nTo: support@produsoft.test\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@customer.test>\r\n"
        f"\r\nPlease help with {subject}.\r\n"
    ).encode()


def source_for(user, tls="none", folder="INBOX", **kwargs) -> ImapSource:
    """An ImapSource for a `mail_user`, trusting the test CA."""
    return ImapSource(user.url(tls, folder), ssl_context=user.dovecot.client_context(), timeout=5, **kwargs)


@pytest.fixture(scope="module")
def limited_dovecot():
    """A Dovecot that advertises neither MOVE nor IDLE, but UIDPLUS."""
    workdir = make_workdir()
    try:
        with Dovecot(workdir, capabilities="IMAP4rev1 LITERAL+ UIDPLUS UNSELECT") as server:
            yield server
    finally:
        remove_workdir(workdir)


@pytest.fixture
def fresh_dovecot():
    """A Dovecot of this test alone, to restart or to run without TLS."""
    workdirs = []

    def start(**kwargs) -> Dovecot:
        workdirs.append(make_workdir())
        server = Dovecot(workdirs[-1], **kwargs)
        servers.append(server)
        server.start()
        return server

    servers: list[Dovecot] = []
    yield start
    for server in servers:
        server.stop()
    for workdir in workdirs:
        remove_workdir(workdir)


@pytest.mark.parametrize("tls", ["none", "starttls", "imaps"])
def test_new_mail_is_listed_fetched_and_acknowledged(dovecot, mail_user, tls):
    first = dovecot.append(mail_user.name, mail("export fails"))
    second = dovecot.append(mail_user.name, mail("licence expired"))
    with source_for(mail_user, tls) as source:
        pending = source.pending(Cursor())
        assert pending.keys == (str(first), str(second))
        assert pending.uidvalidity == dovecot.uidvalidity(mail_user.name)
        fetched = list(source.fetch(pending.keys))
        assert [m.raw for m in fetched] == [mail("export fails"), mail("licence expired")]
        assert fetched[0].uid == first and fetched[0].uidvalidity == pending.uidvalidity
        assert fetched[0].internal_date is not None and fetched[0].internal_date.tzinfo
        assert "pw/" not in fetched[0].mailbox and mail_user.name in fetched[0].mailbox
        source.acknowledge(fetched[0])
        assert source.pending(Cursor(pending.uidvalidity, first)).keys == (str(second),)
        assert source.pending(Cursor(pending.uidvalidity, second)).keys == ()
    assert dovecot.flags(mail_user.name, first) == {"\\Seen", "$MailbotDone"}
    assert dovecot.flags(mail_user.name, second) == frozenset()


def test_open_source_builds_an_imap_source_from_the_url(dovecot, mail_user):
    dovecot.append(mail_user.name, mail("via open_source"))
    source = open_source(mail_user.url("imaps"), ssl_context=dovecot.client_context(), timeout=5)
    with source:
        assert len(source.pending(Cursor()).keys) == 1
    assert source.name == f"imaps://{mail_user.name}@127.0.0.1:{dovecot.imaps_port}/INBOX"


@pytest.mark.parametrize("tls", ["starttls", "imaps"])
def test_a_certificate_from_another_ca_is_refused(dovecot, mail_user, tls):
    stranger = trustme.CA()
    context = ssl.create_default_context()
    stranger.configure_trust(context)
    source = ImapSource(mail_user.url(tls), ssl_context=context, timeout=5)
    with pytest.raises(SourceUnavailable, match="certificate not trusted"):
        source.open()


def test_starttls_required_but_not_offered_never_logs_in_in_clear(fresh_dovecot):
    server = fresh_dovecot(tls=False)
    server.add_user("careful", "secret")
    source = ImapSource(server.imap_url("careful", "starttls"), timeout=5)
    with pytest.raises(SourceUnavailable, match="STARTTLS required but not offered"):
        source.open()
    assert "user=<careful>" not in server.log_text()


def test_already_seen_mail_is_still_pending_and_fetching_sets_no_flag(dovecot, mail_user):
    read_elsewhere = dovecot.append(mail_user.name, mail("read on a phone"), flags=[b"\\Seen"])
    unread = dovecot.append(mail_user.name, mail("unread"))
    with source_for(mail_user) as source:
        keys = source.pending(Cursor()).keys
        assert keys == (str(read_elsewhere), str(unread))
        assert len(list(source.fetch(keys))) == 2
    assert dovecot.flags(mail_user.name, unread) == frozenset()


def test_mail_expunged_by_another_client_is_skipped_not_confused(dovecot, mail_user):
    uids = [dovecot.append(mail_user.name, mail(f"mail {n}")) for n in range(4)]
    with source_for(mail_user) as source:
        keys = source.pending(Cursor()).keys
        with dovecot.client(mail_user.name) as other:
            other.select_folder("INBOX")
            other.delete_messages([uids[0], uids[2]])
            other.expunge()
        fetched = list(source.fetch(keys))
    assert [m.uid for m in fetched] == [uids[1], uids[3]]
    assert [m.raw for m in fetched] == [mail("mail 1"), mail("mail 3")]


def test_a_recreated_mailbox_new_uidvalidity_returns_everything(dovecot, mail_user):
    dovecot.append(mail_user.name, mail("old one"), folder="Support")
    with source_for(mail_user, folder="Support") as source:
        before = source.pending(Cursor())
        [old] = source.fetch(before.keys)
        with dovecot.client(mail_user.name) as other:  # the admin restores the mailbox
            other.delete_folder("Support")
            other.create_folder("Support")
        restored = dovecot.append(mail_user.name, mail("restored"), folder="Support")
        after = source.pending(Cursor(before.uidvalidity, int(before.keys[-1])))
        assert after.uidvalidity != before.uidvalidity
        assert after.keys == (str(restored),)
        # The old UID now names another mail: acknowledging the old one must not touch it.
        assert old.uid == restored
        source.acknowledge(old)
    assert dovecot.flags(mail_user.name, restored, "Support") == frozenset()


def test_acknowledge_moves_into_the_processed_folder(dovecot, mail_user, caplog):
    uid = dovecot.append(mail_user.name, mail("to be filed"))
    caplog.set_level(logging.DEBUG, logger="imapclient")
    with source_for(mail_user, processed_folder="Processed") as source:
        [fetched] = source.fetch(source.pending(Cursor()).keys)
        source.acknowledge(fetched)
    assert dovecot.uids(mail_user.name) == []
    [moved] = dovecot.uids(mail_user.name, "Processed")
    assert dovecot.flags(mail_user.name, moved, "Processed") == {"\\Seen", "$MailbotDone"}
    assert f'UID MOVE {uid} "Processed"' in caplog.text  # imapclient's protocol log


def test_without_move_only_our_mail_is_expunged(limited_dovecot, caplog):
    server = limited_dovecot
    server.add_user("nomove", "secret")
    ours = server.append("nomove", mail("ours"))
    theirs = server.append("nomove", mail("someone else's trash"), flags=[b"\\Deleted"])
    caplog.set_level(logging.DEBUG, logger="imapclient")
    source = ImapSource(server.imap_url("nomove"), timeout=5, processed_folder="Done")
    with source:
        [fetched, _] = source.fetch(source.pending(Cursor()).keys)
        source.acknowledge(fetched)
    assert server.uids("nomove") == [theirs]
    assert server.flags("nomove", theirs) == {"\\Deleted"}
    assert len(server.uids("nomove", "Done")) == 1
    assert "UID MOVE" not in caplog.text  # imapclient's protocol log
    assert f"UID EXPUNGE {ours}'" in caplog.text


def test_without_move_or_uidplus_mail_is_only_flagged(fresh_dovecot):
    server = fresh_dovecot(capabilities="IMAP4rev1")
    server.add_user("oldserver", "secret")
    uid = server.append("oldserver", mail("stays put"))
    with ImapSource(server.imap_url("oldserver"), timeout=5, processed_folder="Done") as source:
        [fetched] = source.fetch(source.pending(Cursor()).keys)
        source.acknowledge(fetched)
    assert server.uids("oldserver") == [uid]
    assert server.flags("oldserver", uid) == {"\\Seen", "$MailbotDone"}


def test_idle_wakes_up_soon_after_new_mail_arrives(dovecot, mail_user):
    with source_for(mail_user, "imaps") as source:
        source.pending(Cursor())
        timer = threading.Timer(0.3, dovecot.append, (mail_user.name, mail("while idling")))
        timer.start()
        started = time.monotonic()
        try:
            assert source.wait_for_news(20) is True
        finally:
            timer.join()
        assert time.monotonic() - started < 10
        assert len(source.pending(Cursor()).keys) == 1


def test_idle_returns_false_when_nothing_comes(dovecot, mail_user):
    with source_for(mail_user) as source:
        started = time.monotonic()
        assert source.wait_for_news(0.5) is False
        assert time.monotonic() - started < 10
        assert source.pending(Cursor()).keys == ()  # the connection is still usable


def test_without_idle_wait_sleeps_and_says_maybe(limited_dovecot):
    limited_dovecot.add_user("noidle", "secret")
    with ImapSource(limited_dovecot.imap_url("noidle"), timeout=5) as source:
        assert source.wait_for_news(0.2) is True


def test_a_restarted_server_is_reported_then_reconnected(fresh_dovecot):
    server = fresh_dovecot()
    server.add_user("restart", "secret")
    server.append("restart", mail("before"))
    source = ImapSource(server.imap_url("restart"), timeout=5)
    with source:
        assert len(source.pending(Cursor()).keys) == 1
        server.restart()
        with pytest.raises(SourceUnavailable, match="restart@127.0.0.1"):
            source.pending(Cursor())
        assert len(source.pending(Cursor()).keys) == 1  # the next call connects again


def test_a_server_dying_during_idle_is_reported(fresh_dovecot):
    server = fresh_dovecot()
    server.add_user("idler", "secret")
    with ImapSource(server.imap_url("idler"), timeout=5) as source:
        threading.Timer(0.3, server.stop).start()
        with pytest.raises(SourceUnavailable):
            source.wait_for_news(20)


def test_a_silent_server_fails_within_the_timeout():
    with SilentServer() as silent:
        for scheme in ("imap", "imaps"):
            source = ImapSource(f"{scheme}://u:p@127.0.0.1:{silent.port}/INBOX", timeout=0.5)
            started = time.monotonic()
            with pytest.raises(SourceUnavailable, match="no answer within 0.5 s"):
                source.open()
            assert time.monotonic() - started < 10


def unreachable_errors(dovecot, mail_user) -> list[SourceUnavailable]:
    """What a mailbox with a wrong password, a closed port, or a silent server raises."""
    errors = []
    wrong = mail_user.url().replace("pw%2F", "wrong%2F")
    closed = mail_user.url().replace(f":{dovecot.imap_port}/", f":{_closed_port()}/")
    for url in (wrong, closed):
        with pytest.raises(SourceUnavailable) as caught:
            ImapSource(url, timeout=5).pending(Cursor())
        errors.append(caught.value)
    return errors


def _closed_port() -> int:
    with SilentServer() as silent:
        return silent.port


def test_errors_name_the_mailbox_and_never_the_password(dovecot, mail_user):
    login_failed, refused = unreachable_errors(dovecot, mail_user)
    assert "login failed" in str(login_failed)
    assert "refused" in str(refused).lower()
    secret = mail_user.password.split("/")[1]
    for error in (login_failed, refused):
        assert mail_user.name in str(error)
        text = "".join(traceback.format_exception(error))
        assert secret not in text and "wrong/" not in text


def test_bad_urls_are_configuration_errors():
    for url in (
        "imap://host/INBOX",
        "imap://u:p@host:nope/",
        "imaps://u:p@h/?starttls=true",
        "imap://u:p@h/?tls=yes",
    ):
        with pytest.raises(ConfigError) as caught:
            ImapSource(url)
        assert ":p@" not in str(caught.value)
