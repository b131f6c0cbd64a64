"""Which database engine a test's installations get, and which tests make one.

The tests that make a database through the helpers (`make_site`, `open_desk`, `open_mail_desk`,
`open_database`, or taking a `database_url`, directly or through a fixture or a helper function
of the tests) run once per
engine: tests/conftest.py parametrises them and, on PostgreSQL, installs `fresh_database_url`'s
source of fresh databases, so that the test files need no engine of their own. On SQLite the
helpers keep their own default (a file in the installation's folder, or memory).

Plain Python, no pytest: fixtures live in conftest.py."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Hashable, Iterator

# The helpers that make or open a database; a test that reaches one of them touches the database.
MAKERS = frozenset({"make_site", "open_desk", "open_mail_desk", "open_database"})

_source: Callable[[Hashable], str] | None = None


def use(source: Callable[[Hashable], str] | None) -> None:
    """Install (or with None, remove) the source of fresh databases of the running test."""
    global _source
    _source = source


def fresh_database_url(key: Hashable) -> str | None:
    """The URL of the database of installation `key` (the same one each time it is asked, so a
    reopened desk is a restart), or None: the helper's own SQLite default."""
    return None if _source is None else _source(key)


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def touches_database(func: object, seen: set[int] | None = None) -> bool:
    """Whether `func` reaches one of MAKERS by name: in its own code, its inner functions and
    the functions and classes of the tests (tests.*, test_*) it names."""
    seen = set() if seen is None else seen
    func = inspect.unwrap(func) if callable(func) else func  # type: ignore[arg-type]
    code = getattr(func, "__code__", None)
    if code is None or id(code) in seen:
        return False
    seen.add(id(code))
    scope = getattr(func, "__globals__", {})
    for part in _codes(code):
        if MAKERS.intersection(part.co_names) or "database_url" in part.co_varnames:
            return True
        for name in part.co_names:
            if any(touches_database(f, seen) for f in _own_functions(scope.get(name))):
                return True
    return False


def _own_functions(obj: object) -> list[object]:
    """The test suite's own functions behind `obj` (itself, or a test class's methods)."""
    module = getattr(obj, "__module__", "") or ""
    if not (module.startswith("tests.") or module.startswith("test_") or module == "conftest"):
        return []
    if inspect.isfunction(obj):
        return [obj]
    if inspect.isclass(obj):
        members = [v.fget if isinstance(v, property) else v for v in vars(obj).values()]
        return [m for m in members if inspect.isfunction(m)]
    return []
