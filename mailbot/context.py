"""The things every part of mailbot's core needs, passed explicitly: settings, the file store,
the template renderer, the clock and where long work reports its progress. Built once by the
CLI; tests build their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from mailbot.config import Settings
from mailbot.outgoing.render import Renderer
from mailbot.store.files import Store
from mailbot.store.models import utcnow

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"  # package data: in every install


class Progress(Protocol):
    """How far long work got: a first pass over a full mailbox (`mailbot.service.poller`), an
    account import. The CLI hands in a bar when stderr is a terminal (`mailbot.cli.progress`);
    otherwise nothing is drawn and the log lines are all there is."""

    def update(self, what: str, done: int, total: int) -> None:
        """`done` of `total` items of the work called `what` (e.g. "VISI mails"). The same
        `what` again continues that work; `done == total` ends it."""


class NoProgress:
    """Draws nothing: the default, and what runs without a terminal."""

    def update(self, what: str, done: int, total: int) -> None:
        return None


NO_PROGRESS = NoProgress()


@dataclass(frozen=True)
class Desk:
    settings: Settings
    store: Store
    renderer: Renderer
    clock: Callable[[], datetime] = field(default=utcnow)
    # Record only, send nothing: set (with dataclasses.replace) for mail older than the cut-over.
    quiet: bool = False
    # Where long work says how far it got: a bar on a terminal (set by the CLI), else nothing.
    progress: Progress = field(default=NO_PROGRESS)


def make_desk(settings: Settings, clock: Callable[[], datetime] = utcnow) -> Desk:
    return Desk(settings, Store(settings.data_dir), make_renderer(settings), clock)


def make_renderer(settings: Settings) -> Renderer:
    """The default templates, with each product's overrides (MAILBOT_PRODUCT_<KEY>_TEMPLATES)."""
    overrides = {p.key: p.templates for p in settings.products if p.templates is not None}
    return Renderer(TEMPLATE_DIR, overrides)
