"""STYLE.md's one-way flow, checked by reading imports, package by package: the layout follows the
mail (inbound -> desk -> outgoing -> transports) and each package says what it may not reach for.
A new module is checked by the rule of the package it is put in; no list of modules to keep up."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mailbot"
MAX_LINES = 400

# Third-party and stdlib modules that talk to the outside world or run the process.
NETWORK = ("imapclient", "imaplib", "smtplib", "socket", "ssl")
PROCESS = ("apscheduler", "click")
DATABASE = (
    "peewee",
    "playhouse",
    "mailbot.store.models",
    "mailbot.store.db",
    "mailbot.store.migrations",
    "mailbot.store.statements",
)
EDGE = ("mailbot.service", "mailbot.cli")

# package -> the names it never imports (a name covers its submodules).
FORBIDDEN = {
    # raw bytes to a parsed mail: nothing of what happens to the mail afterwards, no database.
    "inbound": (
        *NETWORK,
        *PROCESS,
        *DATABASE,
        "jinja2",
        "mailbot.context",
        "mailbot.desk",
        "mailbot.sla",
        "mailbot.outgoing",
        "mailbot.transports",
        "mailbot.sources",
        *EDGE,
    ),
    # business time and deadlines: no tickets rules, no mail.
    "sla": (
        *NETWORK,
        *PROCESS,
        "mailbot.inbound",
        "mailbot.desk",
        "mailbot.outgoing",
        "mailbot.transports",
        "mailbot.sources",
        *EDGE,
    ),
    # the ticket domain: hands outgoing mail to the outbox, never to a transport.
    "desk": (*NETWORK, *PROCESS, "mailbot.transports", "mailbot.sources", *EDGE),
    # notifications and the outbox: a Transport is handed in (the type from transports.base only).
    "outgoing": (
        *NETWORK,
        *PROCESS,
        "mailbot.transports.smtp",
        "mailbot.transports.maildir",
        "mailbot.sources",
        *EDGE,
    ),
    # the transports and sources talk to servers and know nothing of mail's meaning.
    "transports": (
        *PROCESS,
        *DATABASE,
        "mailbot.inbound",
        "mailbot.desk",
        "mailbot.sla",
        "mailbot.outgoing",
        "mailbot.sources",
        "mailbot.context",
        *EDGE,
    ),
    "sources": (
        *PROCESS,
        *DATABASE,
        "mailbot.inbound",
        "mailbot.desk",
        "mailbot.sla",
        "mailbot.outgoing",
        "mailbot.transports",
        "mailbot.context",
        *EDGE,
    ),
    # OAuth2 tokens: talks to identity providers over HTTP, knows nothing of mail or the database.
    "oauth": (
        *PROCESS,
        *DATABASE,
        "mailbot.inbound",
        "mailbot.desk",
        "mailbot.sla",
        "mailbot.outgoing",
        "mailbot.transports",
        "mailbot.sources",
        "mailbot.context",
        *EDGE,
    ),
    # the database and the files: below everything.
    "store": (
        *NETWORK,
        *PROCESS,
        "mailbot.inbound",
        "mailbot.desk",
        "mailbot.sla",
        "mailbot.outgoing",
        "mailbot.transports",
        "mailbot.sources",
        "mailbot.context",
        "mailbot.config",
        *EDGE,
    ),
    # the process wiring calls inward; only the CLI calls it.
    "service": (*PROCESS[1:], "mailbot.cli"),
    "cli": (),
}
# The outgoing side reaches back into the ticket domain for these, and only these: the limit on
# automatic mail a customer gets (notify) and the event a failed delivery leaves on its ticket.
# What outgoing mail still asks of the desk: the daily limit of automatic mail, a failed delivery
# recorded on its ticket, and the role an actor has on a product (named in relayed mail).
OUTGOING_USES_OF_DESK = {"mailbot.desk.caps", "mailbot.desk.tickets", "mailbot.desk.accounts"}
# Modules outside the inbound package that are pure all the same: values in, values out.
PURE = [
    "sla/calendar",
    "sla/notation",
    "sla/clock",
    "desk/commands",
    "desk/subjects",
    "outgoing/compose",
    "outgoing/enclosures",
    "outgoing/addressing",
    "service/parse_ahead",
    "config",
    "errors",
    "vocabulary",
]


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def package_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def reaches(name: str, targets: tuple[str, ...] | set[str]) -> bool:
    return any(name == t or name.startswith(t + ".") for t in targets)


def test_every_module_lives_in_a_package_with_a_rule():
    loose = [p.name for p in modules() if package_of(p) == ""]
    assert sorted(loose) == [
        "__init__.py",
        "__main__.py",
        "config.py",
        "config_files.py",
        "config_values.py",
        "context.py",
        "errors.py",
        "vocabulary.py",  # the words every layer uses, the store's columns included
    ]
    assert {package_of(p) for p in modules()} - {""} == set(FORBIDDEN)


@pytest.mark.parametrize(
    "path", [p for p in modules() if package_of(p)], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_a_package_imports_nothing_it_must_not(path):
    crossing = sorted(n for n in imports_of(path) if reaches(n, FORBIDDEN[package_of(path)]))
    assert crossing == [], f"mailbot/{path.relative_to(PACKAGE)} reaches for {crossing}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "outgoing").glob("*.py")), ids=lambda p: p.name)
def test_the_outgoing_side_uses_only_the_ticket_parts_it_needs(path):
    desk = {".".join(n.split(".")[:3]) for n in imports_of(path) if n.startswith("mailbot.desk.")}
    assert desk <= OUTGOING_USES_OF_DESK, f"mailbot/outgoing/{path.name} reaches for {desk}"


@pytest.mark.parametrize(
    "path",
    [
        p for p in modules() if package_of(p) not in ("service", "cli") and p.name != "__main__.py"
    ],  # `python -m mailbot`: the CLI's door
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_only_the_edges_run_the_process(path):
    """The scheduler and the command line are used by `service` and `cli` alone."""
    crossing = sorted(n for n in imports_of(path) if reaches(n, (*PROCESS, *EDGE)))
    assert crossing == [], f"mailbot/{path.relative_to(PACKAGE)} reaches for {crossing}"


@pytest.mark.parametrize("name", PURE)
def test_pure_parts_touch_no_database(name):
    path = PACKAGE / f"{name}.py"
    touched = sorted(n for n in imports_of(path) if reaches(n, DATABASE))
    assert touched == [], f"mailbot/{name}.py is meant to be pure but imports {touched}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_the_house_allows(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"mailbot/{path.relative_to(PACKAGE)} has {lines} lines"


# The outbox's one door (`mailbot.outgoing.enqueue`): every row gets the same Message-ID making,
# status and claim defaults there. Peewee's ways of writing a row, and raw SQL that inserts one.
OUTBOX_DOOR = PACKAGE / "outgoing" / "enqueue.py"
ROW_WRITERS = {"create", "insert", "insert_many", "insert_from", "replace", "replace_many", "get_or_create"}
OUTBOX_INSERT = re.compile(r"\b(insert|replace)\b[^;]*\binto\s+[\"'`]?outbox\b", re.IGNORECASE)


def outbox_writes(path: Path) -> list[str]:
    """Where `path` writes an outbox row: `Outbox.create(...)` and its kin, `Outbox(...)`,
    `statements.add(Outbox, ...)`, or SQL text that inserts into the table."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and (how := _outbox_call(node)):
            found.append(f"line {node.lineno}: {how}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if OUTBOX_INSERT.search(node.value):
                found.append(f"line {node.lineno}: SQL inserting into outbox")
    return found


def _is_outbox(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "Outbox"


def _outbox_call(call: ast.Call) -> str:
    func = call.func
    if _is_outbox(func):
        return "Outbox(...)"
    if isinstance(func, ast.Attribute) and _is_outbox(func.value) and func.attr in ROW_WRITERS:
        return f"Outbox.{func.attr}"
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name in ("add", "insert_row") and call.args and _is_outbox(call.args[0]):
        return f"{name}(Outbox, ...)"
    return ""


@pytest.mark.parametrize(
    "path", [p for p in modules() if p != OUTBOX_DOOR], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_only_the_door_writes_outbox_rows(path):
    assert outbox_writes(path) == [], f"mailbot/{path.relative_to(PACKAGE)} writes outbox rows itself"


def test_the_door_check_sees_every_way_of_writing_a_row(tmp_path):
    """The check above is worth something only if it finds the writes it is meant to forbid."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "Outbox.create(message_id='x')\n"
        "statements.add(Outbox, message_id='x')\n"
        "Outbox.insert(message_id='x').execute()\n"
        "Outbox(message_id='x').save()\n"
        "db.execute_sql('INSERT INTO \"outbox\" (message_id) VALUES (?)', ('x',))\n"
        "Outbox.select().where(Outbox.template == 'alert-x')\n"
    )
    assert len(outbox_writes(sample)) == 5
    assert outbox_writes(OUTBOX_DOOR), "the door itself writes rows"
