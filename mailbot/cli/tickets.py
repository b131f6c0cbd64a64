"""`mailbot ticket ...`: listing, searching, showing and changing tickets."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import click
from peewee import fn

from mailbot.cli.app import AppState, emit_json
from mailbot.desk import accounts, changes, prepaid, recipients, tickets, views
from mailbot.errors import EX_USAGE, MailbotError
from mailbot.service.health import overdue_tickets, running_tickets
from mailbot.store.models import Account, Ticket, database
from mailbot.store.search import mentions
from mailbot.vocabulary import Category, Flag, Priority, Status, values


class NotFound(MailbotError):
    """A ticket or engineer named on the command line that does not exist: a usage error."""

    exit_code = EX_USAGE


@click.group()
def ticket() -> None:
    """Tickets: list, show, search."""


@ticket.command("list")
@click.option("--product", "product_key", default=None)
@click.option("--status", type=click.Choice(values(Status), case_sensitive=False), default=None)
@click.option("--requester", default=None, metavar="EMAIL", help="Tickets this person opened.")
@click.option("--organisation", default=None, help="Tickets opened by people of this organisation.")
@click.option(
    "--assignee", default=None, metavar="EMAIL", help="Assigned to this engineer ('nobody': to none)."
)
@click.option("--flag", type=click.Choice(values(Flag), case_sensitive=False), default=None)
@click.option("--overdue", is_flag=True, help="Open tickets past their first-answer or resolution deadline.")
@click.option(
    "--sort",
    type=click.Choice(["newest", "due"]),
    default="newest",
    show_default=True,
    help="due: the nearest deadline first, tickets without one last.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ticket_list(app: AppState, as_json: bool, sort: str, **filters: Any) -> None:
    """List tickets, newest first or by due time, filtered by any of the options."""
    desk = app.open()
    query = Ticket.select().where(_filters(app, desk.clock(), **filters)).order_by(Ticket.id.desc())
    found = list(query)
    if sort == "due":
        found.sort(key=lambda t: (next_due(t) is None, next_due(t) or t.created_at))
    rows = [views.ticket_summary(t) for t in found]
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'REFERENCE':<12} {'STATUS':<9} {'PRIORITY':<9} {'DUE':<17} {'REQUESTER':<32} SUBJECT")
    for t, row in zip(found, rows, strict=True):
        due = next_due(t)
        click.echo(
            f"{row['reference']:<12} {row['status']:<9} {row['priority']:<9} "
            f"{f'{due:%Y-%m-%d %H:%M}' if due else '-':<17} {row['requester']:<32} {row['subject']}"
        )


def _filters(app: AppState, now: datetime, **given: Any) -> Any:
    """The WHERE clause of `ticket list`; a person or product that does not exist is a usage error."""
    clause = Ticket.id.is_null(False)
    if given["product_key"]:
        clause &= Ticket.product == app.product(given["product_key"]).key
    if given["status"]:
        clause &= Ticket.status == given["status"].lower()
    if given["requester"]:
        clause &= Ticket.requester == _person(given["requester"], "--requester")
    if given["assignee"] in ("nobody", "none"):
        clause &= Ticket.assignee.is_null()
    elif given["assignee"]:
        clause &= Ticket.assignee == _person(given["assignee"], "--assignee")
    if given["organisation"]:
        members = Account.select(Account.id).where(
            fn.lower(Account.organisation) == given["organisation"].strip().lower()
        )
        clause &= Ticket.requester.in_(members)
    if given["flag"]:
        clause &= tickets.flagged(given["flag"].lower())
    if given["overdue"]:
        clause &= running_tickets() & overdue_tickets(now)
    return clause


def _person(email: str, option: str) -> Account:
    found = accounts.find_account(email)
    if found is None:
        raise click.BadParameter(f"no account {email!r}", param_hint=f"'{option}'")
    return found


def next_due(ticket: Ticket) -> datetime | None:
    """The deadline the ticket meets next: the first answer while none was sent, else resolution."""
    if ticket.first_response_at is None and ticket.due_first_response is not None:
        return cast(datetime, ticket.due_first_response)
    return cast("datetime | None", ticket.due_resolution)


@ticket.command("search")
@click.argument("words", nargs=-1, required=True)
@click.option("--product", "product_key", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ticket_search(app: AppState, words: tuple[str, ...], product_key: str | None, as_json: bool) -> None:
    """Tickets whose subject, requester or messages contain every one of WORDS (any case)."""
    app.open()
    query = Ticket.select().order_by(Ticket.id.desc())
    if product_key:
        query = query.where(Ticket.product == app.product(product_key).key)
    for word in words:
        query = query.where(mentions(word))
    rows = [views.ticket_summary(t) for t in query]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['reference']:<12} {row['status']:<9} {row['requester']:<32} {row['subject']}")


@ticket.command("set")
@click.argument("reference")
@click.option("--status", type=click.Choice(values(Status)), default=None)
@click.option("--priority", type=click.Choice(values(Priority)), default=None)
@click.option("--category", type=click.Choice(values(Category)), default=None)
@click.option("--assign", "assignee", default=None, metavar="EMAIL", help="An engineer of the product.")
@click.option("--flag", "add_flags", multiple=True, type=click.Choice(values(Flag)), help="Mark the ticket.")
@click.option("--unflag", "remove_flags", multiple=True, type=click.Choice(values(Flag)), help="Unmark it.")
@click.option(
    "--by",
    "actor_email",
    default="admin",
    show_default=True,
    help="Who made the change, as the history shows it.",
)
@click.pass_obj
def ticket_set(
    app: AppState,
    reference: str,
    status: str | None,
    priority: str | None,
    category: str | None,
    assignee: str | None,
    add_flags: tuple[str, ...],
    remove_flags: tuple[str, ...],
    actor_email: str,
) -> None:
    """Change a ticket as an engineer's mail command would; the customer is told the same way."""
    desk = app.open()
    row = _ticket(reference)
    product = desk.settings.product(row.product)
    actor = accounts.find_account(actor_email)
    now = desk.clock()
    with database.atomic():
        if assignee:
            target = accounts.find_account(assignee)
            if target is None or not accounts.is_staff(target, product.key):
                raise NotFound(f"{assignee} is not an engineer of {product.key}")
            changes.assign(desk, product, row, target, actor, actor_email, now)
        if category and (refunded := prepaid.change_category(row, category, actor_email, now)):
            prepaid.tell_refund(desk, row, refunded, now)
        if priority:
            changes.change_priority(
                desk, product, row, priority, actor, actor_email, now, tell=recipients.customers(row, product)
            )
        if status:
            changes.change_status(desk, product, row, status, actor, actor_email, now)
        _change_flags(row, add_flags, remove_flags, actor_email, now)
    click.echo(
        f"{row.reference}: {row.status}, {row.priority}, {row.category}, "
        f"assigned to {row.assignee.email if row.assignee is not None else 'nobody'}"
    )


def _change_flags(
    row: Ticket, add: tuple[str, ...], remove: tuple[str, ...], actor_email: str, now: datetime
) -> None:
    """Flags set or taken off by hand, each kept in the ticket's history."""
    for flag in add:
        if tickets.add_flag(row, flag):
            tickets.record_event(row, "flag", actor_email, new=flag, at=now)
    for flag in remove:
        if tickets.remove_flag(row, flag):
            tickets.record_event(row, "flag", actor_email, old=flag, at=now)


def _ticket(reference: str) -> Ticket:
    row = Ticket.get_or_none(Ticket.reference == reference.upper())
    if row is None:
        raise NotFound(f"no ticket {reference}")
    return row


@ticket.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ticket_show(app: AppState, reference: str, as_json: bool) -> None:
    """A ticket with its messages and history."""
    app.open()
    data = views.ticket_detail(_ticket(reference))
    if as_json:
        emit_json(data)
        return
    _print_detail(data)


def _print_detail(data: dict[str, Any]) -> None:
    click.echo(f"{data['reference']}  {data['subject']}")
    for key in (
        "product",
        "status",
        "priority",
        "category",
        "requester",
        "assignee",
        "flags",
        "created_at",
        "due_first_response",
        "due_resolution",
        "time_spent_minutes",
        "linked_to",
        "watchers",
    ):
        click.echo(f"  {key.replace('_', ' ')}: {data[key] if data[key] not in (None, []) else '-'}")
    click.echo("\nMessages:")
    for m in data["messages"]:
        click.echo(f"  [{m['created_at']}] {m['direction']} {m['visibility']} {m['kind']} from {m['author']}")
        for line in m["text"].splitlines()[:20]:
            click.echo(f"      {line}")
    click.echo("\nHistory:")
    for e in data["events"]:
        change = f"{e['old']} -> {e['new']}" if e["old"] else e["new"]
        click.echo(f"  [{e['at']}] {e['kind']} {change} by {e['actor'] or 'mailbot'} {e['detail']}")
