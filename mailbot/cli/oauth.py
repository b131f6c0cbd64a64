"""`mailbot oauth login NAME` (sign a mailbox in with the device-code or the installed-app flow,
or check that client credentials work) and `mailbot oauth status [--json]` (per mailbox: flow,
account, the access token's expiry, the last refresh and the last error; never a token). NAME is a
product key, or SMTP for the sending account."""

from __future__ import annotations

from typing import Any

import click

from mailbot.cli.app import AppState, emit_json
from mailbot.errors import ConfigError
from mailbot.service.oauth import keepers


@click.group()
def oauth() -> None:
    """OAuth2 sign-in for Microsoft 365, Google Workspace and other providers (docs/oauth2.md)."""


@oauth.command("login")
@click.argument("name")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="installed_app: the 127.0.0.1 port the browser comes back to (0: any free one).",
)
@click.pass_obj
def login(app: AppState, name: str, port: int) -> None:
    """Sign NAME (a product key, or SMTP) in: prints where to go (and the code, for device_code),
    waits, stores the tokens."""
    found = keepers(app.settings)
    keeper = found.get(name.upper())
    if keeper is None:
        known = ", ".join(found) or "none"
        raise ConfigError(f"{name}: no mailbox logs in with OAuth2 by that name (with oauth2: {known})")
    keeper.login(lambda line: click.echo(line), port=port)


@oauth.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(app: AppState, as_json: bool) -> None:
    """Each OAuth2 login: flow, account, access-token expiry, last refresh, last error."""
    rows = [keeper.status() for keeper in keepers(app.settings).values()]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no mailbox logs in with OAuth2")
    for row in rows:
        click.echo(describe(row))


def describe(row: dict[str, Any]) -> str:
    line = (
        f"{row['name']:<10} {row['provider']}/{row['flow']} as {row['account']}: "
        f"{'signed in' if row['signed_in'] else 'NOT SIGNED IN'}, token expires {row['expires_at'] or '-'}, "
        f"last refresh {row['last_refresh'] or 'never'}"
    )
    if row["last_error"]:
        line += f"\n{'':<10} last error ({row['last_error_at']}): {row['last_error']}"
    return line
