"""Tickets that belong together: `#link REF` (related), a new mail that names an earlier
reference in its text (`zie VISI-12`), and `#merge REF` (this ticket's messages move into REF,
it is closed as merged, and mail about it threads to REF from then on).

Links never cross products: a reference is looked up in the ticket's own product only. A
reference named by a new mail is linked only where its sender may see that ticket (requester,
watcher, or an engineer of the product), so a guessed reference teaches nobody anything.

Runs inside the caller's transaction and only touches the ticket records; which mails a merge
sends is decided by `mailbot.desk.replies`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime

from mailbot.desk import tickets
from mailbot.desk.commands import CommandError, Commands, error_for
from mailbot.store import statements
from mailbot.store.models import Account, Message, Ticket, TicketLink

log = logging.getLogger(__name__)

RELATED, MENTION, MERGED = "related", "mention", "merged"
# At most this many references of one new mail are linked: a pasted list is not a request.
MENTIONS_LINKED = 5
# A chain of merges (A into B, B into C) is followed this far; a longer one is a mistake.
MERGE_DEPTH = 10
_REFERENCE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)-(\d{1,9})$")


def find_in_product(product: str, reference: str) -> Ticket | None:
    """The ticket `reference` of `product`; None for an unknown one or another product's."""
    match = _REFERENCE.match(reference.strip())
    if match is None:
        return None
    return statements.ticket_by_reference(product, reference.strip().upper())


def check_link_commands(parsed: Commands, ticket: Ticket) -> list[CommandError]:
    """`#link` and `#merge` name a ticket of the same product other than this one; a merge
    also needs the same requester, since the other ticket's customer would read these messages."""
    errors: list[CommandError] = []
    for name in ("link", "merge"):
        command = parsed.get(name)
        if command is None:
            continue
        reference = command.argument.strip().upper()
        other = find_in_product(ticket.product, reference)
        if other is None:
            errors.append(error_for("not_linkable", command, reference=reference, product=ticket.product))
        elif other.id == ticket.id:
            errors.append(error_for("link_self", command, reference=reference))
        elif name == "merge" and other.requester_id != ticket.requester_id:
            errors.append(error_for("merge_requester", command, reference=reference))
        elif name == "merge" and merged_target(other).id == ticket.id:
            errors.append(error_for("link_self", command, reference=reference))
    return errors


def link_tickets(ticket: Ticket, other: Ticket, kind: str, actor: str, now: datetime) -> bool:
    """Relate `ticket` to `other` (an event on each); False when they already were."""
    known = TicketLink.select().where(
        ((TicketLink.ticket == ticket) & (TicketLink.other == other))
        | ((TicketLink.ticket == other) & (TicketLink.other == ticket))
    )
    if known.exists():
        if kind != MERGED:
            return False
        # A merge says more than the relation it may have had: it replaces it.
        TicketLink.delete().where(TicketLink.id.in_([row.id for row in known])).execute()
    statements.add(TicketLink, ticket=ticket, other=other, kind=kind, actor_email=actor, at=now)
    tickets.record_event(ticket, "link", actor, new=other.reference, detail=kind, at=now)
    tickets.record_event(other, "link", actor, new=ticket.reference, detail=kind, at=now)
    return True


def merge_ticket(ticket: Ticket, target: Ticket, actor: str, now: datetime) -> int:
    """Move every message of `ticket` into `target` (and its watchers), close `ticket` as merged;
    returns how many messages moved. The outbox keeps its rows: mail answering them is followed to `target`
    by `merged_target`."""
    moved = Message.update(ticket=target).where(Message.ticket == ticket).execute()
    # Who followed the old ticket follows the new one: their replies to the old reference land there.
    for watcher in tickets.watchers_of(ticket):
        tickets.add_watcher(target, watcher, actor, now)
    link_tickets(ticket, target, MERGED, actor, now)
    tickets.set_status(ticket, "closed", actor, now)
    tickets.record_event(
        ticket, "merged", actor, new=target.reference, detail=f"{moved} messages moved", at=now
    )
    tickets.record_event(
        target,
        "merged",
        actor,
        old=ticket.reference,
        detail=f"{moved} messages of {ticket.reference}",
        at=now,
    )
    target.updated_at = now
    statements.save(target)
    log.info("%s merged into %s by %s: %d messages moved", ticket.reference, target.reference, actor, moved)
    return int(moved)


def merged_target(ticket: Ticket) -> Ticket:
    """The ticket that mail about `ticket` belongs to: itself, or where it was merged into."""
    for _ in range(MERGE_DEPTH):
        other = statements.merged_into_id(ticket.id)
        if other is None:
            return ticket
        ticket = Ticket.get_by_id(other)
    return ticket


def link_mentions(
    ticket: Ticket, prefix: str, text: str, may_see: Callable[[Ticket], bool], actor: Account, now: datetime
) -> list[Ticket]:
    """Link a new ticket to the earlier tickets of its product its text names (`PREFIX-N`),
    those the sender `may_see` only; returns the tickets linked."""
    pattern = re.compile(rf"(?<![\w-]){re.escape(prefix)}-(\d{{1,9}})\b", re.IGNORECASE)
    linked: list[Ticket] = []
    for number in dict.fromkeys(int(n) for n in pattern.findall(text)):
        if len(linked) >= MENTIONS_LINKED:
            break
        earlier = tickets.find_ticket(ticket.product, number)
        if earlier is None or earlier.id == ticket.id or not may_see(earlier):
            continue
        earlier = merged_target(earlier)
        if earlier.id != ticket.id and link_tickets(ticket, earlier, MENTION, actor.email, now):
            linked.append(earlier)
    return linked


def related_references(ticket: Ticket) -> list[str]:
    return statements.related_references(ticket)
