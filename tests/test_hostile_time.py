"""A live mail is never old mail because its sender or its copier says so. After the first
start, mail dated 1970 (its Date header), in a Maildir file whose mtime is 1970 too (`cp -p`,
`rsync -t`), appended to the real Dovecot (INTERNALDATE now), or piped to `mailbot ingest`, is
answered as any live mail: the customer's acknowledgement and the engineers' mail at the SMTP
server, and SLA due times on the ticket. Only when the mailbox received it counts."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
GEN = "support@generic.test"
ERIN = "erin@produsoft.test"
EPOCH = b"Date: Thu, 01 Jan 1970 00:00:00 +0000"


def dated_1970(sender: str, to: str, subject: str) -> bytes:
    raw = write_mail(sender, to, subject, "The licence server stopped this morning.")
    return re.sub(rb"(?m)^Date:.*$", EPOCH, raw, count=1)


def test_a_live_mail_dated_1970_is_answered_from_every_door(tmp_path, mail_user, smtp_sink):
    maildir = tmp_path / "visi-maildir"
    site = make_site(
        tmp_path,
        {
            "VISI": {"address": VISI, "mailbox": f"maildir://{maildir}", "unknown_senders": "open"},
            "GEN": {"address": GEN, "mailbox": mail_user.url(), "unknown_senders": "open"},
        },
        smtp_url=smtp_sink.url,
    )
    site.add_account(ERIN, "VISI", "engineer")
    site.add_account(ERIN, "GEN", "engineer")
    site.poll()  # the first start, on empty mailboxes
    assert smtp_sink.messages == []

    # Maildir: copied in as the README's quick start does, with the mtime of 1970 kept; and
    # delivered by an MTA under a proper unique name (now), the mtime set back all the same.
    for name, sender in (
        ("customer-mail.eml", "ann@customer.test"),
        (f"{int(time.time())}.M1P2Q3.mx.test", "bob@customer.test"),
    ):
        path = maildir / "new" / name
        path.write_bytes(dated_1970(sender, VISI, f"Request of {sender}"))
        os.utime(path, (0, 0))
    # IMAP: APPENDed now; only the Date header says 1970.
    mail_user.dovecot.append(mail_user.name, dated_1970("cleo@customer.test", GEN, "Request of cleo"))
    # An MTA pipe.
    site.mailbot("ingest", "VISI", input=dated_1970("dave@customer.test", VISI, "Request of dave"))
    site.poll()

    customers = ["ann@customer.test", "bob@customer.test", "cleo@customer.test", "dave@customer.test"]
    for customer in customers:
        assert sum(m.rcpt_tos == [customer] for m in smtp_sink.messages) == 1, f"{customer} is acknowledged"
    assert sum(m.rcpt_tos == [ERIN] for m in smtp_sink.messages) == len(customers), "the team hears of each"
    tickets = site.tickets()
    assert len(tickets) == len(customers)
    for listed in tickets:
        ticket = site.ticket(listed["reference"])
        assert "before_cutover" not in ticket["flags"]
        assert ticket["due_first_response"] and ticket["due_resolution"], "on the SLA clock"
