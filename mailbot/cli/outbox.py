"""`mailbot outbox ...`: what waits to be sent, what failed and why, and sending it again."""

from __future__ import annotations

from typing import Any

import click

from mailbot.cli.app import AppState, emit_json
from mailbot.outgoing import outbox as queue
from mailbot.store.models import Outbox
from mailbot.vocabulary import OutboxState as OutboxStatus

_NEXT = {OutboxStatus.FAILED: "on `mailbot outbox retry`", OutboxStatus.DEAD: "never (given up)"}


@click.group()
def outbox() -> None:
    """The outbox: mail waiting to be sent, and mail that failed."""


@outbox.command("list")
@click.option(
    "--failed", is_flag=True, help="Only mail that failed: not rendered (failed) or undeliverable (dead)."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def outbox_list(app: AppState, failed: bool, as_json: bool) -> None:
    """Mail not sent yet, oldest first: its id, status, template, recipient, attempts, when it
    will be tried again, and the last error."""
    app.open()
    rows = [_describe(row) for row in queue.waiting_rows(failed_only=failed)]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(
            f"{row['id']:<6} {row['status']:<8} {row['template']:<18} {row['recipient']:<32} "
            f"{row['ticket'] or '-':<12} attempts {row['attempts']}, next: "
            f"{row['next_attempt_at'] or _NEXT[OutboxStatus(row['status'])]}"
        )
        if row["last_error"]:
            click.echo(f"       {row['last_error']}")


@outbox.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every failed row (not the dead ones).")
@click.pass_obj
def outbox_retry(app: AppState, ids: tuple[int, ...], every: bool) -> None:
    """Queue failed (or dead) mail ID... again, or with --all every failed one; the next pass of
    the daemon or `poll --once` renders and sends it."""
    if bool(ids) == every:
        raise click.UsageError("give the row ids, or --all")
    desk = app.open()
    rows = queue.retry_rows(desk, None if every else list(ids))
    for row in rows:
        click.echo(f"{row.id}: {row.template} to {row.recipient} queued again")
    click.echo(f"{len(rows)} mail(s) queued again")


def _describe(row: Outbox) -> dict[str, Any]:
    status = OutboxStatus(row.status)
    return {
        "id": row.id,
        "status": status.value,
        "template": row.template,
        "recipient": row.recipient,
        "ticket": row.ticket.reference if row.ticket is not None else "",
        "message_id": row.message_id,
        "attempts": row.attempts,
        "created_at": row.created_at.isoformat(),
        # None: not tried again by itself (failed waits for `outbox retry`, dead is given up).
        "next_attempt_at": row.next_attempt_at.isoformat() if status == OutboxStatus.PENDING else None,
        "last_error": row.last_error,
    }
