"""Every person's mail becomes a ticket: mails whose sender a strict reader cannot make out
(comment forms, fax gateways, two From headers, no From at all, Exchange's unindented header
lines, junk before the header, raw 8-bit headers in legacy charsets) each go through
`mailbot ingest` and open a ticket with the right requester and subject. A mail whose sender
cannot be made out at all is quarantined, never ignored, and the admin works it off with
`mailbot quarantine`. A reading among several never carries an engineer's commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

FIXTURES = Path(__file__).parent / "fixtures" / "mail" / "senders"
VISI = "support@visi.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"

SHAPES = [  # fixture, requester, requester's name, ticket subject
    ("comment_form.eml", "ines.moreau@customer.example", "Ines Moreau", "Export stops at 80 %"),
    ("trailing_dot.eml", "kai.berg@customer.example", "Kai Berg", "Licence renewal"),
    ("fax_gateway.eml", '"fax #4711*"@faxgw.customer.example', "Fax +49 30 1234", "Fax from +49 30 1234"),
    ("spaces_in_local.eml", '"night shift desk"@customer.example', "Night Shift", "Printer queue stuck"),
    ("broken_iso2022jp_name.eml", "taro.tanaka@customer.example", "田中太", "見積もりの件"),
    ("two_from_headers.eml", "li.wei@customer.example", "Li Wei", "Two From lines"),
    ("sender_only.eml", "noor@customer.example", "Noor Haddad", "No From at all"),
    ("reply_to_only.eml", "olga@customer.example", "", "Web form request"),
    ("exchange_unindented.eml", "pia.schulz@customer.example", "Pia Schulz", "VPN drops every hour"),
    ("junk_in_front.eml", "rui.costa@customer.example", "Rui Costa", "Invoice 2026-114 is wrong"),
    ("spaces_in_front.eml", "eva.novak@customer.example", "Eva Novak", "Cannot log in"),
    ("mbox_line_in_front.eml", "jan.vos@customer.example", "Jan Vos", "Backup failed"),
    ("gb2312_8bit.eml", "wang@customer.example", "王小明", "关于合同续签的问题"),
    ("big5_8bit.eml", "chan@customer.example", "陳大文", "關於合約續期的問題"),
    ("koi8r_8bit.eml", "ivan@customer.example", "Иван Петров", "Вопрос по договору поставки"),
]


@pytest.fixture
def site(tmp_path):
    site = make_site(
        tmp_path, {"VISI": {"address": VISI, "unknown_senders": "open"}}, alert_address="admin@produsoft.test"
    )
    site.add_account(DANA, "VISI", name="Dana Customer")
    site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
    return site


@pytest.mark.parametrize(("name", "requester", "person", "subject"), SHAPES, ids=[s[0] for s in SHAPES])
def test_a_person_s_mail_of_each_shape_opens_a_ticket_for_that_person(site, name, requester, person, subject):
    out = site.mailbot("ingest", "VISI", str(FIXTURES / name)).output

    assert ": ticket VISI-1" in out, out
    [ticket] = site.tickets()
    assert (ticket["requester"], ticket["subject"]) == (requester, subject)
    names = site.query(f"SELECT name FROM account WHERE email = '{requester.replace(chr(39), chr(39) * 2)}'")
    assert names == [(person,)]


def test_several_readings_the_known_account_wins_and_the_ticket_says_so(site):
    site.mailbot("ingest", "VISI", str(FIXTURES / "list_with_known_person.eml"))

    [ticket] = site.tickets()
    assert ticket["requester"] == DANA
    [event] = [e for e in site.ticket("VISI-1")["events"] if e["kind"] == "sender_uncertain"]
    assert "else@other.example" in event["detail"] and "dana@customer.test has an account" in event["detail"]
    assert site.query("SELECT count(*) FROM account WHERE email = 'else@other.example'") == [(0,)]


def test_an_engineer_read_among_several_mailboxes_applies_no_command(site):
    site.mailbot("ingest", "VISI", input=write_mail(DANA, VISI, "Printer offline", "It is offline."))
    team = write_mail(ERIN, VISI, "Re: [VISI-1] Printer offline", "#status resolved\n\nFixed it.")
    forged = team.replace(f"From: {ERIN}".encode(), f"From: Mallory <mallory@evil.example>, {ERIN}".encode())
    assert forged != team

    site.mailbot("ingest", "VISI", input=forged)

    shown = site.ticket("VISI-1")
    assert shown["status"] != "resolved", "no command from an uncertain reading"
    [note] = [m for m in shown["messages"] if "Fixed it." in m["text"]]
    assert note["visibility"] == "internal"
    # The same mail from Erin alone is her command.
    site.mailbot("ingest", "VISI", input=team.replace(b"Fixed it.", b"Fixed it now."))
    assert site.ticket("VISI-1")["status"] == "resolved"


def test_a_mail_whose_sender_cannot_be_made_out_is_quarantined_and_worked_off_with_the_cli(site):
    raw = (FIXTURES / "unreadable_sender.eml").read_bytes()
    out = site.mailbot("ingest", "VISI", input=raw).output
    assert "quarantined" in out and not site.tickets()
    assert site.query("SELECT outcome FROM seen") == [("quarantined",)]
    alerts = site.query("SELECT recipient FROM outbox WHERE template = 'alert-quarantine'")
    assert alerts == [("admin@produsoft.test",)], "the admin hears of it"

    [listed] = site.json("quarantine", "list")
    assert "no sender" in listed["reason"] and listed["subject"] == "Who am I"
    shown = site.json("quarantine", "show", listed["id"])
    assert ["From", "a@evil.example@customer.example"] in shown["headers"]
    assert shown["product"] == "VISI"

    # Still unreadable: reprocess keeps it where it is and changes nothing else.
    assert "quarantined" in site.mailbot("quarantine", "reprocess", listed["id"]).output
    assert len(site.json("quarantine", "list")) == 1 and not site.tickets()

    site.mailbot("quarantine", "drop", listed["id"])
    assert site.json("quarantine", "list") == []
    assert site.query("SELECT outcome FROM seen") == [("ignored",)]
    site.mailbot("quarantine", "show", listed["id"], expect=64)


def test_reprocess_runs_a_quarantined_mail_once_and_the_ledger_follows(site):
    """A mail too large for the configured limit is quarantined; the admin raises the limit and
    reprocesses it: one ticket, the ledger row says so, a second reprocess finds nothing."""
    site.env["MAILBOT_MAX_MESSAGE_SIZE"] = "200"
    raw = (FIXTURES / "two_from_headers.eml").read_bytes()
    assert len(raw) > 200
    site.mailbot("ingest", "VISI", input=raw)
    assert site.query("SELECT outcome, reason FROM seen") == [("quarantined", "mail too large")]
    [kept] = site.json("quarantine", "list")
    site.mailbot("quarantine", "reprocess", kept["id"])  # still too large: nothing changes
    assert site.query("SELECT outcome FROM seen") == [("quarantined",)] and not site.tickets()

    site.env["MAILBOT_MAX_MESSAGE_SIZE"] = "1M"
    out = site.mailbot("quarantine", "reprocess", kept["id"]).output
    assert "ticket VISI-1" in out, out
    [ticket] = site.tickets()
    assert (ticket["requester"], ticket["subject"]) == ("li.wei@customer.example", "Two From lines")
    assert site.query("SELECT outcome, ticket_id FROM seen") == [("ticket", 1)]
    assert site.json("quarantine", "list") == []
    events = [e["kind"] for e in site.ticket("VISI-1")["events"]]
    assert "sender_uncertain" in events, "two From headers are noted on the ticket"

    site.mailbot("quarantine", "reprocess", kept["id"], expect=64)
    assert len(site.tickets()) == 1 and site.query("SELECT count(*) FROM seen") == [(1,)]
