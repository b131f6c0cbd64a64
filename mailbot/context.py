"""The things every part of mailbot's core needs, passed explicitly: settings, the file store,
the template renderer and the clock. Built once by the CLI; tests build their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mailbot.config import Settings
from mailbot.outgoing.render import Renderer
from mailbot.progress import NO_PROGRESS, Progress
from mailbot.store.files import Store
from mailbot.store.models import utcnow

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"  # package data: in every install


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
