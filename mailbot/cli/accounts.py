"""`mailbot account ...`: accounts, their grants, languages and notification preferences."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import click

from mailbot.cli.app import AppState, emit_json
from mailbot.desk import accounts, views
from mailbot.outgoing.notify import parse_notify
from mailbot.store.models import Account, Grant
from mailbot.vocabulary import Language, values


@click.group()
def account() -> None:
    """Accounts (customers, engineers, board) and their access per product."""


def _product_key(app: AppState, key: str) -> str:
    return app.product(key).key


@account.command("add")
@click.argument("email")
@click.option("--name", default="")
@click.option("--product", "product_key", required=True, help="Product key, e.g. VISI.")
@click.option("--role", type=click.Choice(values(accounts.ROLES)), default="customer", show_default=True)
@click.option("--language", type=click.Choice(values(Language)), default=None)
@click.option("--organisation", default="")
@click.option(
    "--contract-until",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Last day of the maintenance contract (YYYY-MM-DD).",
)
@click.pass_obj
def account_add(
    app: AppState,
    email: str,
    name: str,
    product_key: str,
    role: str,
    language: str | None,
    organisation: str,
    contract_until: datetime | None,
) -> None:
    """Create or update an account and grant it ROLE on PRODUCT."""
    app.open()
    key = _product_key(app, product_key)
    spec = accounts.AccountSpec(
        email,
        name=name,
        organisation=organisation,
        language=language or "",
        contract_until=contract_until.date() if contract_until else None,
    )
    row = accounts.upsert_account(spec)
    accounts.grant(row, key, role)
    click.echo(f"{row.email}: {role} on {key}")


@account.command("grant")
@click.argument("email")
@click.option("--product", "product_key", required=True)
@click.option("--role", type=click.Choice(values(accounts.ROLES)), default="customer", show_default=True)
@click.pass_obj
def account_grant(app: AppState, email: str, product_key: str, role: str) -> None:
    """Give an existing account ROLE on PRODUCT."""
    app.open()
    row = _existing(email)
    accounts.grant(row, _product_key(app, product_key), role)
    click.echo(f"{row.email}: {role} on {product_key.upper()}")


@account.command("revoke")
@click.argument("email")
@click.option("--product", "product_key", required=True)
@click.pass_obj
def account_revoke(app: AppState, email: str, product_key: str) -> None:
    """Take away the account's access to PRODUCT."""
    app.open()
    row = _existing(email)
    if not accounts.revoke(row, _product_key(app, product_key)):
        raise accounts.AccountError(f"{row.email} had no access to {product_key.upper()}")
    click.echo(f"{row.email}: no access to {product_key.upper()}")


@account.command("import")
@click.argument("product_key", metavar="PRODUCT")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--role", type=click.Choice(values(accounts.ROLES)), default="customer", show_default=True)
@click.pass_obj
def account_import(app: AppState, product_key: str, csv_file: Path, role: str) -> None:
    """Import accounts from a CSV file (header: email,name,organisation,language,role,contract_until).
    All or nothing: with a bad line, every bad line is reported and nothing is imported (exit 65)."""
    desk = app.open()
    key = _product_key(app, product_key)
    try:
        with csv_file.open(newline="", encoding="utf-8-sig") as handle:
            count = accounts.import_accounts(handle, key, role, desk.progress)
    except UnicodeDecodeError as exc:
        raise accounts.ImportRefused(f"{csv_file}: not UTF-8 text ({exc.reason}); nothing imported") from None
    click.echo(f"{count} account(s) imported for {key}")


@account.command("set")
@click.argument("email")
@click.option("--language", type=click.Choice(values(Language)), default=None)
@click.option("--organisation", default=None)
@click.option(
    "--notify",
    default=None,
    callback=lambda _ctx, _param, value: _checked(parse_notify, value),
    help="all, none, or a comma list of mail kinds to receive.",
)
@click.option(
    "--contract-until",
    default=None,
    callback=lambda _ctx, _param, value: _checked(_contract_end, value),
    help="YYYY-MM-DD, or 'none'.",
)
@click.pass_obj
def account_set(
    app: AppState,
    email: str,
    language: str | None,
    organisation: str | None,
    notify: str | None,
    contract_until: str | None,
) -> None:
    """Change an account's language, organisation, notification preferences or contract."""
    app.open()
    row = _existing(email)
    if language:
        row.language = language
    if organisation is not None:
        row.organisation = organisation
    if notify is not None:
        row.notify = notify
    if contract_until is not None:
        row.contract_until = None if contract_until == "none" else date.fromisoformat(contract_until)
    row.save()
    click.echo(f"{row.email} updated")


@account.command("list")
@click.option("--product", "product_key", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def account_list(app: AppState, product_key: str | None, as_json: bool) -> None:
    """List accounts, optionally those with access to one product."""
    app.open()
    query = Account.select().order_by(Account.email)
    if product_key:
        key = _product_key(app, product_key)
        query = query.join(Grant).where(Grant.product == key)
    rows = [views.account_dict(a) for a in query]
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'EMAIL':<36} {'NAME':<24} {'ORGANISATION':<24} {'CONTRACT END':<12} LANG GRANTS")
    for row in rows:
        grants = ", ".join(f"{p}:{r}" for p, r in row["grants"].items())
        click.echo(
            f"{row['email']:<36} {row['name']:<24} {row['organisation'] or '-':<24} "
            f"{row['contract_until'] or '-':<12} {row['language']:<4} {grants}"
        )


def _checked(parse: Callable[[str], str], value: str | None) -> str | None:
    """A value read by `parse`, its ValueError a usage error naming the option (exit 64)."""
    try:
        return None if value is None else parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _contract_end(value: str) -> str:
    if value.strip().lower() == "none":
        return "none"
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise ValueError(f"{value!r} is not a date; expected YYYY-MM-DD, or none") from None


def _existing(email: str) -> Account:
    row = accounts.find_account(email)
    if row is None:
        raise accounts.AccountError(f"no account {email!r}; create it with 'mailbot account add'")
    return row
