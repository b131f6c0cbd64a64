"""Logging as the CLI sets it up: to stderr (journald keeps it), one line per event whatever the
message holds, as text or, with MAILBOT_LOG_FORMAT=json, one JSON object per line
(python-json-logger) for journald's and log shippers' parsers. A password in a URL is masked in
every line, as a last guard: the code that logs already names mailboxes and servers without it."""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

from mailbot.cli.progress import log_handler

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:\"]*:)[^\s@\"]+@")


def mask_secrets(line: str) -> str:
    """`imap://user:secret@host` -> `imap://user:***@host`."""
    return _URL_PASSWORD.sub(r"\1***@", line)


class TextFormatter(logging.Formatter):
    """The classic line, with a multi-line message or traceback folded into it (` | `), so that
    journald and grep see one event as one line."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record)).replace("\n", " | ")


class JsonLineFormatter(JsonFormatter):
    """{"time", "level", "logger", "message"} and, after an exception, "exc_info"."""

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def setup_logging() -> None:
    """Text lines to stderr at INFO until the settings say otherwise (`use_settings`)."""
    # force: each invocation logs to the stderr it has (tests run many in one process).
    # On a terminal the handler writes above any progress bar (`mailbot.cli.progress`).
    logging.basicConfig(handlers=[log_handler(sys.stderr)], level=logging.INFO, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    # APScheduler logs every run of every job at INFO, and mail-parser warns about every MIME
    # part it does not itself decode (we do): keep only what needs an admin's attention.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("mailparser").setLevel(logging.ERROR)


def use_settings(level: str, log_format: str) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    formatter = JsonLineFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT)
    for handler in root.handlers:
        handler.setFormatter(formatter)
