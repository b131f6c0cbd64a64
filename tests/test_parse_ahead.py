"""Parsing ahead in a helper process gives what parsing here gives, mail for mail, quarantine
reasons included; and a helper that dies costs nothing but its speed."""

from __future__ import annotations

import logging
import os
import signal

from mailbot.errors import QuarantineError
from mailbot.parse import ParseLimits, parse_mail
from mailbot.parse_ahead import ParseAhead
from mailbot.sources.base import FetchedMail
from tests.mails import write_mail

LIMITS = ParseLimits(max_bytes=25 * 1024 * 1024)


def _mails() -> list[FetchedMail]:
    raws = [write_mail(f"customer{n}@example.com", "support@example.com", f"Printer {n} jams — ça bloque",
                       f"Tray {n} is stuck.\n\n-- \nCustomer {n}\n") for n in range(24)]
    raws[5] = b"\x00\x01\x02 not a mail at all"
    raws[9] = b""
    return [FetchedMail("test", 1, str(n + 1), raw) for n, raw in enumerate(raws)]


def _here(mail: FetchedMail) -> object:
    try:
        return parse_mail(mail.raw, LIMITS)
    except QuarantineError as exc:
        return ("quarantined", exc.reason)


def _ahead(ahead: ParseAhead, mail: FetchedMail) -> object:
    try:
        return ahead.parse(mail)
    except QuarantineError as exc:
        return ("quarantined", exc.reason)


def test_the_helper_parses_each_mail_as_it_would_be_parsed_here():
    mails = _mails()
    ahead = ParseAhead(LIMITS)
    try:
        ahead.submit(mails)
        results = [_ahead(ahead, mail) for mail in mails]
    finally:
        ahead.close()
    assert results == [_here(mail) for mail in mails]
    assert results[5] == ("quarantined", "not a mail: no header")
    assert results[9] == ("quarantined", "empty mail")
    assert results[0].subject == "Printer 0 jams — ça bloque"


def test_a_helper_that_dies_leaves_the_parsing_here(caplog):
    mails = _mails()
    ahead = ParseAhead(LIMITS)
    try:
        ahead.submit(mails[:1])
        assert ahead.parse(mails[0]).subject == "Printer 0 jams — ça bloque"  # the helper is up
        helpers = list(ahead._pool._processes)  # noqa: SLF001 - killing it is the point
        assert helpers
        for pid in helpers:
            os.kill(pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="mailbot.parse_ahead"):
            ahead.submit(mails[1:])
            results = [_ahead(ahead, mail) for mail in mails[1:]]
    finally:
        ahead.close()
    assert results == [_here(mail) for mail in mails[1:]]
    assert "parsing here for the rest of the pass" in caplog.text


def test_a_big_mail_is_parsed_here():
    log = "2026-03-02 10:00:01 ERROR export aborted\n" * 60_000  # 2.4 MB
    big = FetchedMail("test", 1, "1", write_mail("a@example.com", "support@example.com", "Log", log))
    ahead = ParseAhead(LIMITS)
    try:
        ahead.submit([big])
        assert ahead._pool is None, "no helper started for a mail bigger than MAX_BYTES"  # noqa: SLF001
        assert ahead.parse(big) == parse_mail(big.raw, LIMITS)
    finally:
        ahead.close()
