"""Where the time of `mailbot poll --once` goes: `python -m bench.where [--mails N]`.

Loads the benchmark corpus into a private Dovecot, then runs `poll --once` inside this process
with a stopwatch around the main steps (no sampling profiler: its overhead would change the
picture). Each step's time is inclusive (a step within a step is also counted in its parent);
every SQL statement is counted, with the time SQLite itself took. Prints a table and the same
as JSON (bench/results/where.json). Use `--tree DIR` to time another source tree.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import corpus
from bench.lab import Lab, make_site

RESULTS = Path(__file__).resolve().parent / "results"
_spent: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)
_depth: dict[str, int] = defaultdict(int)
_MAIN = threading.get_ident()


def _timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() != _MAIN:  # the SMTP sink's thread parses what it receives
            return function(*args, **kwargs)
        _depth[label] += 1
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _depth[label] -= 1
            if not _depth[label]:  # the outermost call only: recursion is not counted twice
                _spent[label] += time.perf_counter() - started
                _calls[label] += 1

    return wrapper


def _patch(owner: Any, name: str, label: str) -> None:
    original = getattr(owner, name)
    if isinstance(owner, type):  # the attribute as defined, on the class or a base class
        original = next(k.__dict__[name] for k in owner.__mro__ if name in k.__dict__)
    if isinstance(original, classmethod):
        setattr(owner, name, classmethod(_timed(label, original.__func__)))
    else:
        setattr(owner, name, _timed(label, original))


# (label, module, attribute path): labels are indented by their nesting in the table.
STEPS = [
    ("poll pass over the mailbox", "mailbot.service.daemon", "poll_product"),
    ("  IMAP FETCH", "imapclient", "IMAPClient.fetch"),
    ("  IMAP STORE (acknowledge)", "imapclient", "IMAPClient.add_flags"),
    ("  ingest_mail", "mailbot.service.poller", "ingest_mail"),
    (
        "    the helper's result (waiting for it, or preparing here)",
        "mailbot.service.parse_ahead",
        "ParseAhead.prepare",
    ),
    ("    raw mail to disk", "mailbot.store.files", "Store.save_raw"),
    ("    raw mail kept and parsed (here, not ahead)", "mailbot.service.ingest", "prepare_mail"),
    ("    parse_mail", "mailbot.inbound.prepare", "parse_mail"),
    ("      email.message_from_bytes", "email", "message_from_bytes"),
    ("      mail-parser (MailParser)", "mailparser", "MailParser.__init__"),
    ("      html2text", "mailbot.inbound.bodies", "html_to_text"),
    ("    intake.handle_mail", "mailbot.desk.intake", "handle_mail"),
    ("      reply trimming (mail-parser-reply)", "mailbot.inbound.message", "visible_text"),
    ("      notify.queue_mail", "mailbot.outgoing.notify", "queue_mail"),
    ("        render (Jinja2)", "mailbot.outgoing.render", "Renderer.render"),
    ("        compose", "mailbot.outgoing.notify", "compose"),
    ("        Outbox row insert", "mailbot.store.models", "Outbox.create"),
    ("        Outbox row insert (the one door)", "mailbot.outgoing.enqueue", "enqueue"),
    ("      attachments to disk", "mailbot.store.files", "Store.save_attachment"),
    ("    ledger row insert", "mailbot.service.ingest", "_record"),
    ("    ledger lookups (Seen)", "mailbot.store.models", "Seen.get_or_none"),
    ("  cursor saves", "mailbot.store.models", "MailboxState.save"),
    ("SLA jobs", "mailbot.service.daemon", "jobs.run_due_jobs"),
    ("sending the outbox", "mailbot.service.daemon", "send_outbox"),
    ("  SMTP transaction", "mailbot.transports.smtp", "SmtpTransport.send"),
]


# The same modules in a tree from before mailbot was split into packages (`--tree` on an old commit).
FLAT_NAMES = {
    "mailbot.service.daemon": "mailbot.daemon",
    "mailbot.service.poller": "mailbot.poller",
    "mailbot.service.parse_ahead": "mailbot.parse_ahead",
    "mailbot.service.ingest": "mailbot.ingest",
    "mailbot.store.files": "mailbot.store",
    "mailbot.store.models": "mailbot.models",
    "mailbot.inbound.prepare": "mailbot.prepare",
    "mailbot.inbound.bodies": "mailbot.parse",
    "mailbot.inbound.message": "mailbot.message",
    "mailbot.desk.intake": "mailbot.inbound",
    "mailbot.outgoing.notify": "mailbot.notify",
    "mailbot.outgoing.render": "mailbot.render",
    "mailbot.transports.smtp": "mailbot.transport",
}


def _install() -> None:
    import importlib

    import peewee

    for label, module, path in STEPS:
        try:
            owner: Any = importlib.import_module(module)
        except ModuleNotFoundError:
            if module not in FLAT_NAMES:  # a module this tree does not have
                continue
            owner = importlib.import_module(FLAT_NAMES[module])
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        if hasattr(owner, name):  # a step this tree does not have is left out of its table
            _patch(owner, name, label.strip())
    execute = peewee.SqliteDatabase.execute_sql

    def execute_sql(self, sql, params=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        if threading.get_ident() != _MAIN:
            return execute(self, sql, params, *args, **kwargs)
        try:
            return execute(self, sql, params, *args, **kwargs)
        finally:
            _spent["SQL statements (time in SQLite)"] += time.perf_counter() - started
            _calls["SQL statements (time in SQLite)"] += 1

    peewee.SqliteDatabase.execute_sql = execute_sql


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.where", description=__doc__.split("\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--tree", default="", help="time mailbot from this source tree")
    parser.add_argument("--out", type=Path, default=RESULTS / "where.json")
    args = parser.parse_args(argv)
    if args.tree:
        sys.path.insert(0, str(Path(args.tree).resolve()))
    with Lab() as lab:
        user = lab.new_user()
        lab.fill(user, (m.raw for m in corpus.generate(args.mails)))
        site = make_site(
            lab.workdir / "site",
            lab.dovecot.imap_url(user),
            lab.smtp.url,
            corpus.customer_count(args.mails),
            ack_cutover="2000-01-01T00:00:00Z",
        )
        _install()
        from mailbot.cli.main import main as mailbot

        log = lab.workdir / "poll.log"
        started = time.perf_counter()
        with log.open("w") as err, contextlib.redirect_stderr(err), contextlib.suppress(SystemExit):
            mailbot(["--env-file", str(site.env_file), "poll", "--once"])
        total = time.perf_counter() - started
        logging.shutdown()
    rows = [("poll --once, in all", total, 1)]
    rows += [(label, _spent[label.strip()], _calls[label.strip()]) for label, _, _ in STEPS]
    rows.append(
        (
            "SQL statements (time in SQLite)",
            _spent["SQL statements (time in SQLite)"],
            _calls["SQL statements (time in SQLite)"],
        )
    )
    pass_time = _spent["poll pass over the mailbox"] or total
    print(f"poll --once over {args.mails} mails: {total:.1f} s; inclusive times, share of the mailbox pass")
    print("(the SMTP sink runs in this process, so sending is slower here than in python -m bench)\n")
    print(f"{'step':60s} {'s':>7s} {'ms/mail':>8s} {'share':>6s} {'calls':>7s}")
    for label, seconds, calls in rows:
        print(
            f"{label:60s} {seconds:7.2f} {seconds / args.mails * 1000:8.2f} "
            f"{seconds / pass_time:6.0%} {calls:7d}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "mails": args.mails,
                "total": total,
                "steps": [{"step": r[0].strip(), "seconds": r[1], "calls": r[2]} for r in rows],
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
