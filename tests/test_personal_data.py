"""A customer asks to see, then to erase, what the desk holds on them (GDPR art. 15 and 17), on a
real Dovecot and SMTP server: `mailbot account export` hands over their account, tickets,
messages, attachments and raw mails; `mailbot account forget` leaves their address and name
nowhere in the database file or the data folder, keeps their tickets as numbers, leaves other
people's tickets as they were, and a mail of theirs delivered again creates nobody. And what
`MAILBOT_RETENTION_RAW` deletes, on the desk's clock moved by the test (each pass is
`poll --once`'s, in this process)."""

from __future__ import annotations

import json
import ssl
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.config import load_settings
from mailbot.config_files import read_environment
from mailbot.context import Desk, make_desk
from mailbot.service.daemon import poll_everything
from mailbot.store.db import close_database, open_database
from tests.helpers.desks import Clock
from tests.helpers.mails import message_id_of, quote, write_mail
from tests.helpers.site import Site, make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana.vermeulen@customer.test"
DANA_NAME = "Dana Vermeulen"
CARL = "carl@other-customer.test"
ERIN = "erin@produsoft.test"
LOG = b"licence check failed for host ws-17\n" * 20


@pytest.fixture
def site(tmp_path, dovecot, mail_user, smtp_sink):
    site = make_site(
        tmp_path, {"VISI": {"address": VISI, "mailbox": mail_user.url()}}, smtp_url=smtp_sink.url
    )
    site.add_account(DANA, "VISI", name=DANA_NAME, organisation="Customer BV")
    site.add_account(CARL, "VISI", name="Carl Jansen")
    site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
    return site


def dana_writes_and_erin_answers(site: Site, dovecot, mail_user, smtp_sink) -> bytes:
    """Dana's ticket with an attachment and Erin's answer naming her; Carl's ticket beside it.
    Returns Dana's first mail as it was delivered."""
    first = write_mail(
        f"{DANA_NAME} <{DANA}>",
        VISI,
        "Licence server refuses ws-17",
        f"Since Monday ws-17 gets no licence.\n\nRegards,\n{DANA_NAME}\n{DANA}",
        attachments=[("licence.log", LOG, "text/plain")],
    )
    dovecot.append(mail_user.name, first)
    dovecot.append(
        mail_user.name, write_mail(f"Carl Jansen <{CARL}>", VISI, "Export is slow", "Takes an hour now.")
    )
    site.poll()
    notice = next(
        m.message for m in smtp_sink.messages if m.rcpt_tos == [ERIN] and "ws-17" in m.message["Subject"]
    )
    dovecot.append(
        mail_user.name,
        write_mail(
            f"Erin Engineer <{ERIN}>",
            VISI,
            f"Re: {notice['Subject']}",
            f"Dear {DANA_NAME}, please restart the licence service.\n\n" + quote("Since Monday ws-17"),
            in_reply_to=message_id_of(notice),
        ),
    )
    site.poll()
    return first


def ticket_of(site: Site, who: str) -> str:
    return next(t["reference"] for t in site.tickets() if t["requester"] == who)


def every_byte_under(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def traces_of(site: Site, *words: str) -> list[tuple[str, str]]:
    """(file, word) for each file under the data folder whose bytes hold a word, in any case;
    on PostgreSQL, whose database lives elsewhere, also (table, word) for each table whose rows
    hold it (binary columns read as hex)."""
    files = every_byte_under(site.data_dir).items()
    found = [(str(p), w) for p, data in files for w in words if w.lower().encode() in data.lower()]
    if site.env.get("MAILBOT_DATABASE_URL", "").startswith("postgresql://"):
        for (table,) in site.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
            rows = "\n".join(text for (text,) in site.query(f'SELECT t::text FROM "{table}" t')).lower()
            for word in words:
                forms = (word.lower(), word.encode().hex(), word.lower().encode().hex())
                found += [(f"table {table}", word)] if any(f in rows for f in forms) else []
    return found


def test_a_customer_gets_an_export_of_what_the_desk_holds_on_them(
    site, dovecot, mail_user, smtp_sink, tmp_path
):
    dana_writes_and_erin_answers(site, dovecot, mail_user, smtp_sink)
    reference = ticket_of(site, DANA)

    out = site.mailbot("account", "export", DANA, "--to", str(tmp_path / "dana")).stdout
    assert "1 ticket(s)" in out
    data = json.loads((tmp_path / "dana" / "export.json").read_text())
    assert data["account"]["email"] == DANA and data["account"]["name"] == DANA_NAME
    [ticket] = data["tickets"]
    assert ticket["reference"] == reference
    texts = [m["text"] for m in ticket["messages"]]
    assert any("ws-17 gets no licence" in t for t in texts)
    assert any("please restart the licence service" in t for t in texts)
    [mine] = [m for m in ticket["messages"] if m["author"] == DANA]
    [attachment] = mine["attachments"]
    assert (tmp_path / "dana" / attachment["path"]).read_bytes() == LOG
    assert b"Since Monday ws-17" in (tmp_path / "dana" / mine["raw_mail"]).read_bytes()
    assert "Carl" not in (tmp_path / "dana" / "export.json").read_text()

    # The same as an archive, and never over something that exists.
    site.mailbot("account", "export", DANA, "--to", str(tmp_path / "dana.zip"))
    with zipfile.ZipFile(tmp_path / "dana.zip") as archive:
        assert "export.json" in archive.namelist()
        assert json.loads(archive.read("export.json"))["tickets"][0]["reference"] == reference
    site.mailbot("account", "export", DANA, "--to", str(tmp_path / "dana.tar.gz"))
    with tarfile.open(tmp_path / "dana.tar.gz") as archive:
        assert "./export.json" in archive.getnames()
    refused = site.mailbot("account", "export", DANA, "--to", str(tmp_path / "dana.zip"), expect=73)
    assert (
        refused.output.strip() == f"mailbot: {tmp_path / 'dana.zip'} exists: give a new path for the export"
    )
    unknown = site.mailbot("account", "export", "nobody@customer.test", expect=67)
    assert unknown.output.strip() == "mailbot: no account 'nobody@customer.test': nothing to export"


def test_a_forgotten_customer_is_found_nowhere_and_others_keep_their_tickets(
    site, dovecot, mail_user, smtp_sink
):
    first = dana_writes_and_erin_answers(site, dovecot, mail_user, smtp_sink)
    hers, carls = ticket_of(site, DANA), ticket_of(site, CARL)
    carl_before = site.ticket(carls)
    assert any(DANA.encode() in data for data in every_byte_under(site.data_dir).values())

    refused = site.mailbot("account", "forget", DANA, expect=64)
    assert refused.output.strip() == f"mailbot: account forget {DANA} cannot be undone: add --yes to confirm"
    out = site.mailbot("account", "forget", DANA, "--yes").stdout
    assert "1 ticket(s) kept without their data" in out

    site.execute("VACUUM")  # no deleted row left in the database's free pages
    assert traces_of(site, DANA, DANA_NAME) == []

    # Her ticket is still counted, without her; the erasure is on record without her address.
    kept = site.ticket(hers)
    assert kept["status"] == "open"
    assert kept["requester"].endswith("@forgotten.invalid")
    [event] = [e for e in kept["events"] if e["kind"] == "forgotten"]
    assert event["actor"] == "" and "@" not in event["detail"]
    assert site.ticket(carls) == carl_before
    assert [a["email"] for a in site.json("account", "list") if "forgotten" not in a["email"]] == [CARL, ERIN]

    # Her old mail delivered again: seen before, so nobody is created and nothing is kept.
    smtp_sink.clear()
    dovecot.append(mail_user.name, first)
    site.poll()
    assert DANA not in [a["email"] for a in site.json("account", "list")]
    assert len(site.tickets()) == 2
    assert not [m for m in smtp_sink.messages if DANA in m.rcpt_tos]
    assert traces_of(site, DANA, DANA_NAME) == []

    again = site.mailbot("account", "forget", DANA, "--yes", expect=67)
    assert again.output.strip() == f"mailbot: no account '{DANA}': nothing to forget"


@contextmanager
def desk_at(site: Site, clock: Clock) -> Iterator[Desk]:
    """The site's database and settings in this process, on the test's clock."""
    settings = load_settings(read_environment(site.env_file))
    open_database(settings.database_url)
    try:
        yield make_desk(settings, clock=clock)
    finally:
        close_database()


def test_poll_once_deletes_the_files_of_tickets_closed_longer_than_the_retention(
    site, dovecot, mail_user, smtp_sink
):
    site.env["MAILBOT_RETENTION_RAW"] = "400d"
    dana_writes_and_erin_answers(site, dovecot, mail_user, smtp_sink)
    hers, carls = ticket_of(site, DANA), ticket_of(site, CARL)
    site.mailbot("ticket", "set", hers, "--status", "closed", "--by", ERIN)
    before = every_byte_under(site.data_dir / "attachments")
    assert list(before.values()) == [LOG]
    raws = len(list((site.data_dir / "raw").rglob("*.eml")))

    clock = Clock(datetime.now(UTC) + timedelta(days=399))
    with desk_at(site, clock) as desk:
        poll_everything(desk, ssl.create_default_context())
        assert every_byte_under(site.data_dir / "attachments") == before
        clock.advance(days=2)
        poll_everything(desk, ssl.create_default_context())
    assert every_byte_under(site.data_dir / "attachments") == {}
    assert len(list((site.data_dir / "raw").rglob("*.eml"))) == raws - 2  # Dana's and Erin's
    [(carls_raw,)] = site.query(
        f"SELECT raw_path FROM seen JOIN ticket ON ticket.id = ticket_id WHERE reference = '{carls}'"
    )
    assert Path(carls_raw).is_file()
    kept = site.ticket(hers)
    assert kept["status"] == "closed"
    assert [a["filename"] for m in kept["messages"] for a in m["attachments"]] == ["licence.log"]
    assert any("ws-17 gets no licence" in m["text"] for m in kept["messages"])
