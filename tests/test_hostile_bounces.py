"""Forged bounces, on a real Dovecot, `poll --once` and a real SMTP server. Anyone can write a
failure report: a stranger's hand-made one naming a customer (X-Failed-Recipients), or a
customer's report built from a mail we sent *him* but naming someone else, must not stop that
someone's mail. Only a report that names a Message-ID we sent to the failed address does.
Counted: mails received per person at the SMTP server, and the ledger's outcome per mail."""

from __future__ import annotations

import pytest

from tests.helpers.bulk import ledger_by_message_id, undeliverable
from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
CARL = "carl@othercustomer.test"
ERIN = "erin@produsoft.test"


@pytest.fixture
def site(tmp_path, mail_user, smtp_sink):
    site = make_site(
        tmp_path, {"VISI": {"address": VISI, "mailbox": mail_user.url()}}, smtp_url=smtp_sink.url
    )
    site.add_account(DANA, "VISI")
    site.add_account(CARL, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    return site


def hand_made_bounce(failed: str, message_id: str) -> bytes:
    """What a stranger types: a MAILER-DAEMON sender, X-Failed-Recipients, no mail of ours."""
    return (
        f"From: Mail Delivery Subsystem <MAILER-DAEMON@anywhere.test>\r\nTo: {VISI}\r\n"
        f"Subject: Delivery Status Notification (Failure)\r\nMessage-ID: <{message_id}>\r\n"
        f"X-Failed-Recipients: {failed}\r\nAuto-Submitted: auto-replied\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
        f"Delivery to the following recipient failed permanently:\r\n\r\n     {failed}\r\n"
    ).encode()


def dsn(original: bytes, failed: str, message_id: str) -> bytes:
    """A proper RFC 3464 report returning the headers of `original`, naming `failed`."""
    headers = original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode()
    text = f"""From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>
To: {VISI}
Subject: Undelivered Mail Returned to Sender
Message-ID: <{message_id}>
Date: Mon, 23 Nov 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.test

Final-Recipient: rfc822; {failed}
Action: failed
Status: 5.1.1

--b1
Content-Type: text/rfc822-headers

{headers}

--b1--
"""
    return text.replace("\n", "\r\n").encode()


def received_by(sink, address: str) -> int:
    return sum(address in m.rcpt_tos for m in sink.messages)


def test_forged_bounces_silence_no_one_and_a_real_one_still_does(site, dovecot, mail_user, smtp_sink):
    dovecot.append(mail_user.name, write_mail(DANA, VISI, "Crash on start", "VISI crashes at start."))
    dovecot.append(mail_user.name, write_mail(CARL, VISI, "Licence", "Which licence?"))
    site.poll()
    [ack_to_dana] = [m for m in smtp_sink.messages if m.rcpt_tos == [DANA]]
    [ack_to_carl] = [m for m in smtp_sink.messages if m.rcpt_tos == [CARL]]

    # A stranger's hand-made bounce, and Carl's report built from his own acknowledgement but
    # naming Dana: both about an address we did mail this week.
    dovecot.append(mail_user.name, hand_made_bounce(DANA, "f1@anywhere.test"))
    dovecot.append(mail_user.name, dsn(ack_to_carl.raw, DANA, "f2@mx.customer.test"))
    site.poll()
    assert not undeliverable(site, DANA) and not undeliverable(site, CARL)
    ledger = ledger_by_message_id(site)
    for mid in ("f1@anywhere.test", "f2@mx.customer.test"):
        assert ledger[mid].outcome == "ignored" and ledger[mid].reason.startswith("bounce:")

    # Dana still gets the next status mail of her ticket.
    smtp_sink.clear()
    dovecot.append(
        mail_user.name, write_mail(ERIN, VISI, "Re: [VISI-1] Crash on start", "#status resolved\n")
    )
    site.poll()
    assert received_by(smtp_sink, DANA) == 1

    # A genuine report, about the mail we really sent Dana, still marks her.
    dovecot.append(mail_user.name, dsn(ack_to_dana.raw, DANA, "real@mx.customer.test"))
    site.poll()
    assert undeliverable(site, DANA)
    assert ledger_by_message_id(site)["real@mx.customer.test"].outcome == "message"
    smtp_sink.clear()
    dovecot.append(mail_user.name, write_mail(ERIN, VISI, "Re: [VISI-1] Crash on start", "#status closed\n"))
    site.poll()
    assert received_by(smtp_sink, DANA) == 0, "no automatic mail to the dead address"
