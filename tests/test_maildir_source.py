"""MaildirSource, the embedded default mailbox, and open_source choosing a source by URL."""

from __future__ import annotations

import os
import ssl
import threading
import time
from pathlib import Path

import pytest

from mailbot.errors import ConfigError
from mailbot.sources import open_source
from mailbot.sources.base import Cursor
from mailbot.sources.maildir import MaildirSource
from mailbot.transports.maildir import MaildirTransport


def deliver(maildir: Path, name: str, raw: bytes, age: float = 0) -> None:
    """Deliver the Maildir way (tmp/ then rename); `age` seconds in the past."""
    (maildir / "tmp" / name).write_bytes(raw)
    os.rename(maildir / "tmp" / name, maildir / "new" / name)
    stamp = time.time() - age
    os.utime(maildir / "new" / name, (stamp, stamp))


@pytest.fixture
def maildir(tmp_path) -> MaildirSource:
    source = MaildirSource(tmp_path / "visi")
    source.open()
    return source


def test_open_creates_the_maildir(tmp_path):
    MaildirSource(tmp_path / "a" / "b").open()
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["cur", "new", "tmp"]


def test_pending_lists_new_mail_oldest_first_and_fetch_reads_it(maildir):
    deliver(maildir.path, "200.second", b"Subject: second\r\n\r\n", age=10)
    deliver(maildir.path, "100.first", b"Subject: first\r\n\r\n", age=20)
    pending = maildir.pending(Cursor())
    assert pending.uidvalidity == 0
    assert pending.keys == ("100.first", "200.second")
    fetched = list(maildir.fetch(pending.keys))
    assert [m.raw for m in fetched] == [b"Subject: first\r\n\r\n", b"Subject: second\r\n\r\n"]
    assert fetched[0].mailbox == maildir.name and fetched[0].uid == 0
    assert fetched[0].internal_date.tzinfo is not None


def test_acknowledge_moves_the_mail_to_cur_as_seen(maildir):
    deliver(maildir.path, "1.mail", b"Subject: x\r\n\r\n")
    [mail] = maildir.fetch(maildir.pending(Cursor()).keys)
    maildir.acknowledge(mail)
    assert maildir.pending(Cursor()).keys == ()
    assert [p.name for p in (maildir.path / "cur").iterdir()] == ["1.mail:2,S"]
    maildir.acknowledge(mail)  # a second acknowledgement (after a crash) is harmless


def test_vanished_mail_is_skipped(maildir):
    deliver(maildir.path, "1.gone", b"x")
    deliver(maildir.path, "2.here", b"y")
    keys = maildir.pending(Cursor()).keys
    (maildir.path / "new" / "1.gone").unlink()
    assert [m.key for m in maildir.fetch(keys)] == ["2.here"]


def test_keys_cannot_escape_the_maildir(maildir):
    with pytest.raises(ValueError):
        list(maildir.fetch(["../../etc/passwd"]))


def test_wait_for_news_wakes_up_when_mail_arrives(maildir):
    assert maildir.wait_for_news(0.3) is False
    threading.Timer(0.2, deliver, (maildir.path, "1.late", b"x")).start()
    started = time.monotonic()
    assert maildir.wait_for_news(20) is True
    assert time.monotonic() - started < 10


def test_mail_written_by_the_maildir_transport_can_be_read_back(tmp_path):
    MaildirTransport(tmp_path / "box").send("a@x.test", ["b@x.test"], b"Subject: loop\r\n\r\n")
    source = MaildirSource(tmp_path / "box")
    source.open()
    [mail] = source.fetch(source.pending(Cursor()).keys)
    assert mail.raw == b"Subject: loop\r\n\r\n"


def test_open_source_chooses_by_scheme(tmp_path):
    kwargs = {"ssl_context": ssl.create_default_context(), "timeout": 5}
    source = open_source(f"maildir://{tmp_path}/box", **kwargs)
    assert isinstance(source, MaildirSource) and source.path == tmp_path / "box"
    imap = open_source("imaps://u:secret@mail.test/Support", processed_folder="Done", **kwargs)
    assert imap.name == "imaps://u@mail.test:993/Support" and imap.processed_folder == "Done"
    for bad in ("pop3://u:secret@mail.test/", "/var/mail/visi", "maildir://host/path"):
        with pytest.raises(ConfigError) as caught:
            open_source(bad, **kwargs)
        assert "secret" not in str(caught.value)


def test_a_move_cut_short_after_the_link_is_finished_without_a_second_copy(maildir):
    deliver(maildir.path, "1.mail", b"Subject: x\r\n\r\n")
    [mail] = maildir.fetch(maildir.pending(Cursor()).keys)
    os.link(maildir.path / "new" / "1.mail", maildir.path / "cur" / "1.mail:2,S")  # then the crash
    maildir.acknowledge(mail)
    assert maildir.pending(Cursor()).keys == ()
    assert [p.name for p in (maildir.path / "cur").iterdir()] == ["1.mail:2,S"]


def test_the_arrival_is_the_time_in_a_maildir_name_else_the_moment_of_reading(maildir):
    deliver(maildir.path, "1500000000.M1P2.host", b"x", age=10**9)
    deliver(maildir.path, "copied.eml", b"y", age=10**9)  # an mtime from 1986, as cp -p keeps it
    before = time.time()
    named, copied = sorted(maildir.fetch(maildir.pending(Cursor()).keys), key=lambda m: m.key)
    assert named.internal_date.timestamp() == 1500000000
    assert copied.internal_date.timestamp() >= before - 1
