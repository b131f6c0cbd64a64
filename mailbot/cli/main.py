"""The `mailbot` command line: the admin's and the MTA's way in. It loads the settings, sets up
logging and the database, calls inward, and turns errors into one clear line and an exit code.
Nothing else in mailbot calls `sys.exit`."""

from __future__ import annotations

import dataclasses
import errno
import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click
from peewee import DatabaseError

from mailbot.cli import (
    accounts,
    backup,
    oauth,
    outbox,
    personal,
    products,
    quarantine,
    report,
    status,
    tickets,
)
from mailbot.cli.app import AppState, ssl_context, usage_errors
from mailbot.cli.logs import setup_logging
from mailbot.context import make_renderer
from mailbot.errors import EX_CONFIG, EX_SOFTWARE, EX_TEMPFAIL, DiskFull, MailbotError
from mailbot.store import migrations
from mailbot.store.db import explain, open_database

log = logging.getLogger("mailbot")


class MailbotGroup(click.Group):
    """Turns mailbot's errors into one line on stderr and the error's exit code; so too a database
    that cannot be used (damaged, read-only, full) and a disk without room, wherever they met us,
    and a command line click refuses (EX_USAGE, 64, as sysexits has it, not click's 2)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                with usage_errors():
                    return super().invoke(ctx)
            except (DatabaseError, sqlite3.DatabaseError) as exc:
                app = ctx.find_object(AppState)
                raise explain(exc, app.settings.database_url if app else "") from exc
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise DiskFull(f"no space left on the disk: {exc}") from exc
        except MailbotError as exc:
            click.echo(f"mailbot: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=MailbotGroup)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    default=None,
    help="The .env file to read (default: ./.env).",
)
@click.pass_context
def main(ctx: click.Context, env_file: Path | None) -> None:
    """mailbot: a support desk that lives in email."""
    setup_logging()
    ctx.obj = AppState(env_file)


@main.group()
def db() -> None:
    """Create or upgrade the database."""


@db.command("init")
@click.pass_obj
def db_init(app: AppState) -> None:
    """Create the database, or bring an existing one to the latest schema, keeping its data."""
    settings = app.settings
    database = open_database(settings.database_url, settings.db_busy_timeout)
    before, after = migrations.migrate(database)
    click.echo(f"database ready at schema version {after} (was {before})")


@db.command("copy")
@click.option("--to", "target_url", required=True, metavar="URL", help="An empty postgresql:// database.")
@click.pass_obj
def db_copy(app: AppState, target_url: str) -> None:
    """Copy this installation (every table, the ticket numbers) into an empty PostgreSQL
    database and check the counts; the raw mails and attachments stay where they are."""
    from mailbot.store.copy import copy_installation, count_rows, prepare_target
    from mailbot.store.db import server_database
    from mailbot.store.models import database

    target = server_database(target_url)
    try:
        app.open()  # the source, at the latest schema
        prepare_target(target)
        total = sum(count_rows(database.obj).values())
        # click draws the bar on a terminal only; elsewhere it prints the label once.
        with click.progressbar(length=total, label="copying", file=sys.stderr) as bar:
            counts = copy_installation(database.obj, target, bar.update)
    finally:
        target.close()
    for table, rows in counts.items():
        click.echo(f"{table:<16} {rows:>9}")
    click.echo(
        f"copied {sum(counts.values())} rows; the counts match. Point MAILBOT_DATABASE_URL at the "
        "new database to use it (the raw mails stay under MAILBOT_DATA_DIR)."
    )


@db.command("schema")
def db_schema() -> None:
    """Print the SQL of the current schema (SQLite), as kept in schema.sql."""
    from peewee import SqliteDatabase

    click.echo(migrations.schema_sql(SqliteDatabase(":memory:")), nl=False)


@main.command()
@click.option("--once", is_flag=True, required=True, help="One pass over every mailbox and the outbox.")
@click.pass_obj
def poll(app: AppState, once: bool) -> None:
    """One pass over every mailbox and the outbox, then exit (cron, tests)."""
    from mailbot.service.daemon import poll_everything

    desk = app.open()
    failures, exit_code = poll_everything(desk, ssl_context(desk.settings))
    for failure in failures:
        click.echo(f"mailbot: {failure}", err=True)
    if exit_code:
        sys.exit(exit_code)


@main.command()
@click.pass_obj
def run(app: AppState) -> None:
    """Run the daemon: every mailbox, the outbox and the SLA clock, until SIGTERM. A second daemon
    on the same SQLite database refuses to start (exit 75)."""
    from mailbot.service.daemon import run_daemon
    from mailbot.store.db import hold_daemon_lock

    desk = app.open()
    lock = hold_daemon_lock(desk.settings.database_url)
    try:
        run_daemon(desk, ssl_context(desk.settings))
    finally:
        if lock is not None:
            lock.close()


@main.command()
@click.argument("product")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def ingest(app: AppState, product: str, files: tuple[Path, ...]) -> None:
    """Take raw mails from FILES, or one from stdin (an MTA pipe). Exits 75 on a temporary
    failure so the MTA tries again, 70 when a mail was quarantined after an error in mailbot."""
    from mailbot.service.daemon import ingest_each
    from mailbot.service.health import record_ingested
    from mailbot.store.db import require_durable_commits
    from mailbot.store.files import Store

    # The MTA deletes its copy once we exit 0: every commit and file must be on disk by then.
    desk = dataclasses.replace(app.open(), store=Store(app.settings.data_dir, fsync=True))
    require_durable_commits()
    internal = new_mails = 0
    settings = app.product(product, "PRODUCT")
    for line, result in ingest_each(desk, settings, files, sys.stdin.buffer):
        click.echo(line)
        internal += result.internal
        new_mails += not result.already_seen
    record_ingested(desk, settings, new_mails)
    if internal:
        click.echo(
            f"mailbot: {internal} mail(s) quarantined after an internal error; see the log and "
            f"{desk.store.quarantine_dir}",
            err=True,
        )
        sys.exit(EX_SOFTWARE)


@main.command()
@click.pass_obj
def check(app: AppState) -> None:
    """Validate the configuration, render every template (the defaults and each product's
    overrides, in every language) and connect to every mailbox and mail server it names. Exits
    78 when a template cannot be rendered, 75 when a server cannot be reached."""
    from mailbot.outgoing.template_check import check_templates
    from mailbot.service.daemon import check_authentication, check_connections

    settings = app.settings
    for line in settings.unknown_keys:
        click.echo(f"FAIL configuration: {line}", err=True)
    if not settings.unknown_keys:
        click.echo(f"configuration ok: {len(settings.products)} product(s), data in {settings.data_dir}")
    broken = check_templates(
        make_renderer(settings), [(p.key, p.name, p.address) for p in settings.products if p.templates]
    )
    for line in broken:
        click.echo(f"FAIL template {line}", err=True)
    if not broken:
        click.echo("ok   templates: every template renders in every language")
    problems = check_connections(settings, ssl_context(settings))
    if settings.trusted_authserv_id:
        app.open()
        problems += check_authentication(settings)
    for line in problems:
        click.echo(line, err=not line.startswith("ok"))
    if broken or settings.unknown_keys:
        sys.exit(EX_CONFIG)
    if any(line.startswith("FAIL") for line in problems):
        sys.exit(EX_TEMPFAIL)


main.add_command(accounts.account)
main.add_command(products.product)
main.add_command(outbox.outbox)
main.add_command(quarantine.quarantine)
main.add_command(tickets.ticket)
main.add_command(report.report)
main.add_command(status.status)
main.add_command(oauth.oauth)
accounts.account.add_command(report.credit)
db.add_command(backup.db_backup)
accounts.account.add_command(personal.account_export)
accounts.account.add_command(personal.account_forget)
