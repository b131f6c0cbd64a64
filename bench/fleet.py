"""The PostgreSQL column: the same number of mails through `mailbot run` daemons, on SQLite (one
daemon, one mailbox) and on PostgreSQL (one daemon on one mailbox, two daemons sharing two
mailboxes, four sharing four; the mails split evenly over the mailboxes, each share a corpus of
its own like bench/corpus.py's). Measured from the start of the daemons to the commit of the last
mail (the ledger holds them all) and to the last mail sent (the outbox empty).

    .venv/bin/python -m bench.fleet [--mails 2000] [--variants sqlite,pg1,pg2,pg4]

The daemons are started together, so the times include their start-up (about a second)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from bench import corpus
from bench.lab import Lab
from tests.helpers.postgres import Cluster

VARIANTS = {
    "sqlite": ("sqlite", 1),
    "pg1": ("postgresql", 1),
    "pg2": ("postgresql", 2),
    "pg4": ("postgresql", 4),
}


def run_variant(lab: Lab, cluster: Cluster, engine: str, daemons: int, mails: int) -> dict:
    root = lab.scratch(f"fleet-{engine}-{daemons}-{time.monotonic_ns()}")
    url = cluster.new_database() if engine == "postgresql" else f"sqlite:///{root / 'data' / 'mailbot.db'}"
    env = {
        "MAILBOT_DATA_DIR": str(root / "data"),
        "MAILBOT_DATABASE_URL": url,
        "MAILBOT_MAIL_DOMAIN": "mailbot.test",
        "MAILBOT_SMTP_URL": lab.smtp.url,
        "MAILBOT_ACK_CUTOVER": "2000-01-01T00:00:00Z",
        "MAILBOT_POLL_INTERVAL": "5",
        "MAILBOT_OUTBOX_INTERVAL": "1",
        "MAILBOT_LEASE_TIME": "6",
    }
    keys = [f"P{n}" for n in range(1, daemons + 1)]
    env["MAILBOT_PRODUCTS"] = ",".join(keys)
    share = mails // daemons
    for n, key in enumerate(keys):
        user = lab.new_user()
        prefix = corpus.PREFIX if n == 0 else f"{corpus.PREFIX}{n}"
        mails_of = (m.raw.replace(f"[{corpus.PREFIX}-".encode(), f"[{prefix}-".encode()) for m in
                    corpus.generate(share, seed=6 + n, tag=f"k{n}"))  # fmt: skip
        lab.fill(user, mails_of)
        env.update({
            f"MAILBOT_PRODUCT_{key}_ADDRESS": corpus.SUPPORT if n == 0 else f"support{n}@produsoft.test",
            f"MAILBOT_PRODUCT_{key}_PREFIX": prefix,
            f"MAILBOT_PRODUCT_{key}_MAILBOX": lab.dovecot.imap_url(user),
            f"MAILBOT_PRODUCT_{key}_UNKNOWN_SENDERS": "open",
        })  # fmt: skip
    env_file = root / "mailbot.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    base = [sys.executable, "-m", "mailbot", "--env-file", str(env_file)]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    subprocess.run([*base, "db", "init"], env=child_env, check=True, capture_output=True)
    total = share * daemons
    started = time.perf_counter()
    procs = [
        subprocess.Popen([*base, "run"], env=child_env, stderr=(root / f"d{i}.log").open("ab"), cwd=root)
        for i in range(daemons)
    ]
    try:
        ingested = _wait(url, f"SELECT count(*) >= {total} FROM seen", started, root)
        sent = _wait(url, "SELECT count(*) > 0 AND bool_and(status = 'sent') FROM outbox", started, root)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
    return {"engine": engine, "daemons": daemons, "mails": total, "to_last_commit": ingested, "to_sent": sent}


def _wait(url: str, sql: str, started: float, root: Path, timeout: float = 1800) -> float:
    while time.perf_counter() - started < timeout:
        if _ask(url, sql):
            return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError(f"not done within {timeout} s: {sql}; see {root}")


def _ask(url: str, sql: str) -> bool:
    if url.startswith("sqlite:"):
        import sqlite3

        path = url.removeprefix("sqlite:///")
        if not Path(path).exists():
            return False
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            sql = sql.replace("bool_and(", "min(")
            return bool(db.execute(sql).fetchone()[0])
        except sqlite3.OperationalError:
            return False
        finally:
            db.close()
    with psycopg.connect(url, autocommit=True) as conn:
        return bool(conn.execute(sql).fetchone()[0])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    cluster = Cluster()
    cluster.start()
    try:
        with Lab() as lab:
            rows = [run_variant(lab, cluster, *VARIANTS[v], args.mails) for v in args.variants.split(",")]
    finally:
        cluster.close()
    print("| engine | daemons x mailboxes | mails | to the last commit | to the last mail sent |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        rate, sent_rate = row["mails"] / row["to_last_commit"], row["mails"] / row["to_sent"]
        print(
            f"| {row['engine']} | {row['daemons']} | {row['mails']} | {row['to_last_commit']:.1f} s "
            f"({rate:.0f} mails/s) | {row['to_sent']:.1f} s ({sent_rate:.0f} mails/s) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
