"""`mailbot ticket ...`: listing, searching, showing and changing tickets."""

from __future__ import annotations

from typing import Any

import click

from mailbot.cli.app import AppState, emit_json
from mailbot.desk import accounts, changes, tickets, views
from mailbot.desk.inmail import customer_recipients
from mailbot.errors import MailbotError
from mailbot.store.models import Ticket, database
from mailbot.store.search import mentions


class NotFound(MailbotError):
    exit_code = 2


@click.group()
def ticket() -> None:
    """Tickets: list, show, search."""


@ticket.command("list")
@click.option("--product", "product_key", default=None)
@click.option("--status", default=None, help="new, open, waiting, resolved or closed.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ticket_list(app: AppState, product_key: str | None, status: str | None, as_json: bool) -> None:
    """List tickets, newest first."""
    app.open()
    query = Ticket.select().order_by(Ticket.id.desc())
    if product_key:
        query = query.where(Ticket.product == app.settings.product(product_key).key)
    if status:
        query = query.where(Ticket.status == status.lower())
    rows = [views.ticket_summary(t) for t in query]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(
            f"{row['reference']:<12} {row['status']:<9} {row['priority']:<9} "
            f"{row['requester']:<32} {row['subject']}"
        )


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
        query = query.where(Ticket.product == app.settings.product(product_key).key)
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
@click.option("--status", type=click.Choice(["new", "open", "waiting", "resolved", "closed"]), default=None)
@click.option("--priority", type=click.Choice(["critical", "high", "medium", "low"]), default=None)
@click.option("--category", type=click.Choice(["question", "bug", "suggestion"]), default=None)
@click.option("--assign", "assignee", default=None, metavar="EMAIL", help="An engineer of the product.")
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
        if category:
            tickets.set_field(row, "category", category, actor_email, now)
        if priority:
            changes.change_priority(
                desk, product, row, priority, actor, actor_email, now, tell=customer_recipients(row, product)
            )
        if status:
            changes.change_status(desk, product, row, status, actor, actor_email, now)
    click.echo(
        f"{row.reference}: {row.status}, {row.priority}, {row.category}, "
        f"assigned to {row.assignee.email if row.assignee is not None else 'nobody'}"
    )


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
