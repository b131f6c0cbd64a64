"""The suite runs on both engines: a test that makes an installation, through a fixture or a
helper, is collected once per engine without naming one; a test about SQLite itself says why
and is listed in docs/development.md."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.engines import touches_database
from tests.helpers.processes import SESSION_MARK

REPO = Path(__file__).resolve().parents[1]


def sqlite_only_tests() -> dict[str, str]:
    """`file::test` -> reason, for every test marked sqlite_only."""
    found = {}
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("sqlite_only"):
                    [reason] = decorator.args
                    found[f"{path.relative_to(REPO)}::{node.name}"] = ast.literal_eval(reason)
    return found


def test_each_test_kept_to_sqlite_says_why_and_is_listed_in_the_docs():
    docs = (REPO / "docs" / "development.md").read_text()
    tests = sqlite_only_tests()
    assert tests, "the SQLite lock, damaged files and upgrades from SQLite files are kept to SQLite"
    missing = [name for name, reason in tests.items() if f"| `{name}` | {reason} |" not in docs]
    assert missing == [], "each sqlite_only test is a row of docs/development.md's table"


def helper_that_makes_a_site(root):
    from tests.helpers.site import make_site

    return make_site(root, {})


def helper_that_calls_a_helper(root):
    return [helper_that_makes_a_site(root)]


def helper_that_parses(text):
    return text.split()


def test_a_test_is_seen_to_touch_the_database_through_its_helpers_and_only_then():
    assert touches_database(helper_that_calls_a_helper)
    assert touches_database(lambda tmp_path: helper_that_makes_a_site(tmp_path))
    assert not touches_database(helper_that_parses)
    assert not touches_database(lambda text: helper_that_parses(text))


def collected(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != SESSION_MARK},  # a session of its own
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_tests_that_make_an_installation_run_on_each_engine_and_the_others_once():
    jobs = "tests/test_jobs.py::test_reminders_and_automatic_closing_can_be_switched_off"  # open_desk
    story = "tests/test_story_workflow.py::test_the_review_board_triages_and_accepts"  # a fixture
    fast = "tests/fast/test_twins.py::test_the_same_mail_twice_in_the_mailbox_is_one_ticket"  # its conftest
    parse = "tests/test_parse.py::test_a_plain_customer_mail_reads_as_written"  # no database
    per_engine = [f"{test}[{engine}]" for test in (jobs, story, fast) for engine in ("sqlite", "postgresql")]
    assert collected(jobs, story, fast, parse) == [*per_engine, parse]
    assert collected("--engine", "postgresql", jobs) == [f"{jobs}[postgresql]"]
