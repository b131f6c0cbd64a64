"""Subjects and threading: which ticket a mail joins, and what a first mail's subject sets."""

from __future__ import annotations

from mailbot.store.models import Message, Ticket
from tests.fast.people import CARLA, ERIN, VERA, open_ticket
from tests.helpers.desks import MailDesk


def mails_in(desk: MailDesk, reference: str) -> int:
    """The mails a ticket received (what we sent is on it too)."""
    return desk.ticket(reference).messages.where(Message.direction == "in").count()


def test_priority_and_category_tags_in_the_subject_set_the_new_ticket(desk: MailDesk):
    desk.send(CARLA, "GEN", "[high] [bug] Printer on fire", "It burns.")
    ticket = desk.ticket("GEN-1")
    assert (ticket.priority, ticket.category, ticket.subject) == ("high", "bug", "Printer on fire")
    assert desk.last_to(CARLA).subject == "[GEN-1] Printer on fire"


def test_a_priority_line_in_the_body_sets_the_priority(desk: MailDesk):
    desk.send(CARLA, "GEN", "Printer on fire", "Priority: urgent\n\nIt burns.")
    assert desk.ticket("GEN-1").priority == "critical"


def test_tickets_are_numbered_per_product(desk: MailDesk):
    open_ticket(desk)
    open_ticket(desk, "Scanner jammed")
    desk.send(VERA, "VISI", "Licence expired", "Please renew.")
    assert sorted((t.product, t.number) for t in Ticket.select()) == [("GEN", 1), ("GEN", 2), ("VISI", 1)]


def test_the_reference_behind_any_reply_prefix_threads_without_headers(desk: MailDesk):
    open_ticket(desk)
    for subject in ("AW: [GEN-1] Printer on fire", "SV: Antw: RE[2]: [GEN-1]", "Fwd: about [ GEN-1 ]"):
        desk.send(CARLA, "GEN", subject, "More details.")
    assert Ticket.select().count() == 1
    assert mails_in(desk, "GEN-1") == 4


def test_in_reply_to_a_mail_we_sent_threads_when_the_subject_lost_the_reference(desk: MailDesk):
    open_ticket(desk)
    ack = desk.last_to(CARLA)
    desk.send(CARLA, "GEN", "printer", "Still burning.", in_reply_to=str(ack.message["Message-ID"]))
    assert Ticket.select().count() == 1


def test_another_products_reference_does_not_thread_into_this_mailbox(desk: MailDesk):
    desk.send(VERA, "VISI", "Licence expired", "Please renew.")
    desk.send(CARLA, "GEN", "Re: [VISI-1] Licence expired", "Me too.")
    assert mails_in(desk, "VISI-1") == 1
    assert desk.ticket("GEN-1").requester.email == CARLA


def test_a_customer_reply_to_a_resolved_ticket_reopens_it(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "#status resolved\n\nFixed.")
    desk.reply(CARLA, "GEN", desk.last_to(CARLA), "It burns again.")
    assert desk.ticket("GEN-1").status == "open"
    assert Ticket.select().count() == 1


def test_a_customer_reply_to_a_closed_ticket_opens_a_linked_one(desk: MailDesk):
    new = open_ticket(desk)
    desk.reply(ERIN, "GEN", new, "#status closed\n\nClosed.")
    desk.reply(CARLA, "GEN", desk.last_to(CARLA), "It burns again.")
    assert desk.ticket("GEN-1").status == "closed"
    follow_up = desk.ticket("GEN-2")
    assert follow_up.linked_to.number == 1 and follow_up.status == "new"
