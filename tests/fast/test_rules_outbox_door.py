"""Every mail leaves by one door: an alert for the admin and a ticket's mail are queued by the
same function (`mailbot.outgoing.enqueue`), so the sender finds in both what it relies on.
tests/test_architecture.py checks that no other module writes outbox rows."""

from __future__ import annotations

from mailbot.outgoing.addressing import is_our_message_id
from mailbot.store.models import Outbox
from mailbot.vocabulary import OutboxState
from tests.fast.people import CARLA, ERIN
from tests.helpers.desks import MailDesk

OPS = "ops@admin.test"


def test_an_alert_and_a_ticket_mail_come_out_of_the_same_door(make_desk, clock):
    # A flood limit of one: Carla's second new mail is folded into her first ticket, which raises
    # the flood alert; the alert address is set in capitals, as an admin may type it.
    desk: MailDesk = make_desk(ALERT_ADDRESS=OPS.upper(), FLOOD_LIMIT="1")
    desk.send(CARLA, "GEN", "Printer on fire", "It burns.")
    acknowledged = clock()
    clock.advance(minutes=5)
    desk.send(CARLA, "GEN", "Scanner on fire", "It burns too.")

    alert, ack = desk.last_to(OPS), desk.last_to(CARLA)
    assert (alert.template, ack.template) == ("alert-flood", "ticket_opened")
    assert len(desk.inbox(OPS)) == 1 and len(desk.inbox(CARLA)) == 1
    assert [m.template for m in desk.inbox(ERIN)] == ["new_ticket"], "the folded mail tells nobody"

    rows = {row.template: row for row in Outbox.select().where(Outbox.recipient.in_([OPS, CARLA]))}
    assert sorted(rows) == ["alert-flood", "ticket_opened"]
    for mail, queued_at in ((alert, clock()), (ack, acknowledged)):
        row = rows[mail.template]
        assert mail.message["Message-ID"] == f"<{row.message_id}>"
        assert is_our_message_id(row.message_id, "mailbot.test")
        assert row.recipient == mail.recipients[0].lower() == mail.recipients[0]
        assert (row.status, row.attempts) == (OutboxState.SENT, 1), "sent at the first try"
        assert row.created_at == row.next_attempt_at == queued_at, "due at once"
        assert row.claimed_until is None
    assert rows["ticket_opened"].message_id.startswith("gen-1."), "a ticket's mail names its ticket"
