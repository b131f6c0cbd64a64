"""What every `mailbot` command shares: the settings read once per invocation, the database and
desk opened on demand, TLS set-up and JSON output. Kept apart from `mailbot.cli.main`, which
registers the subcommand modules, so that those import this and nothing imports back."""

from __future__ import annotations

import dataclasses
import json
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mailbot.cli.logs import use_settings
from mailbot.cli.progress import progress_for
from mailbot.config import Settings, load_settings, read_environment
from mailbot.context import Desk, make_desk
from mailbot.store import migrations
from mailbot.store.db import open_database


@dataclass
class AppState:
    env_file: Path | None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(read_environment(self.env_file))
            use_settings(self._settings.log_level, self._settings.log_format)
        return self._settings

    def open(self) -> Desk:
        """Settings, database (migrated to the latest schema) and the desk."""
        settings = self.settings
        db = open_database(settings.database_url, settings.db_busy_timeout)
        migrations.migrate(db)
        return dataclasses.replace(make_desk(settings), progress=progress_for(sys.stderr))


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Certificates and host names are always verified; MAILBOT_CA_FILE adds a private CA."""
    return ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
