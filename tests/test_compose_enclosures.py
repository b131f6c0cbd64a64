"""Files enclosed in the mail mailbot sends, as a mail client reads them: the same bytes, the
same type, a safe name, inline images beside the HTML; and no name, type or Content-ID can add a
header or break the mail's structure."""

from __future__ import annotations

import email
import email.policy
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.inbound.message import Address
from mailbot.outgoing.compose import OutgoingMail, compose
from mailbot.outgoing.enclosures import Enclosure, choose, enclosure

DOMAIN = "mail.produsoft.test"


def outgoing(*files: Enclosure, html: str = "<p>Attached.</p>") -> OutgoingMail:
    return OutgoingMail(
        sender=Address("visi.support@produsoft.test", "VISI Support"),
        to=(Address("anna@customer.test", "Anna de Vries"),),
        subject="[VISI-42] Export to STEP fails",
        text="Attached.\n",
        html=html,
        message_id="visi-42.0123456789abcdef@" + DOMAIN,
        loop_marker=DOMAIN,
        date=datetime(2025, 3, 3, 9, 12, tzinfo=UTC),
        enclosures=files,
    )


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def stored(tmp_path: Path, data: bytes, name: str = "file") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_file_arrives_byte_for_byte_with_its_type_beside_text_and_html(tmp_path):
    data = os.urandom(300_000)
    pdf = enclosure("report.pdf", "application/pdf", stored(tmp_path, data), "", False)
    mail = parse(compose(outgoing(pdf)))
    assert mail.get_content_type() == "multipart/mixed"
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Attached.\n"
    assert "Attached." in mail.get_body(("html",)).get_content()
    [part] = mail.iter_attachments()
    assert (part.get_filename(), part.get_content_type(), part.get_content()) == (
        "report.pdf",
        "application/pdf",
        data,
    )


def test_the_bytes_are_ascii_crlf_and_no_line_is_too_long(tmp_path):
    data = os.urandom(200_000)
    name = "Überweisung für März – " + "ä" * 100 + ".pdf"
    raw = compose(outgoing(enclosure(name, "application/pdf", stored(tmp_path, data), "", False)))
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    [part] = parse(raw).iter_attachments()
    assert part.get_filename() == name and part.get_content() == data


@pytest.mark.parametrize(
    "hostile, shown",
    [
        ("../../etc/cron.d/evil", "evil"),
        ('a"; filename="other.exe', 'a"; filename="other.exe'),
        ("report.pdf\r\nBcc: victim@elsewhere.test", "report.pdf Bcc: victim@elsewhere.test"),
        ("\u202efdp.exe", "fdp.exe"),
        ("..", "attachment"),
    ],
)
def test_a_hostile_name_is_written_safely_and_adds_no_header(tmp_path, hostile, shown):
    raw = compose(outgoing(enclosure(hostile, "text/plain", stored(tmp_path, b"x"), "", False)))
    mail = parse(raw)
    [part] = mail.iter_attachments()
    assert part.get_filename() == shown
    assert mail["Bcc"] is None and part["Bcc"] is None
    assert [p.get_content_type() for p in mail.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/plain",
    ]


@pytest.mark.parametrize("bad", ["text/html\r\nX-Evil: 1", "nonsense", "", 'image/png; name="x"'])
def test_a_content_type_that_is_not_type_slash_subtype_becomes_octet_stream(tmp_path, bad):
    mail = parse(compose(outgoing(enclosure("f.bin", bad, stored(tmp_path, b"x"), "", False))))
    [part] = mail.iter_attachments()
    assert part.get_content_type() == "application/octet-stream" and mail["X-Evil"] is None


def test_an_inline_image_sits_beside_the_html_that_shows_it(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(100)
    image = enclosure("shot.png", "image/png", stored(tmp_path, png), "shot.1@client.test", True)
    pdf = enclosure("report.pdf", "application/pdf", stored(tmp_path, b"%PDF", "pdf"), "", False)
    mail = parse(compose(outgoing(image, pdf, html='<p><img src="cid:shot.1@client.test"></p>')))
    assert [p.get_content_type() for p in mail.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
        "application/pdf",
    ]
    shown = next(p for p in mail.walk() if p.get_content_type() == "image/png")
    assert shown["Content-ID"] == "<shot.1@client.test>" and shown.get_content() == png
    assert [p.get_filename() for p in mail.iter_attachments()] == ["report.pdf"]


def test_an_unwritable_content_id_is_replaced_by_one_of_ours(tmp_path):
    image = enclosure("shot.png", "image/png", stored(tmp_path, b"png"), "a>\r\nBcc: x@y.test", True)
    assert image.content_id.endswith("@mailbot.invalid")
    mail = parse(compose(outgoing(image, html=f'<img src="cid:{image.content_id}">')))
    assert mail["Bcc"] is None
    shown = next(p for p in mail.walk() if p.get_content_type() == "image/png")
    assert shown["Content-ID"] == f"<{image.content_id}>"


def test_without_html_an_inline_image_is_enclosed_as_a_file(tmp_path):
    image = enclosure("shot.png", "image/png", stored(tmp_path, b"png"), "shot.1@client.test", True)
    mail = parse(compose(outgoing(image, html="")))
    assert [p.get_content_type() for p in mail.walk()] == ["multipart/mixed", "text/plain", "image/png"]


def test_files_are_chosen_in_order_while_they_fit():
    class File:
        def __init__(self, id: int, filename: str, size: int):
            self.id, self.filename, self.size = id, filename, size

    files = [File(1, "a.log", 600), File(2, "dump.bin", 900), File(3, "b.log", 400)]
    choice = choose(files, 1000)
    assert choice.enclosed == (1, 3)
    assert choice.kept_back == ({"name": "dump.bin", "size": 900},)
    assert choose(files, 0).enclosed == () and choose([], 10).kept_back == ()
