"""Shared fixtures: the real servers (one Dovecot per session, a fresh user and SMTP sink per
test) and the real-world mail corpus. The servers themselves live in tests/servers.py."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import DOVECOT_BINARY, INSTALL_HINT, Dovecot, make_workdir, remove_workdir
from tests.smtp_sink import SmtpSink

REPO = Path(__file__).resolve().parents[1]

# -- servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot for the whole session. Missing Dovecot fails (never skips) the tests that
    need it, saying what to install."""
    if not DOVECOT_BINARY.exists():
        pytest.fail(INSTALL_HINT.format(binary=DOVECOT_BINARY), pytrace=False)
    workdir = make_workdir()
    try:
        with Dovecot(workdir) as server:
            yield server
    finally:
        remove_workdir(workdir)


@dataclass(frozen=True)
class MailUser:
    """A Dovecot user of one test, with its own INBOX."""

    name: str
    password: str
    dovecot: Dovecot

    def url(self, tls: str = "none", folder: str = "INBOX") -> str:
        """mailbot's mailbox URL: tls is "none", "starttls" or "imaps"."""
        return self.dovecot.imap_url(self.name, tls=tls, folder=folder)


_user_numbers = itertools.count(1)


@pytest.fixture
def mail_user(dovecot: Dovecot) -> MailUser:
    """A fresh user per test. The password has URL-special characters, so every test also
    checks that mailbox URLs are decoded."""
    name = f"user{next(_user_numbers)}-{secrets.token_hex(3)}"
    password = f"pw/{secrets.token_hex(6)}@%?"
    dovecot.add_user(name, password)
    return MailUser(name, password, dovecot)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP server without AUTH that records every message (see SmtpSink for faults)."""
    with SmtpSink() as sink:
        yield sink


# -- data -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The real-world mail corpus: $MAILBOT_CORPUS, else <repo>/../shared/corpus."""
    path = Path(os.environ.get("MAILBOT_CORPUS") or REPO.parent / "shared" / "corpus")
    if not path.is_dir():
        pytest.skip(f"real-world corpus not found at {path}: set MAILBOT_CORPUS to its folder")
    return path
