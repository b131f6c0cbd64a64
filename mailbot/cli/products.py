"""`mailbot product list|show`: the products from the configuration, with what an admin checks
before customers do: opening hours, SLA targets, the next holidays and the next opening hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import click

from mailbot.cli.app import AppState, emit_json
from mailbot.config import ProductSettings
from mailbot.sla.calendar import PRIORITIES, upcoming_holidays, upcoming_openings
from mailbot.sla.notation import describe_duration, describe_holidays, describe_hours

SHOWN = 10  # holidays and opening periods `product show` lists


@click.group()
def product() -> None:
    """The products from the configuration."""


@product.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def product_list(app: AppState, as_json: bool) -> None:
    """Every product: key, ticket prefix, address, opening hours and SLA targets."""
    rows = [_summary(p) for p in app.settings.products]
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'KEY':<10} {'PREFIX':<8} {'ADDRESS':<32} {'SLA crit/high/med/low':<22} HOURS")
    for row in rows:
        sla = "/".join(row["sla"][name] for name in PRIORITIES)
        hours = f"{row['hours']} ({row['timezone']})"
        click.echo(f"{row['key']:<10} {row['prefix']:<8} {row['address']:<32} {sla:<22} {hours}")


@product.command("show")
@click.argument("key")
@click.option(
    "--from",
    "start",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="List holidays and opening hours from this day (YYYY-MM-DD). Default: now.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def product_show(app: AppState, key: str, start: datetime | None, as_json: bool) -> None:
    """The product's settings that matter, its next holidays and its next opening hours."""
    settings = app.product(key, "KEY")
    zone = settings.calendar.zone
    moment = datetime.combine(start.date(), time(0), tzinfo=zone) if start else datetime.now(UTC)
    data = _detail(settings, moment)
    if as_json:
        emit_json(data)
        return
    click.echo(f"{data['key']}  {data['name']} <{data['address']}>")
    for name, value in data.items():
        if name not in ("key", "name", "address", "sla", "next_holidays", "next_openings"):
            click.echo(f"  {name.replace('_', ' ')}: {'-' if value in (None, '') else value}")
    click.echo("  sla: " + ", ".join(f"{name}={target}" for name, target in data["sla"].items()))
    click.echo(f"\nNext holidays ({data['timezone']}):")
    for holiday in data["next_holidays"] or [{"date": "none within a year", "name": ""}]:
        click.echo(f"  {holiday['date']}  {holiday['name']}")
    click.echo(f"\nNext opening hours ({data['timezone']}):")
    for period in data["next_openings"]:
        begin, end = datetime.fromisoformat(period["from"]), datetime.fromisoformat(period["until"])
        other_day = "" if end.date() == begin.date() else f" ({end:%a %Y-%m-%d})"
        click.echo(f"  {begin:%a %Y-%m-%d %H:%M} - {end:%H:%M}{other_day}")


def _summary(p: ProductSettings) -> dict[str, Any]:
    return {
        "key": p.key,
        "name": p.name,
        "address": p.address,
        "prefix": p.prefix,
        "timezone": p.calendar.zone.key,
        "hours": "24x7" if p.calendar.always_open else describe_hours(p.calendar.weekly),
        "holidays": describe_holidays(p.calendar.holidays),
        "sla": {name: describe_duration(target) for name, target in p.sla.items()},
        "first_response": describe_duration(p.first_response),
        "unknown_senders": p.unknown_senders,
        "contract_required": p.contract_required,
    }


def _detail(p: ProductSettings, moment: datetime) -> dict[str, Any]:
    first_day: date = moment.astimezone(p.calendar.zone).date()
    return {
        **_summary(p),
        "mailbox": _without_login(p.mailbox),
        "language": p.language,
        "contract_policy": p.contract_policy if p.contract_required else "",
        "sla_warning": p.sla_warning,
        "reminder_days": p.reminder_days,
        "auto_close_days": p.auto_close_days,
        "escalation_address": p.escalation_address,
        "silence_alert": describe_duration(p.silence_alert) if p.silence_alert else "never",
        "templates": str(p.templates) if p.templates else "",
        "next_holidays": [
            {"date": day.isoformat(), "name": name}
            for day, name in upcoming_holidays(p.calendar, first_day, SHOWN)
        ],
        "next_openings": [
            {"from": begin.isoformat(), "until": end.isoformat()}
            for begin, end in upcoming_openings(p.calendar, moment, SHOWN)
        ],
    }


def _without_login(url: str) -> str:
    """The mailbox URL without its user and password (which this listing must never show)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url
