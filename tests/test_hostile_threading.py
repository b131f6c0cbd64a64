"""Another product's ticket, named from this product's mailbox, on a real Dovecot (one mailbox per
product), `poll --once` and a real SMTP server. Our ticket Message-IDs (`ticket-WORKNC-1@...`)
travel in the References of every mail we send, so anyone can name a ticket of another product:
from VISI's mailbox such a mail threads to no WORKNC ticket and grants nobody VISI's powers on it.
It becomes a new VISI ticket, like any first mail. Counted: ticket states, messages per ticket,
and mails received per person at the SMTP server."""

from __future__ import annotations

import secrets

import pytest

from tests.helpers.bulk import messages_on
from tests.helpers.mails import message_id_of, write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
WORKNC = "worknc.support@produsoft.test"
ERIN = "erin@produsoft.test"  # engineer of VISI, and a customer of WORKNC
CARL = "carl@customer.test"  # customer of WORKNC
WES = "wes@produsoft.test"  # engineer of WORKNC


@pytest.fixture
def site(tmp_path, dovecot, mail_user, smtp_sink):
    worknc_user = f"worknc-{secrets.token_hex(4)}"
    dovecot.add_user(worknc_user, "worknc-password")
    site = make_site(
        tmp_path,
        {
            "VISI": {"address": VISI, "mailbox": mail_user.url()},
            "WORKNC": {"address": WORKNC, "mailbox": dovecot.imap_url(worknc_user)},
        },
        smtp_url=smtp_sink.url,
    )
    site.add_account(ERIN, "VISI", "engineer")
    site.add_account(ERIN, "WORKNC", "customer")
    site.add_account(CARL, "WORKNC")
    site.add_account(WES, "WORKNC", "engineer")
    site.worknc_user = worknc_user  # type: ignore[attr-defined]
    return site


def received_by(sink, address: str) -> int:
    return sum(address in m.rcpt_tos for m in sink.messages)


def test_a_ticket_of_another_product_cannot_be_named_from_this_mailbox(site, dovecot, mail_user, smtp_sink):
    dovecot.append(site.worknc_user, write_mail(CARL, WORKNC, "Plotter stops", "Carl's private problem."))
    dovecot.append(site.worknc_user, write_mail(ERIN, WORKNC, "My own WORKNC question", "Erin as customer."))
    site.poll()
    assert {t["reference"]: t["status"] for t in site.tickets()} == {"WORKNC-1": "new", "WORKNC-2": "new"}
    [ack_to_carl] = [m for m in smtp_sink.messages if m.rcpt_tos == [CARL]]
    assert "ticket-WORKNC-1@mailbot.test" in ack_to_carl.message["References"]
    messages_before = {ref: messages_on(site, ref) for ref in ("WORKNC-1", "WORKNC-2")}
    smtp_sink.clear()

    # Erin, engineer of VISI, writes to VISI naming WORKNC tickets every way a mail can.
    attacks = [
        ("Re: Plotter stops", "ticket-WORKNC-1@mailbot.test"),  # our pseudo Message-ID
        ("Re: Plotter stops", message_id_of(ack_to_carl.message)),  # a real mail of WORKNC's
        ("Re: [WORKNC-1] Plotter stops", ""),  # the subject's reference
        ("Re: My own WORKNC question", "ticket-WORKNC-2@mailbot.test"),  # her own ticket as customer
    ]
    for subject, parent in attacks:
        body = "#status closed\n#priority low\n\nDone."
        dovecot.append(mail_user.name, write_mail(ERIN, VISI, subject, body, in_reply_to=parent))
    site.poll()

    states = {t["reference"]: (t["status"], t["priority"]) for t in site.tickets()}
    assert states["WORKNC-1"] == ("new", "medium") and states["WORKNC-2"] == ("new", "medium")
    assert messages_on(site, "WORKNC-1") == messages_before["WORKNC-1"]
    assert messages_on(site, "WORKNC-2") == messages_before["WORKNC-2"]
    assert received_by(smtp_sink, CARL) == 0, "nothing of Erin's text reaches WORKNC's customer"
    assert received_by(smtp_sink, WES) == 0, "WORKNC's team hears nothing either"
    # Each of Erin's mails is a new VISI ticket of hers, commands unapplied.
    visi = [t for t in site.tickets() if t["product"] == "VISI"]
    assert len(visi) == len(attacks)
    assert {(t["requester"], t["status"]) for t in visi} == {(ERIN, "new")}

    # In WORKNC's own mailbox, Erin is a customer: her ticket takes no engineer's command.
    smtp_sink.clear()
    dovecot.append(
        site.worknc_user,
        write_mail(ERIN, WORKNC, "Re: [WORKNC-2] My own WORKNC question", "#status resolved\n\nFixed?"),
    )
    site.poll()
    assert site.ticket("WORKNC-2")["status"] == "new"
    [error] = [m for m in smtp_sink.messages if m.rcpt_tos == [ERIN]]
    assert "#status" in error.message.get_body(("plain",)).get_content()
