"""Who gets a mail about a ticket: the one place the desk answers it.

The customers (the requester and the watchers who still have access), the team (the assignee,
else the product's review board, else all its engineers), the board with the assignee (SLA
mail), the second line (the product's escalation address), and one known person in a role.
Each answer is a list of `mailbot.outgoing.notify.Recipient`, in the recipient's language
(the product's when their account names none).

Which of them may actually be mailed (opt-outs, bounces, daily limits, our own addresses) is
`mailbot.outgoing.notify`'s business; who may act on a ticket is `mailbot.desk.accounts`'.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailbot.config import ProductSettings
from mailbot.desk import accounts, tickets
from mailbot.inbound.message import Address
from mailbot.outgoing.notify import Recipient, recipient_for
from mailbot.store.models import Account, Ticket
from mailbot.vocabulary import STAFF_ROLES, Role


def as_role(account: Account, role: str, product: ProductSettings) -> Recipient:
    """One known person, in `role` (what the templates write for them)."""
    return recipient_for(account, role, product.language)


def requester(ticket: Ticket, product: ProductSettings) -> Recipient:
    return as_role(ticket.requester, Role.CUSTOMER, product)


def customers(ticket: Ticket, product: ProductSettings) -> list[Recipient]:
    """The requester and the watchers who still have access to the product."""
    people = [requester(ticket, product)]
    people += [
        as_role(a, Role.WATCHER, product)
        for a in tickets.watchers_of(ticket)
        if accounts.role_of(a, product.key) is not None
    ]
    return people


def team(product: ProductSettings, ticket: Ticket | None = None) -> list[Recipient]:
    """The assignee when there is one; else the product's review board, who triage (AimTicket);
    else, for a product without a board, all its engineers."""
    people: list[tuple[Account, str | None]]
    if ticket is not None and ticket.assignee is not None:
        people = [(ticket.assignee, accounts.role_of(ticket.assignee, product.key))]
    else:
        people = list(_board_or_engineers(product))
    return [as_role(a, role or Role.ENGINEER, product) for a, role in people]


def board(ticket: Ticket, product: ProductSettings) -> list[Recipient]:
    """The product's review board (its engineers when it has no board) and the assignee: the
    people an SLA warning or breach is for."""
    people: list[tuple[Account, str | None]] = list(_board_or_engineers(product))
    assignee = ticket.assignee
    if assignee is not None and all(a.id != assignee.id for a, _ in people):
        people.append((assignee, accounts.role_of(assignee, product.key)))
    return [as_role(a, role or Role.ENGINEER, product) for a, role in people]


def second_line(product: ProductSettings) -> Recipient:
    """The escalation address: in its account's own language when it has an account (like
    every other recipient), else in the product's language (it has no other)."""
    address = product.escalation_address
    account = accounts.find_account(address)
    if account is not None:
        return as_role(account, Role.ENGINEER, product)
    return Recipient(address, "", Role.ENGINEER, product.language, None)


def writer(
    address: Address, account: Account | None, role: str, product: ProductSettings, *, name: str | None = None
) -> Recipient:
    """The sender of a mail, at the address they wrote from (never a Reply-To), with or without
    an account: their account's name and language when they have one, else the mail's name and
    the product's language. `name` overrides the name."""
    if name is None:
        name = account.name if account is not None else address.name
    language = account.language if account is not None and account.language else product.language
    return Recipient(address.email, name, role, language, account)


def _board_or_engineers(product: ProductSettings) -> list[tuple[Account, str]]:
    return staff_with_roles(product.key, (Role.BOARD,)) or staff_with_roles(product.key)


def staff_with_roles(product: str, roles: Iterable[str] = STAFF_ROLES) -> list[tuple[Account, str]]:
    """The product's staff in `roles`, by address, each with their role, in one query (SQL
    written once: it runs for every new ticket)."""
    wanted = set(roles)
    people = Account.raw(_STAFF_SQL.replace("?", Account._meta.database.param), product, *STAFF_ROLES)
    return [(account, account.role) for account in people if account.role in wanted]


_STAFF_SQL = (
    'SELECT "account".*, "grant"."role" FROM "account" JOIN "grant" ON "grant"."account_id" = "account"."id"'
    ' WHERE "grant"."product" = ? AND "grant"."role" IN (?, ?) ORDER BY "account"."email"'
)
