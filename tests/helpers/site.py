"""A mailbot installation for one test: its own .env, data folder and database, driven through
the real `mailbot` command line (in-process, through click, the same code path as the shell)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner, Result

from mailbot.cli.main import main
from mailbot.store.db import close_database
from tests.helpers.engines import fresh_database_url


@dataclass
class Site:
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def env_file(self) -> Path:
        return self.root / "mailbot.env"

    @property
    def data_dir(self) -> Path:
        return Path(self.env["MAILBOT_DATA_DIR"])

    def write_env(self) -> None:
        lines = [f"{key}={value}" for key, value in self.env.items()]
        self.env_file.write_text("\n".join(lines) + "\n")
        self.env_file.chmod(0o600)

    def mailbot(self, *args: str, input: bytes | str | None = None, expect: int | None = 0) -> Result:
        """Run `mailbot --env-file ... ARGS`; checks the exit code unless expect is None."""
        self.write_env()
        try:
            result = CliRunner().invoke(main, ["--env-file", str(self.env_file), *args], input=input)
        finally:
            close_database()
        if expect is not None and result.exit_code != expect:
            raise AssertionError(
                f"mailbot {' '.join(args)} exited {result.exit_code}, expected {expect}\n"
                f"output: {result.output}\nexception: {result.exception!r}"
            ) from result.exception
        return result

    def query(self, sql: str) -> list[tuple]:
        """Read the site's database from the test, beside whatever mailbot process is running."""
        url = self.env.get("MAILBOT_DATABASE_URL", "")
        if url.startswith("postgresql://"):
            with psycopg.connect(url, autocommit=True) as conn:
                return conn.execute(sql).fetchall()
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:") else self.data_dir / "mailbot.db"
        db = sqlite3.connect(path, timeout=30)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def execute(self, sql: str) -> None:
        """Change the site's database from the test (a row made older, a fault), committed, on
        either engine; SQL the two engines share, literals inline."""
        url = self.env.get("MAILBOT_DATABASE_URL", "")
        if url.startswith("postgresql://"):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql)
            return
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:") else self.data_dir / "mailbot.db"
        db = sqlite3.connect(path, timeout=30)
        try:
            with db:
                db.execute(sql)
        finally:
            db.close()

    def json(self, *args: str) -> Any:
        return json.loads(self.mailbot(*args, "--json").stdout)

    def ticket(self, reference: str) -> dict[str, Any]:
        return self.json("ticket", "show", reference)

    def tickets(self) -> list[dict[str, Any]]:
        return self.json("ticket", "list")

    def poll(self) -> Result:
        return self.mailbot("poll", "--once")

    def add_account(self, email: str, product: str, role: str = "customer", **options: str) -> None:
        args = ["account", "add", email, "--product", product, "--role", role]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", value]
        self.mailbot(*args)


def make_site(root: Path, products: dict[str, dict[str, str]], **settings: str) -> Site:
    """A site with PRODUCTS (key -> per-product settings without the prefix) and global
    SETTINGS (MAILBOT_ keys without the prefix, e.g. SMTP_URL). Without a DATABASE_URL the
    database is the test engine's: SQLite in the data folder, or a fresh PostgreSQL database."""
    env = {
        "MAILBOT_DATA_DIR": str(root / "data"),
        "MAILBOT_MAIL_DOMAIN": "mailbot.test",
        "MAILBOT_PRODUCTS": ",".join(products),
    }
    for key, values in products.items():
        for name, value in values.items():
            env[f"MAILBOT_PRODUCT_{key}_{name.upper()}"] = value
    for name, value in settings.items():
        env[f"MAILBOT_{name.upper()}"] = value
    url = fresh_database_url(root) if "MAILBOT_DATABASE_URL" not in env else None
    if url is not None:  # the test's engine is PostgreSQL (tests/helpers/engines.py)
        env["MAILBOT_DATABASE_URL"] = url
    site = Site(root, env)
    site.mailbot("db", "init")
    return site
