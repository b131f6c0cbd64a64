"""Customers who ask and a second line that answers, on Dovecot and SMTP: BAS-IP's technician
escalates to the developers, who answer the distributor by mail without an account; the
distributor asks for their tickets and a ticket's history, and tries to read a partner's ticket
and another product's. Every person's mail is counted."""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import MailUser
from tests.helpers.mails import message_id_of, quote, write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

BASIP = "support@bas-ip.test"
VISI = "visi.support@produsoft.test"
DEVELOPERS = "developers@bas-ip.test"  # BAS-IP's second line: an address, no account
DIRK = "dirk@distributor.test"  # BAS-IP distributor, reads Dutch
PAULA = "paula@partner.test"  # BAS-IP partner
TOM = "tom@bas-ip.test"  # BAS-IP technician
VERA = "vera@produsoft-customer.test"  # VISI customer


class Mail:
    """The mail clients of the story: each sends to a product's mailbox, mailbot polls."""

    def __init__(self, site, dovecot, users, sink):
        self.site, self.dovecot, self.users, self.sink = site, dovecot, users, sink

    def send(self, sender: str, to: str, subject: str, body: str, **headers) -> None:
        self.dovecot.append(self.users[to].name, write_mail(sender, to, subject, body, **headers))
        self.site.poll()

    def reply(self, sender: str, to: str, mail, body: str) -> None:
        self.send(
            sender,
            to,
            f"Re: {mail.message['Subject']}",
            body + "\n\n" + quote(text_of(mail)),
            in_reply_to=message_id_of(mail.message),
        )

    def inbox(self, address: str) -> list:
        return [m for m in self.sink.messages if address in m.rcpt_tos]

    def count(self) -> dict[str, int]:
        return {who: len(self.inbox(who)) for who in (DIRK, PAULA, TOM, VERA, DEVELOPERS)}


def text_of(mail) -> str:
    return mail.message.get_body(("plain",)).get_content()


def html_of(mail) -> str:
    return mail.message.get_body(("html",)).get_content()


@pytest.fixture
def visi_user(dovecot) -> MailUser:
    name = f"visi-{secrets.token_hex(3)}"
    password = f"pw/{secrets.token_hex(6)}"
    dovecot.add_user(name, password)
    return MailUser(name, password, dovecot)


@pytest.fixture
def desk(tmp_path, dovecot, mail_user, visi_user, smtp_sink) -> Mail:
    site = make_site(
        tmp_path,
        {
            "BASIP": {
                "address": BASIP,
                "name": "BAS-IP",
                "mailbox": mail_user.url(),
                "escalation_address": DEVELOPERS,
            },
            "VISI": {"address": VISI, "name": "VISI", "mailbox": visi_user.url(), "language": "nl"},
        },
        smtp_url=smtp_sink.url,
    )
    site.add_account(DIRK, "BASIP", name="Dirk Distributeur", language="nl")
    site.add_account(PAULA, "BASIP", name="Paula Partner", language="en")
    site.add_account(TOM, "BASIP", "engineer", name="Tom Technician", language="en")
    site.add_account(VERA, "VISI", name="Vera Visi", language="nl")
    return Mail(site, dovecot, {BASIP: mail_user, VISI: visi_user}, smtp_sink)


def test_the_developers_answer_and_the_distributor_asks_without_seeing_anything_else(desk):
    desk.send(f"Dirk Distributeur <{DIRK}>", BASIP, "Intercom herstart steeds", "Elk uur een herstart.")
    desk.send(f"Paula Partner <{PAULA}>", BASIP, "Project Harbour pricing", "Our margin is 31%.")
    desk.send(f"Vera Visi <{VERA}>", VISI, "Licentie", "Onze sleutel is ABC-123.")
    assert desk.count() == {DIRK: 1, PAULA: 1, TOM: 2, VERA: 1, DEVELOPERS: 0}

    # The technician escalates; the developers get the ticket, the distributor Tom's text.
    [first] = [m for m in desk.inbox(TOM) if "[BASIP-1]" in m.message["Subject"]]
    desk.reply(
        TOM,
        BASIP,
        first,
        "#escalate Firmware 2.3 crasht bij het opstarten\n\nDoorgegeven aan onze ontwikkelaars.",
    )
    [escalation] = desk.inbox(DEVELOPERS)
    assert "Firmware 2.3" in text_of(escalation) and "Elk uur een herstart." in text_of(escalation)
    assert "margin" not in text_of(escalation)
    # The developers answer by replying, and the distributor gets it as the desk's answer.
    desk.reply(DEVELOPERS, BASIP, escalation, "Opgelost in firmware 2.4.")
    assert "Opgelost in firmware 2.4." in text_of(desk.inbox(DIRK)[-1])
    assert desk.count() == {DIRK: 3, PAULA: 1, TOM: 2, VERA: 1, DEVELOPERS: 1}

    # The distributor asks: their open tickets, then one ticket's history.
    desk.send(DIRK, BASIP, "lijst", "#list")
    listing = desk.inbox(DIRK)[-1]
    assert "BASIP-1" in text_of(listing) and "Intercom herstart steeds" in text_of(listing)
    assert "In behandeling" in text_of(listing)  # the status, in Dutch
    assert "#ef6c00" in html_of(listing)  # ...and in its colour
    assert "BASIP-2" not in text_of(listing) and "Harbour" not in text_of(listing)
    desk.send(DIRK, BASIP, "verloop", "#show BASIP-1")
    history = text_of(desk.inbox(DIRK)[-1])
    assert "Elk uur een herstart." in history and "Opgelost in firmware 2.4." in history
    assert "Firmware 2.3 crasht" not in history  # the note to the developers stays internal

    # A partner's ticket and another product's: refused, nothing leaked, nobody else told.
    desk.send(DIRK, BASIP, "kijken", "#show BASIP-2")
    desk.send(DIRK, BASIP, "kijken", "#show VISI-1")
    for answer in desk.inbox(DIRK)[-2:]:
        for secret in ("Harbour", "31%", "Paula", PAULA, "ABC-123", "Licentie", "Vera"):
            assert secret not in text_of(answer) and secret not in html_of(answer)
    assert desk.count() == {DIRK: 7, PAULA: 1, TOM: 2, VERA: 1, DEVELOPERS: 1}
    assert len(desk.site.tickets()) == 3, "questions open no ticket"


BOARD = "bob.board@bas-ip.test"


def test_the_boards_note_written_with_assign_reaches_the_new_assignee(desk):
    desk.site.add_account(BOARD, "BASIP", "board", name="Bob Board")
    desk.send(f"Paula Partner <{PAULA}>", BASIP, "Door station offline", "Since the update.")
    [triage] = desk.inbox(BOARD)
    assert desk.inbox(TOM) == [], "with a board, the board triages"
    desk.reply(
        BOARD, BASIP, triage, f"#assign {TOM}\n#internal\n\nTom: Paula is our biggest partner, call her."
    )
    notes = [m for m in desk.inbox(TOM) if "biggest partner" in text_of(m)]
    assert len(notes) == 1 and "[BASIP-1]" in notes[0].message["Subject"]
    assert all("biggest partner" not in text_of(m) for m in desk.inbox(PAULA))
    assert desk.count() == {DIRK: 0, PAULA: 1, TOM: 2, VERA: 0, DEVELOPERS: 0}  # Tom: the ticket, the note
