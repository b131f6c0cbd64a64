"""`mailbot account export|forget EMAIL`: a person's request to see or erase their data
(`mailbot.desk.export`, `mailbot.desk.personal`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailbot.cli.app import AppState
from mailbot.desk.export import export_person
from mailbot.desk.personal import forget
from mailbot.errors import MailbotError, UsageError


@click.command("export")
@click.argument("email")
@click.option(
    "--to",
    "target",
    type=click.Path(path_type=Path),
    default=None,
    help="A new folder, or an archive ending in .zip or .tar.gz (default: ./export-<address>).",
)
@click.pass_obj
def account_export(app: AppState, email: str, target: Path | None) -> None:
    """Everything the desk holds on EMAIL: account, tickets, messages, attachments and the raw
    mails they sent, as export.json and files."""
    desk = app.open()
    target = target or Path(f"export-{email.strip().lower().replace('@', '-at-')}")
    done = export_person(desk, email, target)
    click.echo(f"{done.path}: {done.tickets} ticket(s), {done.messages} message(s), {done.files} file(s)")


@click.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask: erase at once.")
@click.pass_obj
def account_forget(app: AppState, email: str, yes: bool) -> None:
    """Erase EMAIL's personal data: address, name, texts, raw mails and attachments (the tickets
    stay, under a placeholder). Cannot be undone; backups taken before still hold it."""
    desk = app.open()
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"account forget {email} cannot be undone: add --yes to confirm")
        if not click.confirm(f"Erase every trace of {email}? This cannot be undone", err=True):
            raise MailbotError("nothing was erased")
    done = forget(desk, email)
    click.echo(
        f"forgotten: {done.tickets} ticket(s) kept without their data, {done.messages} message(s) erased"
    )
