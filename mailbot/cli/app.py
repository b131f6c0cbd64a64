"""What every `mailbot` command shares: the settings read once per invocation, the database and
desk opened on demand, TLS set-up and JSON output. Kept apart from `mailbot.cli.main`, which
registers the subcommand modules, so that those import this and nothing imports back."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mailbot.cli.logs import use_settings
from mailbot.config import ProductSettings, Settings, load_settings, read_environment
from mailbot.context import Desk, make_desk
from mailbot.errors import EX_USAGE, ConfigError
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
        return make_desk(settings)

    def product(self, key: str, option: str = "--product") -> ProductSettings:
        """The product an admin named on the command line; an unknown one is a usage error (64)."""
        try:
            return self.settings.product(key)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None


class UsageError(click.UsageError):
    """A command line mailbot refuses: one line on stderr, exit 64 (EX_USAGE)."""

    exit_code = EX_USAGE

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"mailbot: {self.format_message().rstrip('.')}{hint}", err=True)


# click >= 8.2 raises this for a bare group name; its help text is the answer, so it stays as is.
_HELP_ERRORS = tuple(
    getattr(click.exceptions, name) for name in ("NoArgsIsHelpError",) if hasattr(click.exceptions, name)
)


@contextmanager
def usage_errors() -> Iterator[None]:
    """Turns click's usage errors (unknown option, bad choice, missing argument) into `UsageError`."""
    try:
        yield
    except click.UsageError as exc:
        if isinstance(exc, (UsageError, *_HELP_ERRORS)):
            raise
        raise UsageError(exc.format_message(), exc.ctx) from None


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Certificates and host names are always verified; MAILBOT_CA_FILE adds a private CA."""
    return ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
