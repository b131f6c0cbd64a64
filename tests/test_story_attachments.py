"""Attachments travel, through a real Dovecot and the SMTP sink: Carla's PDF reaches each of the
engineers byte for byte, Erin's file reaches Carla with the answer, a file over
MAILBOT_FORWARD_ATTACHMENTS_MAX is named instead of sent (in the reader's language), a screenshot
in the HTML stays in the HTML, and a hostile file name arrives made safe."""

from __future__ import annotations

import email
import email.policy
import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from mailbot.store import migrations
from tests.helpers.mails import message_id_of, quote, write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
CARLA = "carla@operator.test"
ERIN = "erin@produsoft.test"
EDDIE = "eddie@produsoft.test"
PDF = b"%PDF-1.7\n" + os.urandom(200_000) + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(2_000)


class Desk:
    """VISI's desk as its people see it: the mailbox and the SMTP sink."""

    def __init__(self, tmp_path, dovecot, mail_user, sink, carla_language="en", **settings):
        self.dovecot, self.user, self.sink = dovecot, mail_user, sink
        product = {"address": VISI, "mailbox": mail_user.url()}
        self.site = make_site(tmp_path, {"VISI": product}, smtp_url=sink.url, **settings)
        self.site.add_account(CARLA, "VISI", name="Carla Operator", language=carla_language)
        self.site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
        self.site.add_account(EDDIE, "VISI", "engineer", name="Eddie Engineer")

    def send(self, raw: bytes) -> None:
        self.dovecot.append(self.user.name, raw)
        self.site.poll()

    def inbox(self, address: str) -> list:
        return [m for m in self.sink.messages if address in m.rcpt_tos]

    def only_to(self, address: str):
        [mail] = self.inbox(address)
        return mail

    def answer(self, sender: str, to_mail, body: str, **fields) -> None:
        text = to_mail.message.get_body(("plain",)).get_content()
        subject = f"Re: {to_mail.message['Subject']}"
        reply = body + "\n\n" + quote(text)
        self.send(
            write_mail(sender, VISI, subject, reply, in_reply_to=message_id_of(to_mail.message), **fields)
        )


def files_of(mail) -> dict[str, tuple[str, bytes]]:
    """What the reader's mail client offers to save: file name -> (type, bytes)."""
    return {
        str(part.get_filename()): (part.get_content_type(), part.get_payload(decode=True))
        for part in mail.message.iter_attachments()
    }


def text_of(mail) -> str:
    return mail.message.get_body(("plain",)).get_content()


@pytest.fixture
def visi(tmp_path, dovecot, mail_user, smtp_sink):
    return Desk(tmp_path, dovecot, mail_user, smtp_sink)


def test_a_customers_pdf_reaches_each_engineer_byte_for_byte(visi):
    visi.send(
        write_mail(
            f"Carla Operator <{CARLA}>",
            VISI,
            "Licence report fails",
            "The report is attached.",
            attachments=[("licence-report.pdf", PDF, "application/pdf")],
        )
    )
    for engineer in (ERIN, EDDIE):
        assert files_of(visi.only_to(engineer)) == {"licence-report.pdf": ("application/pdf", PDF)}
    assert files_of(visi.only_to(CARLA)) == {}, "the acknowledgement sends nothing back"
    [stored] = visi.site.ticket("VISI-1")["messages"][0]["attachments"]
    assert (stored["filename"], stored["size"]) == ("licence-report.pdf", len(PDF))
    kept = visi.site.query("SELECT sum(length(data)) FROM outbox WHERE status = 'sent'")[0][0]
    assert kept < len(PDF), "the outbox keeps the sent mails, not a copy of the file per engineer"
    [(data,)] = visi.site.query(f"SELECT data FROM outbox WHERE recipient = '{ERIN}'")
    archived = email.message_from_bytes(bytes(data), policy=email.policy.default)
    sent = visi.only_to(ERIN).message
    assert archived.get_body(("plain",)).get_content() == sent.get_body(("plain",)).get_content()
    [file] = archived.iter_attachments()
    assert (file.get_filename(), file.get_payload(decode=True)) == ("licence-report.pdf", b"")


def test_an_engineers_file_reaches_the_customer_with_the_answer(visi):
    visi.send(write_mail(CARLA, VISI, "Licence server down", "It stopped at 9."))
    handed = visi.only_to(ERIN)
    visi.sink.clear()
    visi.answer(
        ERIN, handed, "Install this patch.", attachments=[("patch-4.2.1.zip", PDF, "application/zip")]
    )
    answer = visi.only_to(CARLA)
    assert "Install this patch." in text_of(answer)
    assert files_of(answer) == {"patch-4.2.1.zip": ("application/zip", PDF)}
    assert visi.inbox(EDDIE) == [], "a reply to the customer is not copied to the team"


def test_over_the_limit_the_mail_names_what_was_kept_back(tmp_path, dovecot, mail_user, smtp_sink):
    visi = Desk(tmp_path, dovecot, mail_user, smtp_sink, carla_language="nl", forward_attachments_max="100K")
    small = b"log line\n" * 100
    visi.send(
        write_mail(
            CARLA,
            VISI,
            "Export stops",
            "Report and log attached.",
            attachments=[("report.pdf", PDF, "application/pdf"), ("export.log", small, "text/plain")],
        )
    )
    handed = visi.only_to(ERIN)
    assert files_of(handed) == {"export.log": ("text/plain", small)}
    assert "Not enclosed, too large to send by email: report.pdf (0.2 MB)." in text_of(handed)
    assert "The files are kept with VISI-1 on the support server." in text_of(handed)
    visi.sink.clear()
    visi.answer(ERIN, handed, "Our trace of the export.", attachments=[("trace.pdf", PDF, "application/pdf")])
    answer = visi.only_to(CARLA)
    assert files_of(answer) == {}
    assert "Niet meegestuurd, te groot om per e-mail te versturen: trace.pdf (0,2 MB)." in text_of(answer)
    assert "Ze worden bewaard bij uw aanvraag VISI-1" in text_of(answer)
    paths = [a["path"] for m in visi.site.ticket("VISI-1")["messages"] for a in m["attachments"]]
    assert len(paths) == 3 and all((visi.site.data_dir / p).is_file() for p in paths), "nothing is lost"


def test_an_inline_screenshot_stays_in_the_html(visi):
    visi.send(
        write_mail(
            CARLA,
            VISI,
            "Error dialog",
            "See the screenshot.",
            html='<p>See the screenshot:</p><p><img src="cid:dialog.1@operator.test"></p>',
            inline=[("dialog.1@operator.test", PNG, "image/png")],
        )
    )
    handed = visi.only_to(ERIN).message
    related = next(p for p in handed.walk() if p.get_content_type() == "multipart/related")
    html, image = related.get_payload()
    assert 'src="cid:dialog.1@operator.test"' in html.get_content()
    assert image["Content-ID"] == "<dialog.1@operator.test>"
    assert image.get_content_disposition() == "inline" and image.get_payload(decode=True) == PNG
    assert list(handed.iter_attachments()) == []


def test_a_hostile_file_name_arrives_made_safe(visi):
    hostile = "../../etc/cron.d/\u202eevil\r\nBcc: victim@elsewhere.test"
    visi.send(
        write_mail(
            CARLA, VISI, "Logs", "Attached.", attachments=[(hostile, b"* * * * * rm -rf /\n", "text/plain")]
        )
    )
    handed = visi.only_to(ERIN)
    [(name, (ctype, data))] = files_of(handed).items()
    assert "/" not in name and "\u202e" not in name and "\r" not in name and "\n" not in name
    assert name.startswith("evil") and (ctype, data) == ("text/plain", b"* * * * * rm -rf /\n")
    assert handed.message["Bcc"] is None
    assert all("victim@elsewhere.test" not in r for m in visi.sink.messages for r in m.rcpt_tos)


# -- upgrade -------------------------------------------------------------------------------------

SCHEMA_V6 = Path(__file__).resolve().parent / "fixtures" / "schema_v6.sql"
OLD_FILE = b"%PDF-1.4 an old report\n"


def make_version_6_installation(root: Path) -> None:
    """An installation from before attachments travelled: Carla's ticket VISI-1, with a PDF on
    disk and its row in the database."""
    digest = hashlib.sha256(OLD_FILE).hexdigest()
    stored = f"attachments/{digest[:2]}/{digest}"
    (root / "data" / stored).parent.mkdir(parents=True)
    (root / "data" / stored).write_bytes(OLD_FILE)
    db = sqlite3.connect(root / "data" / "mailbot.db")
    then = "2026-11-30 09:00:00"
    try:
        db.executescript(SCHEMA_V6.read_text())
        db.executemany(
            "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
            [(v, then) for v in (1, 2, 3, 6)],
        )
        db.execute("INSERT INTO product_counter VALUES ('VISI', 1)")
        db.execute(
            "INSERT INTO account VALUES (1, ?, 'Carla Operator', '', 'en', 'all', NULL, 0, NULL, NULL, ?)",
            (CARLA, then),
        )
        db.execute("INSERT INTO \"grant\" VALUES (1, 1, 'VISI', 'customer')")
        db.execute(
            "INSERT INTO ticket VALUES (1, 'VISI', 1, 'VISI-1', 'Old report', 1, 'question', 'medium',"
            " 'open', NULL, '', NULL, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL, 0)",
            (then, then),
        )
        db.execute(
            "INSERT INTO message VALUES (1, 1, 'in', 'old@operator.test', 1, ?, 'public', 'mail',"
            " 'Old report', 'See the report.', '', '', ?)",
            (CARLA, then),
        )
        db.execute(
            "INSERT INTO attachment VALUES (1, 1, 'old-report.pdf', 'application/pdf', ?, ?, ?)",
            (len(OLD_FILE), digest, stored),
        )
        db.commit()
    finally:
        db.close()


@pytest.mark.sqlite_only("upgrade from a SQLite fixture file (schema 6)")
def test_an_installation_from_schema_6_is_upgraded_and_then_passes_files_on(
    tmp_path, dovecot, mail_user, smtp_sink
):
    make_version_6_installation(tmp_path)
    visi = Desk(tmp_path, dovecot, mail_user, smtp_sink)  # `db init`: migrated in place
    assert visi.site.query("SELECT max(version) FROM schema_version") == [(migrations.LATEST,)]
    assert visi.site.query("SELECT filename, size, content_id, inline FROM attachment") == [
        ("old-report.pdf", len(OLD_FILE), "", 0)
    ]
    visi.send(
        write_mail(
            CARLA,
            VISI,
            "Re: [VISI-1] Old report",
            "And the new one.",
            attachments=[("new-report.pdf", PDF, "application/pdf")],
        )
    )
    # The old ticket's deadlines passed meanwhile: Erin also hears of those.
    [handed] = [m for m in visi.inbox(ERIN) if "wrote on VISI-1" in text_of(m)]
    assert files_of(handed) == {"new-report.pdf": ("application/pdf", PDF)}
    ticket = visi.site.ticket("VISI-1")
    assert [a["filename"] for m in ticket["messages"] for a in m["attachments"]] == [
        "old-report.pdf",
        "new-report.pdf",
    ]
    (tmp_path / "fresh").mkdir()
    fresh = make_site(tmp_path / "fresh", {"VISI": {"address": VISI}})
    for table in ("outbox", "attachment"):
        assert visi.site.query(f'PRAGMA table_info("{table}")') == fresh.query(
            f'PRAGMA table_info("{table}")'
        )
