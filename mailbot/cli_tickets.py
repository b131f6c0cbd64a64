"""`mailbot ticket ...`: listing, showing and searching tickets."""

from __future__ import annotations

import click
from peewee import fn

from mailbot import views
from mailbot.cli import AppState, emit_json
from mailbot.errors import MailbotError
from mailbot.models import Account, Message, Ticket


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
        click.echo(f"{row['reference']:<12} {row['status']:<9} {row['priority']:<9} "
                   f"{row['requester']:<32} {row['subject']}")


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
        query = query.where(_mentions(word))
    rows = [views.ticket_summary(t) for t in query]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['reference']:<12} {row['status']:<9} {row['requester']:<32} {row['subject']}")


def _mentions(word: str):  # type: ignore[no-untyped-def]
    """instr() rather than LIKE: a user's % or _ is matched as itself, never as a wildcard."""
    needle = word.lower()
    in_messages = Message.select(Message.ticket).where(fn.instr(fn.lower(Message.text), needle) > 0)
    requesters = Account.select(Account.id).where(fn.instr(Account.email, needle) > 0)
    return ((fn.instr(fn.lower(Ticket.subject), needle) > 0) | Ticket.requester.in_(requesters)
            | Ticket.id.in_(in_messages))


@ticket.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ticket_show(app: AppState, reference: str, as_json: bool) -> None:
    """A ticket with its messages and history."""
    app.open()
    row = Ticket.get_or_none(Ticket.reference == reference.upper())
    if row is None:
        raise NotFound(f"no ticket {reference}")
    data = views.ticket_detail(row)
    if as_json:
        emit_json(data)
        return
    _print_detail(data)


def _print_detail(data: dict) -> None:  # type: ignore[type-arg]
    click.echo(f"{data['reference']}  {data['subject']}")
    for key in ("product", "status", "priority", "category", "requester", "assignee", "flags",
                "created_at", "due_first_response", "due_resolution", "time_spent_minutes",
                "linked_to", "watchers"):
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
