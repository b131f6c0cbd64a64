"""STYLE.md's one-way flow, checked by reading imports: the ticket logic and the other pure
parts never reach for IMAP, SMTP, the scheduler or the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mailbot"
EDGES = (
    "imapclient",
    "imaplib",
    "smtplib",
    "apscheduler",
    "click",
    "mailbot.cli",
    "mailbot.daemon",
    "mailbot.sources.imap",
    "mailbot.transport",
    "socket",
    "ssl",
)
# The edges: the command line, the daemon's wiring and workers, the transports and sources.
EDGE_MODULES = {
    "__init__",
    "__main__",
    "cli",
    "cli_accounts",
    "cli_tickets",
    "cli_report",
    "cli_quarantine",
    "cli_outbox",
    "daemon",
    "workers",
    "transport",
}
CORE = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in EDGE_MODULES)
PURE = [
    "routing",
    "commands",
    "businesshours",
    "sla",
    "compose",
    "parse",
    "charsets",
    "senders",
    "headblock",
    "automail",
    "trim",
    "message",
    "authresults",
    "prepare",
    "parse_ahead",
]


def imports_of(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_imports_nothing_from_the_edges(module):
    crossing = sorted(n for n in imports_of(module) if any(n == e or n.startswith(e + ".") for e in EDGES))
    if module == "outbox":  # the outbox drains into a Transport it is handed: the type only
        crossing = [n for n in crossing if n not in ("mailbot.transport", "mailbot.transport.Transport")]
    assert crossing == [], f"mailbot/{module}.py reaches for {crossing}"


@pytest.mark.parametrize("module", PURE)
def test_pure_parts_touch_no_database(module):
    touched = sorted(
        n for n in imports_of(module) if n.startswith(("peewee", "mailbot.models", "mailbot.db"))
    )
    assert touched == [], f"mailbot/{module}.py is meant to be pure but imports {touched}"
