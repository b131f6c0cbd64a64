"""Tickets that belong together: an engineer's `#link` and `#merge`, and a new mail that names an
earlier reference in its text (Produsoft's "earlier call number")."""

from __future__ import annotations

from mailbot.desk.views import ticket_detail
from mailbot.store.models import Message, Ticket, TicketLink
from tests.fast.people import CARLA, CHRIS, ERIN, VERA, VICTOR, open_ticket
from tests.helpers.desks import MailDesk, person


def related(desk: MailDesk, reference: str) -> list[str]:
    return ticket_detail(desk.ticket(reference))["related"]


def test_link_relates_two_tickets_of_the_product_both_ways_without_mailing_the_customer(desk: MailDesk):
    open_ticket(desk, "Printer on fire")
    second = open_ticket(desk, "Smoke in the office")
    desk.clear()
    desk.reply(ERIN, "GEN", second, "#link GEN-1")
    assert (related(desk, "GEN-2"), related(desk, "GEN-1")) == (["GEN-1"], ["GEN-2"])
    assert desk.inbox(CARLA) == [] and desk.inbox(ERIN) == []
    desk.send(CARLA, "GEN", "Re: [GEN-2] Smoke in the office", "The smoke is black.")
    # The team's mail about the ticket names the related one.
    assert "Related tickets: GEN-1" in desk.last_to(ERIN).text


def test_link_to_another_products_ticket_or_an_unknown_one_is_refused_in_the_engineers_language(
    desk: MailDesk,
):
    desk.send(VERA, "VISI", "Licence expired", "Please renew.")
    new = open_ticket(desk)
    person("eva@desk.test", "GEN", "engineer", name="Eva", language="nl")
    desk.clear()
    desk.reply("eva@desk.test", "GEN", new, "#link VISI-1\n\nZelfde probleem.")
    desk.reply(ERIN, "GEN", new, "#link GEN-99")
    [dutch] = desk.inbox("eva@desk.test")
    [english] = desk.inbox(ERIN)
    assert dutch.template == english.template == "command_error"
    assert "VISI-1 is geen ticket van GEN" in dutch.text
    assert "GEN-99 is not a ticket of GEN" in english.text
    assert TicketLink.select().count() == 0
    assert desk.inbox(CARLA) == [], "a refused command sends the customer nothing"


def test_link_to_the_ticket_itself_and_a_malformed_reference_are_refused(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#link GEN-1")
    desk.reply(ERIN, "GEN", new, "#merge soon")
    first, second = desk.inbox(ERIN)
    assert "GEN-1 is this ticket itself" in first.text
    assert "expected a ticket reference such as MERGE-12" in second.text
    assert TicketLink.select().count() == 0


def test_merge_moves_the_messages_tells_the_customer_once_and_the_old_reference_threads_on(desk: MailDesk):
    open_ticket(desk, "Printer on fire", "It burns.")
    second = open_ticket(desk, "Printer burning again", "Flames, again.")
    ack_of_second = desk.last_to(CARLA)
    desk.clear()
    desk.reply(ERIN, "GEN", second, "#merge GEN-1\n\nThis is the fire you reported this morning.")
    [told] = desk.inbox(CARLA)
    assert told.template == "ticket_merged"
    assert "This is the fire you reported this morning." in told.text
    assert "merged the two" in told.text and "GEN-1" in told.text
    # It answers the last mail Carla had about the old request, in her mail client's thread.
    assert told.message["In-Reply-To"] == ack_of_second.message["Message-ID"]
    old, target = desk.ticket("GEN-2"), desk.ticket("GEN-1")
    assert old.status == "closed" and target.status != "closed"
    texts = [m.text for m in target.messages.where(Message.direction == "in")]
    assert "Flames, again." in texts and "It burns." in texts
    assert old.messages.where(Message.direction == "in").count() == 0
    # Carla answers the acknowledgement of the old request, [GEN-2] in the subject.
    desk.clear()
    desk.reply(CARLA, "GEN", ack_of_second, "Now the paper tray melts.")
    assert Ticket.select().count() == 2, "no new ticket"
    assert "Now the paper tray melts." in [m.text for m in desk.ticket("GEN-1").messages]
    [relayed] = desk.inbox(ERIN)
    assert "[GEN-1]" in relayed.subject
    assert ticket_detail(desk.ticket("GEN-2"))["merged_into"] == "GEN-1"


def test_merge_into_a_ticket_of_another_customer_is_refused(desk: MailDesk):
    open_ticket(desk)
    desk.send(CHRIS, "GEN", "Printer on fire too", "Ours burns as well.")
    chris_ticket = desk.last_to(ERIN)
    desk.clear()
    desk.reply(ERIN, "GEN", chris_ticket, "#merge GEN-1")
    [error] = desk.inbox(ERIN)
    assert "GEN-1 has another requester" in error.text
    assert desk.ticket("GEN-2").status == "new"
    assert desk.inbox(CHRIS) == [] and desk.inbox(CARLA) == []


def test_a_new_mail_naming_an_earlier_reference_is_linked_to_it(desk: MailDesk):
    open_ticket(desk)
    desk.clear()
    desk.send(CARLA, "GEN", "Printer again", "Zie GEN-1: het brandt weer.")
    assert related(desk, "GEN-2") == ["GEN-1"]
    [new_ticket] = desk.inbox(ERIN)
    assert "Related tickets:     GEN-1" in new_ticket.text


def test_a_named_reference_is_linked_only_where_the_sender_may_see_it(desk: MailDesk):
    open_ticket(desk)  # GEN-1, Carla's
    desk.send(VERA, "VISI", "Licence expired", "Please renew.")  # VISI-1, Vera's
    desk.send(CHRIS, "GEN", "Printer", "Same as GEN-1 I think.")  # GEN-2: Chris may not see GEN-1
    desk.send(VERA, "VISI", "Licence again", "About GEN-1 and VISI-1.")  # VISI-2: only VISI-1
    desk.send(VICTOR, "VISI", "Follow-up", "see visi-1")  # VISI-3: an engineer of VISI sees it all
    assert related(desk, "GEN-2") == []
    assert related(desk, "VISI-2") == ["VISI-1"]
    assert related(desk, "VISI-3") == ["VISI-1"]
    assert related(desk, "GEN-1") == []


def test_a_ticket_linked_by_its_text_can_be_merged_into_the_one_it_names(desk: MailDesk):
    open_ticket(desk)
    desk.send(CARLA, "GEN", "Printer again", "See GEN-1.")
    new = desk.last_to(ERIN)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#merge GEN-1")
    assert desk.ticket("GEN-2").status == "closed"
    assert [m.template for m in desk.inbox(CARLA)] == ["ticket_merged"]
    assert TicketLink.select().count() == 1
    assert related(desk, "GEN-1") == ["GEN-2"]
    assert ticket_detail(desk.ticket("GEN-2"))["merged_into"] == "GEN-1"


def test_a_watcher_of_the_merged_ticket_may_go_on_writing_under_the_old_reference(desk: MailDesk):
    open_ticket(desk)
    desk.send(CARLA, "GEN", "Printer again", "It burns again.", cc=CHRIS)
    new = desk.last_to(ERIN)
    desk.reply(ERIN, "GEN", new, "#merge GEN-1")
    desk.clear()
    desk.send(CHRIS, "GEN", "Re: [GEN-2] Printer again", "Our floor smells of smoke too.")
    assert "Our floor smells of smoke too." in [m.text for m in desk.ticket("GEN-1").messages]
    assert "[GEN-1]" in desk.last_to(ERIN).subject
