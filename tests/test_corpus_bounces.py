"""sisimai's real bounces, vacation replies and abuse reports through mailbot's ingest, on a
product open to anyone, as its mailbox would get them: every one is recognised as automatic,
none opens a ticket or makes an account, and not one outgoing mail is written."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mailbot.config import load_settings
from mailbot.context import make_desk
from mailbot.service.daemon import ingest_files
from mailbot.store.db import close_database, open_database
from mailbot.store.files import sha256_hex
from mailbot.store.migrations import migrate
from mailbot.store.models import Account, Outbox, Seen, Ticket

pytestmark = pytest.mark.corpus


def kind_of(expectation: dict) -> str:
    if expectation["recipients"][0]["reason"] == "vacation":
        return "vacation"
    return "abuse report" if expectation["engine"] == "ARF" else "bounce"


def test_no_sisimai_bounce_or_vacation_reply_opens_a_ticket_or_is_answered(tmp_path, corpus_dir):
    folder = corpus_dir / "sisimai"
    expected = json.loads((folder / "EXPECTED.sisimai.dev.json").read_text(encoding="utf-8"))
    files = [folder / name for name in sorted(expected)]
    settings = load_settings(
        {
            "MAILBOT_DATA_DIR": str(tmp_path),
            "MAILBOT_PRODUCTS": "CORP",
            "MAILBOT_PRODUCT_CORP_ADDRESS": "support@corpus.test",
            "MAILBOT_PRODUCT_CORP_UNKNOWN_SENDERS": "open",
            # These mails are years old: without an early cut-over they would be recorded in silence
            # anyway, which would prove nothing about recognising them.
            "MAILBOT_ACK_CUTOVER": "1990-01-01",
        }
    )
    migrate(open_database(settings.database_url))
    try:
        lines = ingest_files(make_desk(settings), settings.product("CORP"), files, stdin=None)  # type: ignore[arg-type]
        rows = list(Seen.select())
        kinds = Counter(kind_of(expected[name]) for name in expected)
        reasons = Counter(
            row.reason.split(":")[0] if row.reason.startswith("bounce") else row.reason for row in rows
        )
        print(f"\nsisimai: {len(files)} mails ({dict(kinds)}) -> {dict(Counter(r.outcome for r in rows))}")
        print("by reason:", dict(reasons.most_common()))
        assert len(files) > 300 and len(lines) == len(files)
        assert len(rows) == len({sha256_hex(path.read_bytes()) for path in files}), "one ledger row per mail"
        not_automatic = [line for line in lines if " ignored " not in f" {line.split(': ', 1)[1]} "]
        assert not_automatic == []
        assert all(r.reason.startswith(("automatic:", "bounce", "own-loop")) for r in rows), reasons
        # A vacation reply says nothing about the address: it must never count as a bounce.
        by_key = {row.uid: row for row in rows}
        vacations = [
            by_key[sha256_hex(path.read_bytes())]
            for path in files
            if expected[str(path.relative_to(folder))]["recipients"][0]["reason"] == "vacation"
        ]
        assert vacations and not [row.reason for row in vacations if row.reason.startswith("bounce")]
        assert Ticket.select().count() == 0
        assert Account.select().count() == 0, "a robot gets no account"
        assert Outbox.select().count() == 0, "nothing is answered"
    finally:
        close_database()
