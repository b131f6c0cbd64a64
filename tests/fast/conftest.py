"""The fast tier: the desk's rules tested in-process, in seconds. Mail goes in through a
`MemorySource`, out through a `RecordingTransport`, on SQLite in memory and a clock the test
moves (tests/helpers/desks.py `MailDesk`). Every test here carries the `fast` marker:
`pytest -m fast` or `pytest tests/fast` runs this tier alone. The integration tier (the story
tests against Dovecot and the SMTP sink) proves the same wiring against real servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.fast.people import MONDAY_10, cast
from tests.helpers.desks import Clock, MailDesk, at, open_mail_desk

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.fast)


@pytest.fixture
def clock() -> Clock:
    return Clock(at(MONDAY_10))


@pytest.fixture
def make_desk(
    tmp_path: Path, clock: Clock, engine: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., MailDesk]]:
    """Open the desk with settings of the test's own (MAILBOT_ keys without the prefix), on
    each engine: SQLite in memory, or a fresh PostgreSQL database."""
    url = "sqlite:///:memory:" if engine == "sqlite" else request.getfixturevalue("database_url")
    with ExitStack() as stack:

        def make(**overrides: str) -> MailDesk:
            desk = stack.enter_context(open_mail_desk(tmp_path, clock, url, **overrides))
            cast()
            return desk

        yield make


@pytest.fixture
def desk(make_desk) -> MailDesk:
    return make_desk()
