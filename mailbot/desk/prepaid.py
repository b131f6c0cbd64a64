"""What one engineer mail tells people about prepaid credit: the time it recorded, the credit it
gave back (`#category bug`: bug time is free), what remains, and that the credit ran out.

The customer reads it in the one mail the engineer's mail sends them anyway (the reply, the
info request, the list of changes: the templates' `credit` value); only a mail that sends the
customer nothing else sends `credit_refunded`, `credit_exhausted` or `credit_low` on its own.
The engineer who used up the last of the credit, and the assignee, get `credit_exhausted`.
Customers who never bought credit hear nothing of it.

The credit itself (ledger, balances, expiry) is `mailbot.desk.credit`'s; who the customers of a
ticket are is `mailbot.desk.replies`' to say.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import credit, recipients, tickets
from mailbot.outgoing import notify
from mailbot.store.models import Account, Ticket
from mailbot.vocabulary import Role

log = logging.getLogger(__name__)


@dataclass
class CreditNews:
    """What one mail did to the time and credit of its ticket."""

    recorded: int = 0  # minutes recorded by #time, in started blocks
    charged: int = 0  # of them, taken from credit
    refunded: int = 0  # given back by #category bug
    low: bool = False  # the credit fell below the product's threshold
    exhausted: bool = False  # the credit is used up

    def add_charge(self, result: credit.ChargeResult) -> None:
        self.recorded += result.minutes
        self.charged += result.charged
        self.low = self.low or result.fell_low
        self.exhausted = self.exhausted or result.exhausted

    def __bool__(self) -> bool:
        return bool(self.recorded or self.refunded)


def change_category(ticket: Ticket, category: str, actor: str, now: datetime) -> int:
    """Set the category (an engineer's `#category`, an admin's `ticket set`); a ticket that
    becomes a bug gets the credit charged on it back. Returns the minutes given back."""
    if tickets.set_field(ticket, "category", category, actor, now) and category == "bug":
        return credit.refund_bug_time(ticket, actor, now)
    return 0


def tell_refund(desk: Desk, ticket: Ticket, refunded: int, now: datetime) -> None:
    """The customers' `credit_refunded` mail for a change that sends them nothing else (an
    admin's `ticket set --category bug`)."""
    product = desk.settings.product(ticket.product)
    context = credit_context(product, ticket, CreditNews(refunded=refunded), now)
    if context is not None:
        tell_alone(desk, product, ticket, recipients.customers(ticket, product), context, None)


def remaining(account: Account, today: date) -> tuple[int, date | None]:
    """The customer's usable credit (their organisation's and their own) and the first day one
    of them expires."""
    account = Account.get_by_id(account.id)  # read afresh: a refund updates another instance
    holders: list[credit.Holder] = [account]
    organisation = credit.find_organisation(account.organisation)
    if organisation is not None:
        holders.insert(0, organisation)
    states = [credit.credit_of(h, today) for h in holders]
    minutes = sum(s.minutes for s in states)
    expiries = [s.expires for s in states if s.minutes > 0 and s.expires is not None]
    return minutes, min(expiries) if expiries else None


def credit_context(
    product: ProductSettings, ticket: Ticket, news: CreditNews, now: datetime
) -> dict[str, Any] | None:
    """The templates' `credit` value for the customer's mail; None when there is nothing to say
    (no time recorded or given back) or the customer does not work with prepaid credit."""
    if not news or not credit.is_prepaid(ticket.requester):
        return None
    today = now.astimezone(product.calendar.zone).date()
    minutes, expires = remaining(ticket.requester, today)
    low = news.low and not news.exhausted
    return {
        "recorded_minutes": news.recorded,
        "charged_minutes": news.charged,
        "refunded_minutes": news.refunded,
        "remaining_minutes": minutes,
        "expires": expires.isoformat() if expires else "",
        "exhausted": news.exhausted,
        "low": low,
    }


def tell_alone(
    desk: Desk,
    product: ProductSettings,
    ticket: Ticket,
    customers: list[notify.Recipient],
    context: dict[str, Any],
    actor: Account | None,
) -> None:
    """The customer's credit mail when the engineer's mail sends them nothing else."""
    if context["exhausted"]:
        template = "credit_exhausted"
    elif context["refunded_minutes"]:
        template = "credit_refunded"
    elif context["low"]:
        template = "credit_low"
    else:
        return
    notify.queue_mail(desk, template, product, ticket, customers, context={"credit": context}, actor=actor)


def tell_engineers(
    desk: Desk, product: ProductSettings, ticket: Ticket, context: dict[str, Any], actor: Account
) -> None:
    """The engineer whose time used up the credit, and the assignee, learn it once: further
    time on this customer's tickets is not covered."""
    if not context["exhausted"]:
        return
    people = [actor] + ([ticket.assignee] if ticket.assignee is not None else [])
    engineers = [recipients.as_role(p, Role.ENGINEER, product) for p in people]
    notify.queue_mail(
        desk, "credit_exhausted", product, ticket, engineers, context={"credit": context}, actor=actor
    )
    log.info("%s: credit of %s used up; customer and engineer told", ticket.reference, ticket.requester.email)
