"""An installation from before outbox drafts (schema version 2) is upgraded in place: the mail
it had queued, already rendered, still goes out exactly as it was, once; what it had sent stays
sent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailbot.store.migrations import STEPS
from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
SCHEMA_V2 = Path(__file__).resolve().parent / "fixtures" / "schema_v2.sql"
ROW = (
    "INSERT INTO outbox (message_id, ticket_id, product, template, recipient, envelope_from, data,"
    " automatic, status, attempts, next_attempt_at, last_error, created_at, sent_at)"
    " VALUES (?, NULL, 'VISI', 'ticket_opened', ?, ?, ?, 1, ?, ?, '2026-11-30 09:00:00', '',"
    " '2026-11-30 09:00:00', ?)"
)


def make_version_2_database(path: Path, waiting: bytes, sent: bytes) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    try:
        db.executescript(SCHEMA_V2.read_text())
        db.executemany(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, '2026-01-01 00:00:00')", [(1,), (2,)]
        )
        db.execute(ROW, ("waiting.0123456789abcdef@mailbot.test", DANA, VISI, waiting, "pending", 1, None))
        db.execute(
            ROW, ("sent.0123456789abcdef@mailbot.test", DANA, VISI, sent, "sent", 1, "2026-11-30 09:00:01")
        )
        db.commit()
    finally:
        db.close()


def shape(site, table: str) -> tuple[list, list]:
    columns = [(c[1], c[2], c[3], c[5]) for c in site.query(f'PRAGMA table_info("{table}")')]
    return columns, sorted((i[1], i[2]) for i in site.query(f'PRAGMA index_list("{table}")'))


@pytest.mark.sqlite_only("upgrade from a SQLite database at schema 2")
def test_mail_queued_before_the_upgrade_still_goes_out_once(tmp_path, smtp_sink):
    waiting = write_mail(
        VISI,
        DANA,
        "[VISI-7] Queued before the upgrade",
        "Rendered long ago.",
        message_id="waiting.0123456789abcdef@mailbot.test",
    )
    sent = write_mail(
        VISI,
        DANA,
        "[VISI-6] Sent before the upgrade",
        "Sent long ago.",
        message_id="sent.0123456789abcdef@mailbot.test",
    )
    make_version_2_database(tmp_path / "data" / "mailbot.db", waiting, sent)
    inbox = tmp_path / "inbox"
    site = make_site(
        tmp_path, {"VISI": {"address": VISI, "mailbox": f"maildir://{inbox}"}}, smtp_url=smtp_sink.url
    )
    (tmp_path / "fresh").mkdir()
    fresh = make_site(tmp_path / "fresh", {"VISI": {"address": VISI}})
    assert shape(site, "outbox") == shape(fresh, "outbox")  # the upgraded table is the new one

    site.poll()
    site.poll()

    [mail] = smtp_sink.messages
    assert mail.message["Message-ID"] == "<waiting.0123456789abcdef@mailbot.test>"
    assert mail.message["Subject"] == "[VISI-7] Queued before the upgrade"
    assert mail.rcpt_tos == [DANA]
    assert site.query("SELECT message_id, status, attempts FROM outbox ORDER BY id") == [
        ("waiting.0123456789abcdef@mailbot.test", "sent", 2),
        ("sent.0123456789abcdef@mailbot.test", "sent", 1),
    ]
    # Every step from 3 on, whatever later steps came: the steps are numbered with gaps.
    versions = site.query("SELECT version FROM schema_version ORDER BY version")
    assert versions == [(1,), (2,)] + [(v,) for v in sorted(STEPS) if v >= 3]
