"""`mailbot db backup PATH`: a consistent copy of the running installation (`mailbot.store.backup`);
how to restore one is in docs/operating.md."""

from __future__ import annotations

from pathlib import Path

import click

from mailbot.cli.app import AppState
from mailbot.store.backup import back_up
from mailbot.store.files import Store


@click.command("backup")
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_obj
def db_backup(app: AppState, path: Path) -> None:
    """Copy the database (safe while the daemon runs) and the raw mails, attachments and quarantine
    into the new folder PATH. Restore: see docs/operating.md."""
    settings = app.settings
    summary = back_up(settings.database_url, Store(settings.data_dir), path, settings.db_busy_timeout)
    click.echo(
        f"backup written to {summary.folder}: database {summary.database_bytes} bytes, "
        f"{summary.files} file(s)"
    )
