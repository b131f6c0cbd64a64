"""Installed the way admins install it: a built wheel in a fresh virtualenv, run from a folder
that is not the checkout, takes a customer's mail to a ticket and its acknowledgement.

The editable install of the rest of the suite finds files beside the package that a wheel
would not carry; this test is the one that would notice."""

from __future__ import annotations

import email
import subprocess
import sys
import venv
from email import policy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600
    )
    if check and result.returncode != 0:
        command = " ".join(map(str, args))
        pytest.fail(f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with mailbot installed from a wheel built from this checkout."""
    work = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the tracked files, as a clean clone would have them.
    source = work / "source"
    source.mkdir()
    archive = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    assert archive.stdout, "git ls-files listed nothing"
    subprocess.run(
        ["tar", "--null", "-T", "-", "-cf", str(work / "src.tar")], cwd=REPO, input=archive.stdout, check=True
    )
    subprocess.run(["tar", "-xf", str(work / "src.tar"), "-C", str(source)], check=True)
    assert (source / "pyproject.toml").exists()
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", work / "dist", source, cwd=work)
    wheels = list((work / "dist").glob("mailbot-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True)
    _run(
        env_dir / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        wheels[0],
        cwd=work,
    )
    return env_dir


def test_the_wheel_carries_what_mailbot_reads(installed: Path, tmp_path: Path) -> None:
    where = _run(
        installed / "bin" / "python",
        "-c",
        "import mailbot, pathlib; print(pathlib.Path(mailbot.__file__).parent)",
        cwd=tmp_path,
    )
    package = Path(where.stdout.strip())
    assert installed in package.parents, f"mailbot imported from {package}, not from the venv"
    assert (package / "templates" / "en" / "ticket_opened.txt").is_file()
    assert (package / "templates" / "nl" / "ticket_opened.html").is_file()
    assert (package / "templates" / "common").is_dir()
    assert (package / "store" / "schema.sql").is_file()


def test_a_customer_mail_becomes_a_ticket_and_an_acknowledgement(installed: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "mailbot.env"
    env_file.write_text(
        f"MAILBOT_DATA_DIR={tmp_path / 'data'}\n"
        "MAILBOT_PRODUCTS=DEMO\n"
        "MAILBOT_PRODUCT_DEMO_ADDRESS=support@demo.example\n"
        "MAILBOT_PRODUCT_DEMO_NAME=Demo\n"
        "MAILBOT_PRODUCT_DEMO_UNKNOWN_SENDERS=open\n"
        f"MAILBOT_PRODUCT_DEMO_MAILBOX=maildir://{tmp_path / 'inbox'}\n"
    )
    env_file.chmod(0o600)
    mailbot = [installed / "bin" / "mailbot", "--env-file", env_file]
    _run(*mailbot, "db", "init", cwd=tmp_path)
    _run(
        *mailbot,
        "account",
        "add",
        "erin@demo.example",
        "--name",
        "Erin Engineer",
        "--product",
        "DEMO",
        "--role",
        "engineer",
        cwd=tmp_path,
    )
    new = tmp_path / "inbox" / "new"
    new.mkdir(parents=True)
    (tmp_path / "inbox" / "cur").mkdir()
    (tmp_path / "inbox" / "tmp").mkdir()
    (new / "1.customer").write_bytes((REPO / "examples" / "customer-mail.eml").read_bytes())

    _run(*mailbot, "poll", "--once", cwd=tmp_path)

    listing = _run(*mailbot, "ticket", "list", "--json", cwd=tmp_path).stdout
    assert '"DEMO-1"' in listing, listing
    sent = sorted((tmp_path / "data" / "outbox" / "new").iterdir())
    mails = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sent]
    to_customer = [m for m in mails if "dana@customer.example" in str(m["To"])]
    to_engineer = [m for m in mails if "erin@demo.example" in str(m["To"])]
    assert len(to_customer) == 1 and len(to_engineer) == 1, [str(m["To"]) for m in mails]
    assert "[DEMO-1]" in str(to_customer[0]["Subject"])
    assert _run(*mailbot, "check", cwd=tmp_path, check=False).returncode == 0
