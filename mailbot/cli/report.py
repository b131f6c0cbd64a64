"""`mailbot report` (were the service levels kept?) and `mailbot account credit` (prepaid support
time): click commands, registered by `mailbot.cli.main` as `main.add_command(report)` and
`accounts.account.add_command(credit)`. The figures come from `mailbot.sla.report` and
`mailbot.desk.credit`; this module only reads options and prints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import click

from mailbot.cli.app import AppState, emit_json
from mailbot.desk import credit as credits
from mailbot.desk.accounts import AccountError, find_account
from mailbot.sla.report import build_report, format_report, report_data
from mailbot.store.models import CreditEntry, database

HISTORY_LINES = 10


@click.command()
@click.option(
    "--product",
    "product_keys",
    multiple=True,
    metavar="KEY",
    help="Only this product (may be repeated). Default: every product.",
)
@click.option(
    "--from",
    "start",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="First day (YYYY-MM-DD, in the product's time zone). Default: the 1st of the month of --to.",
)
@click.option(
    "--to",
    "end",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Last day, included (YYYY-MM-DD). Default: today.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def report(
    app: AppState, product_keys: tuple[str, ...], start: datetime | None, end: datetime | None, as_json: bool
) -> None:
    """Service levels per product and priority: tickets opened and closed, first response and
    resolution in business time (mean, 90th percentile, share within target, breaches), and the
    time recorded per organisation."""
    desk = app.open()
    now = desk.clock()
    last = end.date() if end else now.date()
    first = start.date() if start else last.replace(day=1)
    if last < first:
        raise click.UsageError(f"--to {last} is before --from {first}")
    keys = tuple(app.product(key).key for key in product_keys)
    reports = build_report(desk.settings, first, last, now, keys)
    if as_json:
        emit_json(report_data(reports))
    else:
        click.echo(format_report(reports), nl=False)


@click.command("credit")
@click.argument("email", required=False)
@click.option(
    "--organisation",
    default=None,
    help="The organisation's credit instead of an account's (created when new).",
)
@click.option(
    "--add",
    "add_minutes",
    type=click.IntRange(min=0),
    default=None,
    metavar="MINUTES",
    help="Minutes of prepaid support to add.",
)
@click.option(
    "--expires", default=None, metavar="YYYY-MM-DD", help="Last day the whole balance may be used, or 'none'."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def credit(
    app: AppState,
    email: str | None,
    organisation: str | None,
    add_minutes: int | None,
    expires: str | None,
    as_json: bool,
) -> None:
    """Show or add prepaid support credit of the account EMAIL (and its organisation), or of
    --organisation. Time is taken from the organisation first while it has credit."""
    if (email is None) == (organisation is None):
        raise click.UsageError("give either EMAIL or --organisation NAME")
    desk = app.open()
    now = desk.clock()
    changing = add_minutes is not None or expires is not None
    holders = _holders(email, organisation, create=changing)
    if changing:
        until = _expiry(expires)
        with database.atomic():
            credits.add_credit(
                holders[0],
                add_minutes or 0,
                now,
                expires=until,
                clear_expiry=expires is not None and until is None,
                actor="admin",
            )
    data = [_holder_data(h, now.date()) for h in holders]
    if as_json:
        emit_json(data)
        return
    for item in data:
        _print_holder(item)


def _holders(email: str | None, organisation: str | None, *, create: bool) -> list[Any]:
    """The holder named on the command line first, then the account's organisation, if any."""
    if organisation is not None:
        found = (
            credits.get_or_create_organisation(organisation)
            if create
            else credits.find_organisation(organisation)
        )
        if found is None:
            raise AccountError(f"no organisation {organisation!r} with credit; add some with --add")
        return [found]
    account = find_account(email or "")
    if account is None:
        raise AccountError(f"no account {email!r}; create it with 'mailbot account add'")
    org = credits.find_organisation(account.organisation)
    return [account] if org is None else [account, org]


def _expiry(value: str | None) -> date | None:
    if value is None or value.strip().lower() == "none":
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected YYYY-MM-DD or 'none'", param_hint="--expires"
        ) from None


def _holder_data(holder: Any, today: date) -> dict[str, Any]:
    state = credits.credit_of(holder, today)
    entries = holder.credit_entries.order_by(CreditEntry.at.desc(), CreditEntry.id.desc()).limit(
        HISTORY_LINES
    )
    return {
        "holder": state.holder,
        "minutes": state.minutes,
        "expires": state.expires.isoformat() if state.expires else None,
        "expired": state.expired,
        "on_record": state.on_record,
        "history": [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "minutes": e.minutes,
                "spent": e.spent,
                "balance": e.balance,
                "ticket": e.ticket.reference if e.ticket_id else None,
                "note": e.note,
            }
            for e in entries
        ],
    }


def _print_holder(item: dict[str, Any]) -> None:
    until = f", valid until {item['expires']}" if item["expires"] else ", no expiry"
    if item["expired"]:
        until = f"; {item['on_record']} min expired on {item['expires']}"
    click.echo(f"{item['holder']}: {item['minutes']} min{until}")
    for entry in item["history"]:
        ticket = f" {entry['ticket']}" if entry["ticket"] else ""
        click.echo(
            f"  {entry['at'][:16]} {entry['kind']:<6} {entry['minutes']:>+6} "
            f"-> {entry['balance']:>5}{ticket}  {entry['note']}"
        )
