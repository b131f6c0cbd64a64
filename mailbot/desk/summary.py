"""One mail in, at most one mail out per person: the changes a mail made to a ticket, gathered so
they travel together.

An engineer's mail with text, `#status` and `#priority` is one answer to the customer: the text,
every change it made and the ticket as it is after them. `mailbot.desk.replies` makes the changes
through `mailbot.desk.changes` without mail (`tell=[]`), notes each here (`Made`), and then queues one
mail: the reply (its template lists `changes`), or, for commands without text, `tell_changes`.

It leaves the changes themselves and their events to `mailbot.desk.changes` and `mailbot.desk.tickets`,
and who is who to `mailbot.desk.replies`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import changes
from mailbot.outgoing import notify
from mailbot.store.models import Account, Ticket
from mailbot.vocabulary import Template

# The template that tells of one change of this field on its own.
_SINGLE = {"status": Template.STATUS_CHANGED, "priority": Template.PRIORITY_CHANGED}


class Made(list[dict[str, str]]):
    """The changes one mail made, in order: `{"field": "status", "old": "new", "new": "open"}`;
    the shape the templates' `changes` list has."""

    def status(
        self, desk: Desk, product: ProductSettings, ticket: Ticket, status: str, actor: Account, now: datetime
    ) -> None:
        old = ticket.status
        if changes.change_status(desk, product, ticket, status, actor, actor.email, now, tell=[]) and (
            status in changes.STATUS_MAILS
        ):
            self._note("status", old, status)

    def priority(
        self,
        desk: Desk,
        product: ProductSettings,
        ticket: Ticket,
        priority: str,
        actor: Account,
        now: datetime,
    ) -> None:
        old = ticket.priority
        if changes.change_priority(desk, product, ticket, priority, actor, actor.email, now, tell=[]):
            self._note("priority", old, priority)

    def _note(self, field: str, old: str, new: str) -> None:
        # A field changed twice by one mail (reopened, then set): one line, first old to last new.
        for change in self:
            if change["field"] == field:
                change["new"] = new
                if change["old"] == new:
                    self.remove(change)
                return
        self.append({"field": field, "old": old, "new": new})


def tell_changes(
    desk: Desk,
    product: ProductSettings,
    ticket: Ticket,
    people: list[notify.Recipient],
    made: Made,
    actor: Account,
    *,
    prepaid: dict[str, Any] | None = None,
) -> None:
    """The mail for changes made without text: the one change's own mail, or `ticket_updated`
    listing them all (also for one change when there is news of the credit to tell with it)."""
    if not made:
        return
    if len(made) == 1 and prepaid is None:
        [change] = made
        notify.queue_mail(
            desk,
            _SINGLE[change["field"]],
            product,
            ticket,
            people,
            context={"old": change["old"], "new": change["new"]},
            actor=actor,
        )
        return
    notify.queue_mail(
        desk,
        Template.TICKET_UPDATED,
        product,
        ticket,
        people,
        context={"changes": list(made), "prepaid": prepaid},
        actor=actor,
    )
