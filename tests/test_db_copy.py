"""`mailbot db copy --to postgresql://...`: an SQLite installation with tickets, messages,
accounts, an organisation and a waiting outbox moves to PostgreSQL; the counts are checked, the
next ticket number follows on, the waiting mail goes out from there, the raw mails are still
found; a target that is not empty is refused, and nothing is written to it."""

from __future__ import annotations

from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
TABLES = ("ticket", "message", "account", "grant", "seen", "outbox", "event", "product_counter")


def counts(site) -> dict[str, int]:
    return {table: site.query(f'SELECT count(*) FROM "{table}"')[0][0] for table in TABLES}


def test_an_sqlite_installation_moves_to_postgresql_with_every_row(tmp_path, postgres):
    site = make_site(tmp_path, {"VISI": {"address": VISI}})
    site.add_account(DANA, "VISI", name="Dana Customer")
    site.add_account("erin@produsoft.test", "VISI", "engineer", name="Erin Engineer")
    site.mailbot("ingest", "VISI", input=write_mail(DANA, VISI, "Export fails", "At 80 %, then nothing."))
    site.mailbot("ingest", "VISI", input=write_mail(DANA, VISI, "Licence", "Key lost."))
    before = counts(site)
    assert before["outbox"] == 4 and before["ticket"] == 2  # nothing sent yet: all waiting
    shown = site.json("ticket", "show", "VISI-1")

    url = postgres.new_database()
    result = site.mailbot("db", "copy", "--to", url)
    assert "the counts match" in result.stdout
    assert "ticket" in result.stdout and "outbox" in result.stdout

    site.env["MAILBOT_DATABASE_URL"] = url
    assert counts(site) == before
    assert site.json("ticket", "show", "VISI-1") == shown, "the raw mails and texts are found"
    assert [t["reference"] for t in site.json("ticket", "search", "nothing")] == ["VISI-1"]
    site.mailbot("ingest", "VISI", input=write_mail(DANA, VISI, "Third", "Another one."))
    assert sorted(t["reference"] for t in site.tickets()) == ["VISI-1", "VISI-2", "VISI-3"]
    site.poll()  # the waiting mail goes out from PostgreSQL (to the local Maildir outbox)
    assert site.query("SELECT count(*) FROM outbox WHERE status = 'sent'") == [(6,)]
    assert len(list((site.data_dir / "outbox" / "new").iterdir())) == 6


def test_a_copy_into_a_database_that_is_not_empty_is_refused(tmp_path, postgres):
    site = make_site(tmp_path, {"VISI": {"address": VISI}})
    site.add_account(DANA, "VISI")
    site.mailbot("ingest", "VISI", input=write_mail(DANA, VISI, "Export fails", "At 80 %."))
    url = postgres.new_database()
    site.mailbot("db", "copy", "--to", url)
    again = site.mailbot("db", "copy", "--to", url, expect=73)
    assert again.stderr.startswith("mailbot: the target database is not empty (")
    assert " ticket, " in again.stderr
    assert len(again.stderr.splitlines()) == 1
    site.env["MAILBOT_DATABASE_URL"] = url
    assert [t["reference"] for t in site.tickets()] == ["VISI-1"], "written once, not twice"
