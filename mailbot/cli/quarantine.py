"""`mailbot quarantine ...`: the mails kept aside with their reason (list, show), and what the
admin does with them: run one through ingest again (reprocess, exactly once) or drop it.

An ID is the quarantined file's name without `.eml` (as `list` prints it)."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

import click

from mailbot.cli.app import AppState, emit_json
from mailbot.context import Desk
from mailbot.errors import EX_USAGE, MailbotError
from mailbot.inbound.charsets import clean_line, decode_header_value
from mailbot.service import ingest
from mailbot.store.models import Seen, database


class NotQuarantined(MailbotError):
    """An ID on the command line that names no kept mail: a usage error, as an unknown product is."""

    exit_code = EX_USAGE


@click.group()
def quarantine() -> None:
    """Mails kept aside with their reason: list, show, reprocess, drop."""


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def quarantine_list(app: AppState, as_json: bool) -> None:
    """Every quarantined mail, oldest first, with its reason."""
    desk = app.open()
    rows = [_summary(desk, path) for path in desk.store.quarantined()]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['id']:<40} {row['product'] or '-':<8} {row['from'][:30]:<30} {row['reason']}")


@quarantine.command("show")
@click.argument("mail_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def quarantine_show(app: AppState, mail_id: str, as_json: bool) -> None:
    """One quarantined mail: why, where from, and its headers."""
    desk = app.open()
    path = _find(desk, mail_id)
    row = _summary(desk, path)
    row["headers"] = [[name, value] for name, value in _headers(path)]
    if as_json:
        emit_json(row)
        return
    for key in ("id", "product", "reason", "origin", "sha256", "size"):
        click.echo(f"{key + ':':<9} {row[key]}")
    click.echo("")
    for name, value in row["headers"]:
        click.echo(f"{name}: {value}")


@quarantine.command("reprocess")
@click.argument("mail_id")
@click.pass_obj
def quarantine_reprocess(app: AppState, mail_id: str) -> None:
    """Run a quarantined mail through ingest again, once; it leaves the quarantine when handled."""
    desk = app.open()
    result = ingest.reprocess(desk, _find(desk, mail_id))
    click.echo(f"{mail_id}: {result.outcome} {result.reference} {result.reason}".rstrip())


@quarantine.command("drop")
@click.argument("mail_id")
@click.pass_obj
def quarantine_drop(app: AppState, mail_id: str) -> None:
    """Delete a quarantined mail for good; the ledger remembers it was dropped."""
    desk = app.open()
    path = _find(desk, mail_id)
    with database.atomic():
        for row in _rows(path):
            row.outcome, row.reason = "ignored", f"dropped from the quarantine: {row.reason}"[:500]
            row.raw_path = ""
            row.save()
    desk.store.release(path)
    click.echo(f"{mail_id}: dropped")


def _find(desk: Desk, mail_id: str) -> Path:
    path = desk.store.quarantined_mail(mail_id)
    if path is None:
        raise NotQuarantined(f"no quarantined mail {mail_id!r} (see `mailbot quarantine list`)")
    return path


def _rows(path: Path) -> list[Seen]:
    candidates = Seen.select().where(Seen.raw_path.endswith("/" + path.name))
    return [row for row in candidates if Path(row.raw_path).name == path.name]


def _summary(desk: Desk, path: Path) -> dict[str, Any]:
    note = desk.store.quarantine_note(path)
    rows = _rows(path)
    headers = dict((name.lower(), value) for name, value in reversed(_headers(path)))
    return {
        "id": path.stem,
        "product": rows[0].product if rows else "",
        "reason": note.get("reason", ""),
        "origin": note.get("origin", ""),
        "sha256": note.get("sha256", ""),
        "size": path.stat().st_size,
        "from": headers.get("from", ""),
        "subject": headers.get("subject", ""),
    }


def _headers(path: Path) -> list[tuple[str, str]]:
    """The mail's header fields as written, decoded for display; nothing of the body."""
    with path.open("rb") as handle:
        head = BytesHeaderParser(policy=compat32).parse(handle)
    return [(clean_line(name), clean_line(decode_header_value(str(value)))) for name, value in head.items()]
