"""`mailbot status`: how the installation is doing, from what the daemon (or `poll --once`)
recorded: each mailbox, the outbox, open tickets and SLA breaches per product, and the health
alerts standing. It reads the database only; `mailbot check` is the one that connects."""

from __future__ import annotations

from typing import Any

import click

from mailbot.cli.app import AppState, emit_json
from mailbot.service.health import collect_status


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(app: AppState, as_json: bool) -> None:
    """Each mailbox (reachable, last mail, last error, backlog), the outbox (waiting, failed,
    oldest), open tickets and SLA breaches per product, and the last successful pass."""
    report = collect_status(app.open())
    if as_json:
        emit_json(report)
        return
    for line in describe(report):
        click.echo(line)


def describe(report: dict[str, Any]) -> list[str]:
    lines = [f"last successful pass: {_when(report['last_pass_at'])}"]
    if report.get("daemons"):  # several daemons on a server database
        lines.append(f"daemons running: {report['daemons']}")
    lines += ["", "mailboxes:"]
    for box in report["mailboxes"]:
        lines.append(f"  {box['product']:<10} {_reachable(box)}  {box['mailbox'] or '(not read yet)'}")
        if box["reachable"] is not None:
            lines.append(
                f"  {'':<10} last pass {_when(box['last_pass_at'])}, last mail {_when(box['last_mail_at'])}, "
                f"backlog {box['backlog']}"
            )
        if box.get("held_by"):
            lines.append(f"  {'':<10} worked by daemon {box['held_by']}")
        if box["last_error"]:
            lines.append(f"  {'':<10} last error ({_when(box['last_error_at'])}): {box['last_error']}")
    outbox = report["outbox"]
    lines += [
        "",
        f"outbox: {outbox['waiting']} waiting ({outbox['retrying']} being retried), "
        f"{outbox['failed']} failed, {outbox['dead']} given up; "
        f"oldest waiting: {_when(outbox['oldest_waiting'])}",
        "",
        f"{'product':<10} {'open tickets':>12} {'SLA breaches':>13}",
    ]
    for key, count in report["open_tickets"].items():
        lines.append(f"{key:<10} {count:>12} {report['sla_breaches'][key]:>13}")
    lines += ["", "alerts standing:" if report["alerts"] else "alerts standing: none"]
    lines += [f"  since {_when(alert['since'])}: {alert['summary']}" for alert in report["alerts"]]
    return lines


def _reachable(box: dict[str, Any]) -> str:
    if box["reachable"] is None:
        return "unknown    "
    if box["reachable"]:
        return "reachable  "
    return f"UNREACHABLE since {_when(box['failing_since'])}"


def _when(moment: str | None) -> str:
    return moment[:19].replace("T", " ") + " UTC" if moment else "never"
