"""Tickets that belong together, and prepaid time, by mail through Dovecot and the SMTP sink:
Produsoft's customer names an earlier call number, the engineer merges the two requests and
the old reference keeps working; Alias's customer runs out of credit and gets bug time back.
Each step counts the mails every person receives."""

from __future__ import annotations

import secrets
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from mailbot.store import migrations
from tests.helpers.mails import message_id_of, quote, write_mail
from tests.helpers.site import make_site

VISI = "visi.support@produsoft.test"
ALIAS = "support@alias.test"
VERA = "vera@klant.test"  # VISI customer, Dutch
VICTOR = "victor@produsoft.test"  # VISI engineer
CLAIRE = "claire@atelier.test"  # Alias customer with prepaid credit, French
MARC = "marc@alias.test"  # Alias engineer


class Mailboxes:
    """The site with a Dovecot mailbox per product, seen from the people's mail clients."""

    def __init__(self, site, dovecot, users, sink):
        self.site, self.dovecot, self.users, self.sink = site, dovecot, users, sink

    def send(self, sender: str, product: str, subject: str, body: str, **headers) -> None:
        address = VISI if product == "VISI" else ALIAS
        self.dovecot.append(self.users[product], write_mail(sender, address, subject, body, **headers))
        self.site.poll()

    def reply(self, sender: str, product: str, to_mail, body: str) -> None:
        self.send(
            sender,
            product,
            f"Re: {to_mail.message['Subject']}",
            body + "\n\n" + quote(text_of(to_mail)),
            in_reply_to=message_id_of(to_mail.message),
        )

    def inbox(self, address: str) -> list:
        return [m for m in self.sink.messages if address in m.rcpt_tos]

    def last_to(self, address: str):
        mails = self.inbox(address)
        assert mails, (
            f"no mail reached {address}: {[(m.rcpt_tos, m.message['Subject']) for m in self.sink.messages]}"
        )
        return mails[-1]

    def count(self, *people: str) -> dict[str, int]:
        return {p: len(self.inbox(p)) for p in people}


def text_of(mail) -> str:
    return mail.message.get_body(("plain",)).get_content()


@pytest.fixture
def desks(tmp_path, dovecot, mail_user, smtp_sink):
    alias_user = f"alias-{secrets.token_hex(3)}"
    alias_password = secrets.token_hex(8)
    dovecot.add_user(alias_user, alias_password)
    site = make_site(
        tmp_path,
        {
            "VISI": {"address": VISI, "name": "VISI", "mailbox": mail_user.url(), "language": "nl"},
            "ALIAS": {
                "address": ALIAS,
                "name": "Alias",
                "mailbox": dovecot.imap_url(alias_user),
                "language": "fr",
                "timezone": "Europe/Paris",
            },
        },
        smtp_url=smtp_sink.url,
    )
    site.add_account(VERA, "VISI", name="Vera Klant", language="nl")
    site.add_account(VICTOR, "VISI", "engineer", name="Victor", language="en")
    site.add_account(CLAIRE, "ALIAS", name="Claire", language="fr")
    site.add_account(MARC, "ALIAS", "engineer", name="Marc", language="en")
    return Mailboxes(site, dovecot, {"VISI": mail_user.name, "ALIAS": alias_user}, smtp_sink)


@pytest.mark.servers
def test_an_earlier_call_number_links_the_merge_tells_the_customer_once_and_the_old_reference_threads_on(
    desks,
):
    desks.send(VERA, "VISI", "Export hangt", "De export naar STEP blijft hangen op 50 %.")
    desks.send(VERA, "VISI", "Export weer traag", "Zie VISI-1: het is weer hetzelfde.")
    assert desks.site.ticket("VISI-2")["related"] == ["VISI-1"]
    assert "Related tickets:     VISI-1" in text_of(desks.last_to(VICTOR))
    assert desks.count(VERA, VICTOR) == {VERA: 2, VICTOR: 2}  # two acknowledgements, two new tickets
    ack_of_second, new_ticket = desks.last_to(VERA), desks.last_to(VICTOR)

    desks.sink.clear()
    desks.reply(VICTOR, "VISI", new_ticket, "#merge VISI-1\n\nDit is hetzelfde probleem als VISI-1.")
    [merged] = desks.inbox(VERA)
    assert "[VISI-2]" in merged.message["Subject"]
    assert "samengevoegd" in text_of(merged) and "VISI-1" in text_of(merged)
    assert "Dit is hetzelfde probleem als VISI-1." in text_of(merged)
    assert desks.inbox(VICTOR) == []
    old, target = desks.site.ticket("VISI-2"), desks.site.ticket("VISI-1")
    assert (old["status"], old["merged_into"]) == ("closed", "VISI-1")
    assert [m["kind"] for m in old["messages"]] == ["ticket_merged"], "only the mail that tells of the merge"
    assert "Zie VISI-1: het is weer hetzelfde." in [m["text"] for m in target["messages"]]

    desks.sink.clear()
    desks.reply(VERA, "VISI", ack_of_second, "Het log staat in de bijlage van mijn eerste mail.")
    assert len(desks.site.tickets()) == 2, "the old reference opened no new ticket"
    [relayed] = desks.inbox(VICTOR)
    assert "[VISI-1]" in relayed.message["Subject"]
    assert "Het log staat in de bijlage" in text_of(relayed)
    assert desks.inbox(VERA) == []


@pytest.mark.servers
def test_link_to_another_products_ticket_is_refused_and_changes_nothing(desks):
    desks.send(CLAIRE, "ALIAS", "Rendu bloqué", "Le rendu s'arrête.")
    desks.send(VERA, "VISI", "Export hangt", "De export blijft hangen.")
    new_ticket = desks.last_to(VICTOR)
    desks.sink.clear()
    desks.reply(VICTOR, "VISI", new_ticket, "#link ALIAS-1\n\nLooks like Alias's problem.")
    [error] = desks.inbox(VICTOR)
    assert "ALIAS-1 is not a ticket of VISI" in text_of(error)
    assert desks.inbox(VERA) == [] and desks.inbox(CLAIRE) == []
    assert desks.site.ticket("VISI-1")["related"] == [] and desks.site.ticket("ALIAS-1")["related"] == []


@pytest.mark.servers
def test_prepaid_credit_runs_out_once_and_bug_time_comes_back(desks):
    later = (date.today() + timedelta(days=365)).isoformat()
    desks.site.mailbot("account", "credit", CLAIRE, "--add", "30", "--expires", later)
    desks.send(CLAIRE, "ALIAS", "Rendu bloqué", "Le rendu s'arrête à 50 %.")
    new_ticket = desks.last_to(MARC)
    assert desks.count(CLAIRE, MARC) == {CLAIRE: 1, MARC: 1}

    desks.sink.clear()
    desks.reply(MARC, "ALIAS", new_ticket, "#time 45m\n\nJ'ai trouvé la cause, je prépare un correctif.")
    [reply] = desks.inbox(CLAIRE)
    assert "Votre crédit de support prépayé est maintenant épuisé" in text_of(reply)
    [told] = desks.inbox(MARC)
    assert "used up" in text_of(told) and CLAIRE in text_of(told)

    desks.sink.clear()
    desks.reply(MARC, "ALIAS", new_ticket, "#time 15m\n\nCorrectif en test.")
    assert desks.count(CLAIRE, MARC) == {CLAIRE: 1, MARC: 0}, "the end of the credit is told once"

    desks.sink.clear()
    desks.reply(MARC, "ALIAS", new_ticket, "#category bug\n\nC'est un bug confirmé, corrigé dans la 5.2.")
    [refund] = desks.inbox(CLAIRE)
    assert "les 30 min déjà déduites de votre crédit vous ont été rendues" in text_of(refund)
    assert "Votre crédit de support restant : 30 min" in text_of(refund)
    assert desks.inbox(MARC) == []
    [claire] = desks.site.json("account", "credit", CLAIRE)
    assert claire["minutes"] == 30
    assert [e["kind"] for e in claire["history"]][:1] == ["refund"]


@pytest.mark.servers
def test_an_admin_who_makes_the_ticket_a_bug_gives_the_time_back_and_the_customer_is_told(desks):
    desks.site.mailbot("account", "credit", CLAIRE, "--add", "120")
    desks.send(CLAIRE, "ALIAS", "Rendu bloqué", "Le rendu s'arrête à 50 %.")
    desks.reply(MARC, "ALIAS", desks.last_to(MARC), "#time 1h\n\nJe regarde.")
    desks.sink.clear()
    desks.site.mailbot("ticket", "set", "ALIAS-1", "--category", "bug", "--by", MARC)
    desks.site.poll()  # sends what the outbox holds
    [told] = desks.inbox(CLAIRE)
    assert "bug logiciel confirmé" in text_of(told) and "les 1 h déjà déduites" in text_of(told)
    assert desks.inbox(MARC) == []
    [claire] = desks.site.json("account", "credit", CLAIRE)
    assert claire["minutes"] == 120


@pytest.mark.servers
def test_an_expiry_date_in_the_past_is_refused_in_one_line(desks):
    result = desks.site.mailbot(
        "account", "credit", CLAIRE, "--add", "60", "--expires", "2020-01-31", expect=64
    )
    assert "2020-01-31 is in the past" in result.output
    assert [line for line in result.output.splitlines() if "past" in line] == [
        result.output.strip().splitlines()[-1]
    ]
    [claire] = desks.site.json("account", "credit", CLAIRE)
    assert (claire["minutes"], claire["history"]) == (0, [])


# -- upgrade -------------------------------------------------------------------------------------


@pytest.mark.sqlite_only("upgrade from a SQLite fixture file (schema 6)")
def test_an_installation_from_schema_6_gains_ticket_links_and_its_old_tickets_can_be_named(tmp_path):
    path = tmp_path / "data" / "mailbot.db"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    try:
        db.executescript((Path(__file__).resolve().parent / "fixtures" / "schema_v6.sql").read_text())
        db.executemany(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, '2026-01-01 00:00:00')",
            [(1,), (2,), (3,), (6,)],
        )
        db.execute(
            "INSERT INTO account VALUES (1, ?, 'Vera', '', 'nl', 'all', NULL, 0, NULL, NULL, '2026-01-01')",
            (VERA,),
        )
        db.execute("INSERT INTO \"grant\" VALUES (1, 1, 'VISI', 'customer')")
        db.execute(
            "INSERT INTO ticket (id, product, number, reference, subject, requester_id, category, priority,"
            " status, flags, created_at, updated_at, time_spent) VALUES (1, 'VISI', 1, 'VISI-1', 'Oud',"
            " 1, 'question', 'medium', 'open', '', '2026-01-01', '2026-01-01', 0)"
        )
        db.execute("INSERT INTO product_counter VALUES ('VISI', 1)")
        db.commit()
    finally:
        db.close()
    site = make_site(tmp_path, {"VISI": {"address": VISI, "mailbox": f"maildir://{tmp_path / 'mail'}"}})
    assert site.query("SELECT max(version) FROM schema_version") == [(migrations.LATEST,)]
    assert site.query("SELECT reference, subject FROM ticket") == [("VISI-1", "Oud")]
    site.mailbot("ingest", "VISI", input=write_mail(VERA, VISI, "Weer kapot", "Zie VISI-1."))
    assert site.ticket("VISI-2")["related"] == ["VISI-1"]
    (tmp_path / "fresh").mkdir()
    fresh = make_site(tmp_path / "fresh", {"VISI": {"address": VISI}})
    assert site.query('PRAGMA table_info("ticket_link")') == fresh.query('PRAGMA table_info("ticket_link")')
