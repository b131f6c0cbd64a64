"""Attachments travel: a customer's files reach the engineers with the new-ticket or reply mail,
an engineer's reach the customer with the answer, up to MAILBOT_FORWARD_ATTACHMENTS_MAX per mail;
what does not fit, or is gone from disk when the mail is sent, is named in the mail instead."""

from __future__ import annotations

import os
from pathlib import Path

from mailbot.service.poller import poll_mailbox
from mailbot.store.models import Attachment
from tests.fast.people import CARLA, EDDIE, ERIN, open_ticket
from tests.helpers.desks import Delivered, MailDesk
from tests.helpers.mails import write_mail

PDF = b"%PDF-1.4\n" + os.urandom(3000) + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(500)


def files_of(mail: Delivered) -> dict[str, tuple[str, bytes]]:
    """What a reader's mail client offers to save: file name -> (type, bytes)."""
    return {
        str(part.get_filename()): (part.get_content_type(), part.get_content())
        for part in mail.message.iter_attachments()
    }


def test_a_customers_pdf_reaches_each_engineer_as_it_was_sent(desk: MailDesk):
    desk.send(
        CARLA, "GEN", "Report broken", "See the report.", attachments=[("report.pdf", PDF, "application/pdf")]
    )
    for engineer in (ERIN, EDDIE):
        [mail] = desk.inbox(engineer)
        assert files_of(mail) == {"report.pdf": ("application/pdf", PDF)}
    [ack] = desk.inbox(CARLA)
    assert files_of(ack) == {}, "the acknowledgement does not send the customer's files back"


def test_a_customers_reply_brings_its_files_to_the_engineers(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(
        CARLA, "GEN", new, "The log you asked for.", attachments=[("app.log", b"line 1\n", "text/plain")]
    )
    [mail] = desk.inbox(ERIN)
    assert mail.template == "customer_reply"
    assert files_of(mail) == {"app.log": ("text/plain", "line 1\n")}


def test_an_engineers_file_reaches_the_customer_with_the_answer(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "The patched driver.", attachments=[("driver.zip", PDF, "application/zip")])
    [answer] = desk.inbox(CARLA)
    assert answer.template == "reply"
    assert files_of(answer) == {"driver.zip": ("application/zip", PDF)}


def test_an_internal_notes_file_stays_with_the_team(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(
        ERIN,
        "GEN",
        new,
        "#internal\n\nOur dump.",
        attachments=[("dump.bin", PDF, "application/octet-stream")],
    )
    assert desk.inbox(CARLA) == []
    [note] = desk.inbox(EDDIE)
    assert files_of(note) == {"dump.bin": ("application/octet-stream", PDF)}


def test_files_over_the_limit_are_named_and_the_rest_still_travel(make_desk):
    desk = make_desk(FORWARD_ATTACHMENTS_MAX="4K")
    big = os.urandom(5000)
    desk.send(
        CARLA,
        "GEN",
        "Two files",
        "Both attached.",
        attachments=[
            ("capture.pcap", big, "application/octet-stream"),
            ("report.pdf", PDF, "application/pdf"),
        ],
    )
    mail = desk.last_to(ERIN)
    assert files_of(mail) == {"report.pdf": ("application/pdf", PDF)}
    assert "Not enclosed, too large to send by email: capture.pcap (0.0 MB)." in mail.text
    assert "The files are kept with GEN-1 on the support server." in mail.text


def test_a_file_gone_from_disk_is_named_and_the_mail_still_goes(desk: MailDesk, tmp_path: Path):
    raw = write_mail(
        CARLA,
        desk.address("GEN"),
        "Report",
        "Attached.",
        attachments=[("report.pdf", PDF, "application/pdf")],
    )
    desk.sources["GEN"].deliver(raw, desk.clock())
    poll_mailbox(desk.desk, desk.desk.settings.product("GEN"), desk.sources["GEN"])
    [stored] = Attachment.select()
    (desk.desk.store.root / stored.stored_path).unlink()
    desk.drain()
    [mail] = desk.inbox(ERIN)
    assert files_of(mail) == {}
    assert "Not enclosed, no longer on the server: report.pdf." in mail.text


def test_an_inline_image_stays_inline_beside_the_html(desk: MailDesk):
    desk.send(
        CARLA,
        "GEN",
        "Error dialog",
        "See the screenshot.",
        html='<p>See the screenshot: <img src="cid:shot.1@client.test"></p>',
        inline=[("shot.1@client.test", PNG, "image/png")],
    )
    mail = desk.last_to(ERIN)
    assert mail.message.get_content_type() == "multipart/alternative"
    plain, related = mail.message.get_payload()
    assert (plain.get_content_type(), related.get_content_type()) == ("text/plain", "multipart/related")
    html, image = related.get_payload()
    assert html.get_content_type() == "text/html"
    assert 'src="cid:shot.1@client.test"' in html.get_content()
    assert image["Content-ID"] == "<shot.1@client.test>" and image.get_content_disposition() == "inline"
    assert image.get_content_type() == "image/png" and image.get_content() == PNG
    assert files_of(mail) == {}, "not offered as a file to save"


def test_a_customers_reply_of_only_a_file_still_reaches_the_engineer(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(CARLA, "GEN", new, "", attachments=[("app.log", b"line 1\n", "text/plain")])
    [mail] = desk.inbox(ERIN)
    assert mail.template == "customer_reply"
    assert files_of(mail) == {"app.log": ("text/plain", "line 1\n")}


def test_an_engineers_commands_with_a_file_are_one_mail_carrying_it(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(ERIN, "GEN", new, "#status resolved", attachments=[("fix.zip", PDF, "application/zip")])
    [mail] = desk.inbox(CARLA)
    assert mail.template == "reply"
    assert files_of(mail) == {"fix.zip": ("application/zip", PDF)}
    assert desk.ticket("GEN-1").status == "resolved"


def test_a_signature_logo_alone_does_not_make_commands_a_reply(desk: MailDesk):
    new = open_ticket(desk)
    desk.clear()
    desk.reply(
        ERIN,
        "GEN",
        new,
        "#status resolved",
        html='<p>#status resolved</p><p><img src="cid:logo@desk.test"></p>',
        inline=[("logo@desk.test", PNG, "image/png")],
    )
    [mail] = desk.inbox(CARLA)
    assert mail.template == "status_changed"
