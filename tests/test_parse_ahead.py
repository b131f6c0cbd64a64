"""Preparing ahead in a helper process gives what preparing here gives, mail for mail: the same
raw file on disk, the same message (its reply text already worked out), the same quarantine
reasons; and a helper that dies costs nothing but its speed."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.inbound.parse import ParseLimits
from mailbot.inbound.prepare import KeptMail, prepare_mail
from mailbot.service.parse_ahead import ParseAhead
from mailbot.sources.base import FetchedMail
from mailbot.store.files import Store
from tests.helpers.mails import write_mail

LIMITS = ParseLimits(max_bytes=25 * 1024 * 1024)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


def _mails() -> list[FetchedMail]:
    raws = [
        write_mail(
            f"customer{n}@example.com",
            "support@example.com",
            f"Re: [VISI-{n}] Printer jams — ça bloque",
            f"Tray {n} is stuck.\n\nOn Mon, 2 Mar 2026, Support wrote:\n> Which tray?\n",
        )
        for n in range(24)
    ]
    raws[5] = b"\x00\x01\x02 not a mail at all"
    raws[9] = b""
    return [FetchedMail("test", 1, str(n + 1), raw) for n, raw in enumerate(raws)]


def _prepared_ahead(ahead: ParseAhead, mails: list[FetchedMail]) -> list[KeptMail]:
    try:
        ahead.submit(mails)
        return [ahead.prepare(mail) for mail in mails]
    finally:
        ahead.close()


def test_the_helper_prepares_each_mail_as_it_would_be_prepared_here(store):
    mails = _mails()
    results = _prepared_ahead(ParseAhead(store, LIMITS), mails)
    here = [prepare_mail(store, mail.raw, LIMITS) for mail in mails]  # same store: same files
    assert results == here
    assert (results[5].message, results[5].reason) == (None, "not a mail: no header")
    assert (results[9].message, results[9].reason) == (None, "empty mail")
    first = results[0]
    assert first.message.subject == "Re: [VISI-0] Printer jams — ça bloque"
    assert Path(first.raw_path).read_bytes() == mails[0].raw  # kept before the mail is handled
    assert "reply_text" in vars(first.message), "the reply text came back worked out"
    assert first.message.reply_text == "Tray 0 is stuck."


def test_a_helper_that_dies_leaves_the_work_here(store, caplog):
    mails = _mails()
    ahead = ParseAhead(store, LIMITS)
    try:
        ahead.submit(mails[:1])
        assert ahead.prepare(mails[0]).message.subject.startswith("Re: [VISI-0]")  # the helper is up
        helpers = list(ahead._pool._processes)  # noqa: SLF001 - killing it is the point
        assert helpers
        for pid in helpers:
            os.kill(pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="mailbot.service.parse_ahead"):
            ahead.submit(mails[1:])
            results = [ahead.prepare(mail) for mail in mails[1:]]
    finally:
        ahead.close()
    assert results == [prepare_mail(store, mail.raw, LIMITS) for mail in mails[1:]]
    assert "preparing it here for the rest of the pass" in caplog.text


def test_a_big_mail_is_prepared_here(store):
    log = "2026-03-02 10:00:01 ERROR export aborted\n" * 60_000  # 2.4 MB
    big = FetchedMail("test", 1, "1", write_mail("a@example.com", "support@example.com", "Log", log))
    ahead = ParseAhead(store, LIMITS)
    try:
        ahead.submit([big])
        assert ahead._pool is None, "no helper started for a mail bigger than MAX_BYTES"  # noqa: SLF001
        assert ahead.prepare(big) == prepare_mail(store, big.raw, LIMITS)
    finally:
        ahead.close()


def test_the_helper_loads_the_parser_and_the_store_but_not_the_ticket_domain():
    """The helper and the forkserver that starts it import `mailbot.parse_ahead`: what it pulls in
    is held twice more in memory during a backlog pass."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, mailbot.service.parse_ahead; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for heavy in ("peewee", "jinja2", "mailbot.store.models", "mailbot.desk", "mailbot.service.ingest"):
        assert f"'{heavy}'" not in loaded, f"{heavy} is loaded by the helper"
