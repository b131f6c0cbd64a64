"""The command line as an admin and an MTA use it."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

VISI = "visi.support@produsoft.test"


def site_for(tmp_path, database_url):
    site = make_site(tmp_path, {"VISI": {"address": VISI}}, database_url=database_url)
    site.add_account("dana@customer.test", "VISI", name="Dana")
    return site


def outbox_files(site) -> list:
    folder = site.data_dir / "outbox" / "new"
    return list(folder.iterdir()) if folder.is_dir() else []


def test_an_mta_pipes_a_mail_in_on_stdin_and_a_redelivery_changes_nothing(tmp_path, database_url):
    site = site_for(tmp_path, database_url)
    raw = write_mail("dana@customer.test", VISI, "100% CPU_usage on server", "Since Monday.")
    first = site.mailbot("ingest", "VISI", input=raw)
    assert "ticket VISI-1" in first.stdout
    again = site.mailbot("ingest", "VISI", input=raw)
    assert "VISI-1" in again.stdout
    assert [t["reference"] for t in site.tickets()] == ["VISI-1"]
    assert outbox_files(site) == [], "ingest does not send; the outbox is delivered by poll or run"
    site.poll()
    assert len(outbox_files(site)) == 1  # the acknowledgement (the product has no engineers)


def test_search_matches_words_literally(tmp_path, database_url):
    site = site_for(tmp_path, database_url)
    site.mailbot("ingest", "VISI", input=write_mail("dana@customer.test", VISI, "100% CPU_usage", "Help."))
    site.mailbot("ingest", "VISI", input=write_mail("dana@customer.test", VISI, "Licence", "Key lost."))
    assert [t["reference"] for t in site.json("ticket", "search", "100%")] == ["VISI-1"]
    assert [t["reference"] for t in site.json("ticket", "search", "1_0")] == [], "_ is no wildcard"
    assert [t["reference"] for t in site.json("ticket", "search", "key", "lost")] == ["VISI-2"]
    assert len(site.json("ticket", "search", "dana@")) == 2


def test_unknown_ticket_and_bad_configuration_are_one_clear_line(tmp_path, database_url):
    site = site_for(tmp_path, database_url)
    result = site.mailbot("ticket", "show", "VISI-99", expect=64)
    assert result.stderr.strip() == "mailbot: no ticket VISI-99"
    site.env["MAILBOT_PRODUCT_VISI_UNKNOWN_SENDERS"] = "sometimes"
    result = site.mailbot("ticket", "list", expect=78)
    assert "MAILBOT_PRODUCT_VISI_UNKNOWN_SENDERS" in result.stderr and "Traceback" not in result.stderr


def test_the_console_script_runs_as_an_admin_types_it(tmp_path, database_url):
    site = site_for(tmp_path, database_url)
    site.write_env()
    out = subprocess.run(
        [sys.executable, "-m", "mailbot", "--env-file", str(site.env_file), "account", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "dana@customer.test" in out.stdout


def test_accounts_grant_revoke_and_import(tmp_path, database_url):
    site = site_for(tmp_path, database_url)
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text(
        "email,name,organisation,language,contract_until\n"
        "Jan@Klant.test,Jan,Klant BV,nl,2027-12-31\npiet@klant.test,Piet,Klant BV,nl,\n"
    )
    assert "2 account(s) imported" in site.mailbot("account", "import", "VISI", str(csv_file)).stdout
    accounts = {a["email"]: a for a in site.json("account", "list")}
    assert accounts["jan@klant.test"]["language"] == "nl"
    assert accounts["jan@klant.test"]["contract_until"] == "2027-12-31"
    site.mailbot("account", "revoke", "piet@klant.test", "--product", "VISI")
    assert "piet@klant.test" not in {a["email"] for a in site.json("account", "list", "--product", "VISI")}
    site.mailbot("account", "grant", "piet@klant.test", "--product", "VISI", "--role", "board")
    assert {a["email"]: a for a in site.json("account", "list")}["piet@klant.test"]["grants"] == {
        "VISI": "board"
    }


def test_an_admin_changes_a_ticket_and_the_customer_is_told_as_by_mail(tmp_path, database_url):
    site = site_for(tmp_path, database_url)
    site.add_account("erin@produsoft.test", "VISI", "engineer", name="Erin")
    site.mailbot("ingest", "VISI", input=write_mail("dana@customer.test", VISI, "Crash", "It crashes."))
    site.poll()
    before = len(outbox_files(site))
    out = site.mailbot(
        "ticket",
        "set",
        "visi-1",
        "--status",
        "open",
        "--priority",
        "high",
        "--assign",
        "erin@produsoft.test",
        "--by",
        "erin@produsoft.test",
    ).stdout
    assert "VISI-1: open, high" in out and "erin@produsoft.test" in out
    ticket = site.ticket("VISI-1")
    assert (ticket["status"], ticket["priority"], ticket["assignee"]) == (
        "open",
        "high",
        "erin@produsoft.test",
    )
    assert {e["kind"] for e in ticket["events"] if e["actor"] == "erin@produsoft.test"} == {
        "status",
        "priority",
        "assignee",
    }
    site.poll()
    # To the customer: status and priority changes; to Erin: nothing (she assigned herself).
    assert len(outbox_files(site)) == before + 2
    site.mailbot("ticket", "set", "VISI-1", "--assign", "dana@customer.test", expect=64)
