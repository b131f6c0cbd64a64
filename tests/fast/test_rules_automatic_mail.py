"""Mail that must never get an automatic answer, bounces of our own mail, and the limits that
stop what the rules miss (acknowledgements a day, automatic mails a day, floods)."""

from __future__ import annotations

import pytest

from mailbot.store.models import Account, Message, Seen, Ticket
from tests.fast.people import CARLA, EDDIE, ERIN, STRANGER, open_ticket
from tests.helpers.desks import MailDesk
from tests.helpers.mails import write_mail

GEN = "support@generic.test"

MACHINE_MAILS = [
    # sender, extra headers, the ledger's reason
    (STRANGER, {"Auto-Submitted": "auto-replied"}, "automatic: auto-submitted:auto-replied"),
    (STRANGER, {"Auto-Submitted": "Auto-Generated"}, "automatic: auto-submitted:auto-generated"),
    (STRANGER, {"X-Autoreply": "yes"}, "automatic: x-autoreply"),
    (STRANGER, {"Precedence": "junk"}, "automatic: precedence:junk"),
    ("noreply@shop.test", {}, "automatic: noreply-sender"),
    ("MAILER-DAEMON@mx.other.test", {}, "bounce: original mail unknown (mailbot: sender rule)"),
    ("support@bas-ip.test", {}, "own-loop"),
    (STRANGER, {"X-Mailbot-Loop": "mailbot.test"}, "own-loop"),
]


@pytest.mark.parametrize(("sender", "headers", "reason"), MACHINE_MAILS)
def test_machine_mail_is_recorded_and_answered_by_nothing(desk: MailDesk, sender, headers, reason):
    desk.send(sender, "GEN", "Hello", "A machine wrote this.", headers=headers)
    assert [row.reason for row in Seen.select()] == [reason]
    assert desk.delivered == []
    assert Ticket.select().count() == 0


def test_an_auto_reply_goes_on_its_ticket_and_changes_nothing(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "#info\n\nWhich model?")
    question = desk.last_to(CARLA)
    desk.clear()
    desk.reply(CARLA, "GEN", question, "I am out of office.", headers={"Auto-Submitted": "auto-replied"})
    assert desk.ticket("GEN-1").status == "waiting"
    assert desk.delivered == []
    kinds = [m.kind for m in desk.ticket("GEN-1").messages.where(Message.direction == "in")]
    assert kinds == ["mail", "mail", "auto"]


def test_list_mail_from_a_customer_opens_a_ticket_without_acknowledgement(desk: MailDesk):
    desk.send(CARLA, "GEN", "Weekly report", "All jobs ran.", headers={"List-Id": "<ops.customer.test>"})
    assert desk.ticket("GEN-1").requester.email == CARLA
    assert desk.inbox(CARLA) == []
    assert len(desk.inbox(ERIN)) == 1


def dsn(original: str, failed: str, report_id: str = "report-1@mx.customer.test") -> bytes:
    """A mail server's RFC 3464 report that the mail `original` could not reach `failed`."""
    headers = original.replace("\r\n", "\n").split("\n\n", 1)[0]
    text = f"""From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>
To: {GEN}
Subject: Undelivered Mail Returned to Sender
Message-ID: <{report_id}>
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


def test_a_bounce_stops_automatic_mail_to_the_address_and_tells_the_engineers_once(desk: MailDesk):
    new = open_ticket(desk)
    ack = desk.last_to(CARLA)
    desk.clear()
    desk.deliver("GEN", dsn(ack.message.as_string(), CARLA))
    assert Account.get(Account.email == CARLA).undeliverable_since is not None
    assert [m.template for m in desk.inbox(ERIN)] == ["delivery_failed"]
    assert [m.template for m in desk.inbox(EDDIE)] == ["delivery_failed"]
    desk.reply(ERIN, "GEN", new, "#status resolved")
    assert desk.inbox(CARLA) == [], "no automatic mail to a bounced address"
    assert desk.ticket("GEN-1").status == "resolved"
    desk.deliver("GEN", dsn(ack.message.as_string(), CARLA, "report-2@mx.customer.test"))
    assert len(desk.inbox(ERIN)) == 1, "told once per address that went dead"


def test_a_customer_who_writes_again_gets_automatic_mail_again(desk: MailDesk):
    open_ticket(desk)
    desk.deliver("GEN", dsn(desk.last_to(CARLA).message.as_string(), CARLA))
    desk.clear()
    desk.send(CARLA, "GEN", "Scanner jammed", "Another one.")
    assert [m.template for m in desk.inbox(CARLA)] == ["ticket_opened"]


def test_a_bounce_that_names_no_mail_of_ours_silences_no_one(desk: MailDesk):
    open_ticket(desk)
    made_up = write_mail(GEN, CARLA, "[GEN-1] Printer on fire", "Made up.", message_id="forged@mailbot.test")
    desk.deliver("GEN", dsn(made_up.decode(), CARLA, "forged-report@mx.customer.test"))
    assert Account.get(Account.email == CARLA).undeliverable_since is None
    assert Seen.select().order_by(Seen.id.desc()).first().reason.startswith("bounce: original mail unknown")


def test_acknowledgements_stop_at_the_daily_limit_but_the_engineers_hear_of_every_ticket(make_desk, clock):
    desk = make_desk(ACK_LIMIT="2")
    for n in range(3):
        desk.send(CARLA, "GEN", f"Problem {n}", "Help.")
    assert Ticket.select().count() == 3
    assert len(desk.inbox(CARLA)) == 2
    assert len(desk.inbox(ERIN)) == 3
    clock.advance(days=1, minutes=1)
    desk.send(CARLA, "GEN", "Problem 4", "Help.")
    assert len(desk.inbox(CARLA)) == 3


def test_automatic_mail_to_one_address_stops_at_the_daily_limit(make_desk):
    desk = make_desk(AUTOMATIC_LIMIT="2")
    new = open_ticket(desk)  # the acknowledgement: 1
    desk.reply(ERIN, "GEN", new, "#priority high")  # 2
    desk.reply(ERIN, "GEN", new, "#priority low")  # held back
    assert [m.template for m in desk.inbox(CARLA)] == ["ticket_opened", "priority_changed"]
    assert desk.ticket("GEN-1").priority == "low"
    desk.reply(ERIN, "GEN", new, "A person's answer is not automatic mail.")
    assert desk.last_to(CARLA).template == "reply"


def test_a_flood_of_new_tickets_is_folded_into_the_last_one_silently(make_desk):
    desk = make_desk(FLOOD_LIMIT="2")
    for n in range(4):
        desk.send(CARLA, "GEN", f"Problem {n}", "Help.")
    assert Ticket.select().count() == 2
    assert desk.ticket("GEN-2").messages.where(Message.direction == "in").count() == 3
    assert len(desk.inbox(CARLA)) == 2 and len(desk.inbox(ERIN)) == 2
