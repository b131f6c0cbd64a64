"""The floor: what reading a mailbox costs before mailbot does anything of its own.

Run as a child process, `python -m bench.floor MODE URL DB` reads every mail of the IMAP folder
at URL and prints {"mails": N, "seconds": S}, S timed inside the process (the caller times the
whole child too, start-up included). MODE is one of:
- `fetch`: UID SEARCH ALL, then UID FETCH BODY.PEEK[] in batches of 100, the bytes dropped;
- `parse`: mail-parser (`mailparser.parse_from_bytes`) over the same bytes, fetched beforehand
  into memory and not timed;
- `insert` (fetch + parse + insert): fetch, parse, and one plain SQLite insert per mail, each
  committed on its own (WAL, synchronous=NORMAL, as mailbot opens its database): the least an
  exactly-once ingest has to do. This is the floor mailbot's ingest is compared with.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import time
from urllib.parse import unquote, urlsplit

import mailparser
from imapclient import IMAPClient

BATCH = 100


def connect(url: str) -> IMAPClient:
    parts = urlsplit(url)
    client = IMAPClient(parts.hostname, parts.port, ssl=False, timeout=60)
    client.login(unquote(parts.username or ""), unquote(parts.password or ""))
    client.select_folder(unquote(parts.path.lstrip("/")) or "INBOX", readonly=True)
    return client


def fetch_batches(client: IMAPClient):  # type: ignore[no-untyped-def]
    uids = sorted(client.search("ALL"))
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        found = client.fetch(batch, [b"BODY.PEEK[]"])
        yield [(uid, found[uid][b"BODY[]"]) for uid in batch if uid in found]


def time_fetch(url: str) -> tuple[int, float]:
    client = connect(url)
    started = time.perf_counter()
    count = sum(len(batch) for batch in fetch_batches(client))
    seconds = time.perf_counter() - started
    client.logout()
    return count, seconds


def time_parse(url: str) -> tuple[int, float]:
    client = connect(url)
    raws = [raw for batch in fetch_batches(client) for _, raw in batch]
    client.logout()
    started = time.perf_counter()
    for raw in raws:
        mailparser.parse_from_bytes(raw)
    return len(raws), time.perf_counter() - started


def time_fetch_parse_insert(url: str, db_path: str) -> tuple[int, float]:
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=normal")
    db.execute(
        "CREATE TABLE mail (uid INTEGER PRIMARY KEY, message_id TEXT, sender TEXT, subject TEXT,"
        " body TEXT, received TEXT)"
    )
    client = connect(url)
    started = time.perf_counter()
    count = 0
    for batch in fetch_batches(client):
        for uid, raw in batch:
            parsed = mailparser.parse_from_bytes(raw)
            sender = parsed.from_[0][1] if parsed.from_ else ""
            db.execute("BEGIN")
            db.execute(
                "INSERT INTO mail VALUES (?, ?, ?, ?, ?, ?)",
                (
                    uid,
                    parsed.message_id,
                    sender,
                    parsed.subject,
                    parsed.body,
                    parsed.date.isoformat() if parsed.date else None,
                ),
            )
            db.execute("COMMIT")
            count += 1
    seconds = time.perf_counter() - started
    client.logout()
    db.close()
    return count, seconds


def main(mode: str, url: str, db_path: str) -> None:
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    if mode == "fetch":
        count, seconds = time_fetch(url)
    elif mode == "parse":
        count, seconds = time_parse(url)
    elif mode == "insert":
        count, seconds = time_fetch_parse_insert(url, db_path)
    else:
        raise SystemExit(f"unknown mode {mode!r}: fetch, parse or insert")
    print(json.dumps({"mails": count, "seconds": seconds}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
