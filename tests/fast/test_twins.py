"""The honest twins under the real poller and outbox: a mail is handled once however often the
mailbox shows it, and what the transport refuses or cannot take now is given up or kept."""

from __future__ import annotations

import pytest

from mailbot.errors import SmtpUnavailable
from mailbot.service.poller import poll_mailbox
from mailbot.sources.base import Cursor
from mailbot.sources.memory import MemorySource
from mailbot.store.models import Outbox, OutboxStatus, Ticket
from tests.fast.people import CARLA, EDDIE, ERIN, open_ticket
from tests.helpers.desks import MailDesk
from tests.helpers.mails import write_mail


def poll_again(desk: MailDesk) -> dict[str, int]:
    return dict(poll_mailbox(desk.desk, desk.desk.settings.product("GEN"), desk.sources["GEN"]).outcomes)


def test_a_poll_acknowledges_what_it_handled_and_the_next_finds_nothing(desk: MailDesk):
    open_ticket(desk)
    assert desk.sources["GEN"].unacknowledged == []
    assert desk.sources["GEN"].wait_for_news(0) is False
    assert poll_again(desk) == {}
    assert Ticket.select().count() == 1


def test_the_same_mail_twice_in_the_mailbox_is_one_ticket(desk: MailDesk):
    raw = write_mail(CARLA, "support@generic.test", "Printer on fire", "It burns.")
    desk.sources["GEN"].deliver(raw, desk.clock())
    desk.deliver("GEN", raw)
    assert Ticket.select().count() == 1
    assert len(desk.inbox(CARLA)) == 1
    assert desk.sources["GEN"].unacknowledged == []


def test_a_new_uidvalidity_rescans_the_mailbox_and_repeats_nothing(desk: MailDesk):
    open_ticket(desk)
    desk.clear()
    desk.sources["GEN"].uidvalidity = 2
    assert poll_again(desk) == {"ignored": 1}
    desk.drain()
    assert Ticket.select().count() == 1 and desk.delivered == []


def test_a_mail_expunged_before_it_is_fetched_is_skipped():
    source = MemorySource()
    first = source.deliver(b"Subject: one\r\n\r\nx\r\n")
    source.deliver(b"Subject: two\r\n\r\ny\r\n")
    pending = source.pending(Cursor())
    source.expunge(first)
    assert [mail.key for mail in source.fetch(pending.keys)] == ["2"]
    assert source.pending(Cursor(1, 2)).keys == ()


def test_an_address_the_server_refuses_is_given_up_and_the_others_get_theirs(desk: MailDesk):
    desk.transport.refuse[CARLA] = "550 5.1.1 no such user"
    open_ticket(desk)
    assert desk.inbox(CARLA) == []
    assert len(desk.inbox(ERIN)) == 1 and len(desk.inbox(EDDIE)) == 1
    row = Outbox.get(Outbox.recipient == CARLA)
    assert row.status == OutboxStatus.DEAD and "550 5.1.1" in row.last_error
    desk.clock.advance(hours=2)
    desk.drain()
    assert desk.inbox(CARLA) == [], "a permanent refusal is never retried"


def test_mail_waits_while_the_server_is_down_and_goes_out_once_after(desk: MailDesk):
    desk.transport.down = True
    with pytest.raises(SmtpUnavailable):
        open_ticket(desk)
    assert Ticket.select().count() == 1, "the ticket is committed before any mail goes out"
    assert desk.delivered == []
    desk.transport.down = False
    desk.clock.advance(minutes=2)
    desk.drain()
    desk.clock.advance(hours=1)
    desk.drain()
    assert [m.template for m in desk.delivered].count("new_ticket") == 2
    assert len(desk.inbox(CARLA)) == 1
