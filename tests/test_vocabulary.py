"""The vocabulary at the command line, and ticket flags as rows: an admin is offered exactly the
values mailbot knows, sets and filters flags, and an installation from before flags were rows
keeps them when it is upgraded in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailbot.store import migrations
from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

VISI = "visi.support@produsoft.test"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def site_with_tickets(tmp_path, count: int = 2):
    site = make_site(tmp_path, {"VISI": {"address": VISI}})
    site.add_account("dana@customer.test", "VISI", name="Dana")
    for n in range(count):
        raw = write_mail("dana@customer.test", VISI, f"Crash {n}", "It crashes.")
        site.mailbot("ingest", "VISI", input=raw)
    return site


def test_a_status_mailbot_does_not_know_is_a_usage_error_naming_the_valid_ones(tmp_path):
    site = site_with_tickets(tmp_path, 1)
    out = site.mailbot("ticket", "list", "--status", "bogus", expect=64).output
    assert "'bogus' is not one of 'new', 'open', 'waiting', 'resolved', 'closed'" in out
    assert [t["reference"] for t in site.json("ticket", "list", "--status", "NEW")] == ["VISI-1"]
    assert site.json("ticket", "list", "--status", "closed") == []
    out = site.mailbot("ticket", "set", "VISI-1", "--priority", "urgent", expect=64).output
    assert "'critical', 'high', 'medium', 'low'" in out
    add = ("account", "add", "eve@customer.test", "--product", "VISI", "--language", "de")
    assert "'en', 'nl', 'fr'" in site.mailbot(*add, expect=64).output
    assert site.query("SELECT count(*) FROM account WHERE email = 'eve@customer.test'") == [(0,)]
    assert site.ticket("VISI-1")["priority"] == "medium", "nothing changed"


def test_an_admin_flags_a_ticket_lists_by_flag_and_takes_it_off(tmp_path):
    site = site_with_tickets(tmp_path)
    site.mailbot("ticket", "set", "VISI-2", "--flag", "no_credit", "--by", "admin@produsoft.test")
    site.mailbot("ticket", "set", "VISI-2", "--flag", "no_credit")  # once is enough
    assert [t["reference"] for t in site.json("ticket", "list", "--flag", "no_credit")] == ["VISI-2"]
    shown = site.ticket("VISI-2")
    assert shown["flags"] == ["no_credit"]
    assert [(e["kind"], e["new"], e["actor"]) for e in shown["events"] if e["kind"] == "flag"] == [
        ("flag", "no_credit", "admin@produsoft.test")
    ]
    assert "flags: ['no_credit']" in site.mailbot("ticket", "show", "VISI-2").stdout
    assert "'vip' is not one of" in site.mailbot("ticket", "list", "--flag", "vip", expect=64).output
    site.mailbot("ticket", "set", "VISI-2", "--unflag", "no_credit")
    assert site.json("ticket", "list", "--flag", "no_credit") == []
    assert site.query("SELECT count(*) FROM ticket_flag") == [(0,)]


@pytest.mark.sqlite_only("upgrade from a SQLite fixture file (schema 6)")
def test_an_installation_from_schema_6_keeps_its_ticket_flags_as_rows(tmp_path):
    path = tmp_path / "data" / "mailbot.db"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    try:
        db.executescript((FIXTURES / "schema_v6.sql").read_text())
        db.executemany(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, '2026-01-01 00:00:00')",
            [(1,), (2,), (3,), (6,)],
        )
        db.execute(
            "INSERT INTO account (id, email, name, organisation, language, notify, credit_minutes,"
            " created_at) VALUES (1, 'dana@customer.test', 'Dana', '', 'en', 'all', 0, '2026-01-01 00:00:00')"
        )
        db.execute("INSERT INTO product_counter VALUES ('VISI', 3)")
        db.executemany(
            "INSERT INTO ticket (id, product, number, reference, subject, requester_id, category, priority,"
            " status, flags, created_at, updated_at, time_spent)"
            " VALUES (?, 'VISI', ?, ?, 'Old', 1, 'question', 'medium', 'open', ?, '2026-01-01 00:00:00',"
            " '2026-01-01 00:00:00', 0)",
            [
                (1, 1, "VISI-1", "contract_expired,no_credit"),
                (2, 2, "VISI-2", ""),
                (3, 3, "VISI-3", "before_cutover"),
            ],
        )
        db.commit()
    finally:
        db.close()
    site = make_site(tmp_path, {"VISI": {"address": VISI}})  # `db init`: migrated in place
    assert site.query("SELECT max(version) FROM schema_version") == [(migrations.LATEST,)]
    assert [t["flags"] for t in site.json("ticket", "list")] == [
        ["before_cutover"],
        [],
        ["contract_expired", "no_credit"],
    ]
    assert [t["reference"] for t in site.json("ticket", "list", "--flag", "no_credit")] == ["VISI-1"]
    (tmp_path / "fresh").mkdir()
    fresh = make_site(tmp_path / "fresh", {"VISI": {"address": VISI}})
    for table in ("ticket", "ticket_flag"):
        assert site.query(f'PRAGMA table_info("{table}")') == fresh.query(f'PRAGMA table_info("{table}")')
        assert site.query(f'PRAGMA index_list("{table}")') == fresh.query(f'PRAGMA index_list("{table}")')
    # The upgraded installation goes on working: a new mail opens VISI-4.
    site.add_account("dana@customer.test", "VISI", name="Dana")
    site.mailbot("ingest", "VISI", input=write_mail("dana@customer.test", VISI, "New", "Hello."))
    assert site.ticket("VISI-4")["flags"] == []
