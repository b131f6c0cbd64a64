"""Raw mail in, mailbot's own `ParsedMail` out: what a customer sent is what the desk sees,
and nothing a mail carries can inject headers, scripts, paths or a forged identity."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.errors import QuarantineError
from mailbot.inbound import parse, slices
from mailbot.inbound.parse import ParseLimits, parse_mail, safe_filename

FIXTURES = Path(__file__).parent / "fixtures" / "mail"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def mail(*headers: str, body: str = "Hello.", charset: str = "utf-8") -> bytes:
    lines = [*headers, f"Content-Type: text/plain; charset={charset}", "", body, ""]
    return "\n".join(lines).encode("utf-8")


# --- a customer writes -------------------------------------------------------------------------


def test_a_plain_customer_mail_reads_as_written():
    msg = parse_mail(fixture("plain.eml"))

    assert msg.sender is not None
    assert (msg.sender.email, msg.sender.name) == ("alice@customer.example", "Alice Martin")
    assert [a.email for a in msg.to] == ["support@visi.test"]
    assert [(a.email, a.name) for a in msg.cc] == [("bob@customer.example", "Bob Peeters")]
    assert msg.subject == "Export fällt aus after the update"
    assert msg.message_id == "CAF1234.plain@customer.example"
    assert msg.date == datetime(2024, 6, 4, 7, 15, tzinfo=UTC)
    assert msg.text.startswith("Hello,\n\nsince this morning's update")
    assert msg.text.endswith("Grüße,\nAlice")
    assert msg.html == ""
    assert msg.attachments == ()
    assert msg.automatic == "" and not msg.bounce and not msg.list_mail
    assert msg.header("message-id") == "<CAF1234.plain@customer.example>"
    assert ("Subject", "Export fällt aus after the update") in msg.headers


def test_a_reply_names_the_mails_it_answers_without_brackets():
    msg = parse_mail(fixture("reply.eml"))

    assert msg.subject == "Re: [VISI-12] Export fails after the update"
    assert msg.in_reply_to == ("VISI-12.3.1717488000@mailbot.test",)
    assert msg.references == ("CAF1234.plain@customer.example", "VISI-12.3.1717488000@mailbot.test")
    assert msg.thread_ids[0] == "VISI-12.3.1717488000@mailbot.test"


def test_an_outlook_reply_keeps_its_unquoted_display_name_and_windows_1252_text():
    msg = parse_mail(fixture("outlook_reply.eml"))

    assert msg.sender is not None
    assert (msg.sender.email, msg.sender.name) == ("jean.dupont@client.example", "Dupont, Jean")
    assert "Le serveur redémarre correctement maintenant." in msg.text
    assert "\r" not in msg.text


def test_html_only_mail_becomes_text_and_safe_html():
    msg = parse_mail(fixture("html_only.eml"))

    assert "The installer fails with error 1603." in msg.text
    assert "Regards, Carol" in msg.text
    assert "document.cookie" not in msg.text and "background" not in msg.text
    html = msg.html.lower()
    for forbidden in ("<script", "onerror", "onclick", "javascript:", "tracker.example", "<style"):
        assert forbidden not in html
    assert 'src="cid:screenshot@customer.example"' in msg.html
    assert 'href="https://docs.example/kb/1603"' in msg.html


def test_mail_without_message_id_gets_a_stable_synthetic_one():
    raw = mail("From: alice@customer.example", "Subject: no id")
    first, again = parse_mail(raw), parse_mail(raw)
    other = parse_mail(raw + b"\nP.S.")

    assert first.message_id == f"{hashlib.sha256(raw).hexdigest()}@mailbot.invalid"
    assert again.message_id == first.message_id
    assert other.message_id != first.message_id


def test_text_in_a_wrong_or_unknown_charset_is_still_read():
    utf8_labelled_latin1 = mail("From: a@customer.example", body="Café crème", charset="iso-8859-1")
    unknown = mail("From: a@customer.example", body="Grüße", charset="x-unknown")
    latin1_bytes = "Subject: x\nFrom: a@customer.example\n\nCaf\xe9\n".encode("latin-1")

    assert parse_mail(utf8_labelled_latin1).text == "Café crème"
    assert parse_mail(unknown).text == "Grüße"
    assert parse_mail(latin1_bytes).text == "Café"


def test_encoded_subjects_in_any_charset_are_decoded():
    split_utf8 = "Subject: =?utf-8?b?w6k=?= =?utf-8?q?t=C3?= =?utf-8?q?=A9?="
    broken = "Subject: =?utf-8?b?@@@?= and =?nonsense?q?caf=E9?="
    shift_jis_as_iso2022 = "Subject: =?ISO-2022-JP?B?g2OBW4OL?="

    assert parse_mail(mail("From: a@b.example", split_utf8)).subject == "été"
    assert parse_mail(mail("From: a@b.example", broken)).subject == "=?utf-8?b?@@@?= and café"
    assert parse_mail(mail("From: a@b.example", shift_jis_as_iso2022)).subject == "ツール"


# --- nothing a mail carries can inject or impersonate ------------------------------------------


def test_an_encoded_line_break_in_the_subject_cannot_inject_a_header():
    msg = parse_mail(fixture("crlf_subject.eml"))

    assert msg.subject == "Hi Bcc: evil@x.test"
    assert msg.sender is not None and msg.sender.name == ""
    for _, value in msg.headers:
        assert "\r" not in value and "\n" not in value


@pytest.mark.parametrize("name", ["from_double_at.eml", "from_quoted_local.eml", "from_comment.eml"])
def test_an_ambiguous_from_gives_no_sender(name):
    msg = parse_mail(fixture(name))

    assert msg.sender is None
    assert msg.subject == "Please grant me access"  # the mail itself is still read


@pytest.mark.parametrize(
    "from_lines",
    [
        ["From: a@customer.example, b@customer.example"],
        ["From: a@customer.example", "From: b@customer.example"],
        ["From: Al <a@customer.example>, =?utf-8?q?B?= <b@customer.example>"],
    ],
)
def test_several_senders_give_the_first_with_the_others_and_a_note(from_lines):
    msg = parse_mail(mail(*from_lines, "To: support@visi.test"))

    assert msg.sender is not None and msg.sender.email == "a@customer.example"
    assert [a.email for a in msg.sender_alternatives] == ["b@customer.example"]
    assert msg.sender_note, "a reading among several is never a plain one"


@pytest.mark.parametrize(
    "from_lines",
    [
        ["Subject: no from at all"],
        ["From: a@evil.example@customer.example", "Reply-To: x@evil.example, y@evil.example"],
        ["From: Bob <a@evil.example@customer.example>"],
        ["From: alice@customer.example <mallory@evil.example>"],
        ["From: =?utf-8?q?alice@customer.example=3E?= <mallory@evil.example"],
    ],
)
def test_zero_or_several_or_broken_senders_give_no_sender(from_lines):
    assert parse_mail(mail(*from_lines, "To: support@visi.test")).sender is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("From: alice@customer.example", ("alice@customer.example", "")),
        ("From: Alice <Alice@Customer.example>", ("Alice@Customer.example", "Alice")),
        ('From: "Martin, Alice" <alice@cust.example>', ("alice@cust.example", "Martin, Alice")),
        ("From: =?utf-8?q?Ren=C3=A9e?= <renee@cust.example>", ("renee@cust.example", "Renée")),
        ("From: alice@customer.example (Alice Martin)", ("alice@customer.example", "Alice Martin")),
        ('From: "fax #42*" <"fax #42*"@gw.customer.example>', ('"fax #42*"@gw.customer.example', "fax #42*")),
    ],
)
def test_ordinary_senders_are_read(header, expected):
    msg = parse_mail(mail(header))
    assert msg.sender is not None and (msg.sender.email, msg.sender.name) == expected
    assert msg.sender_note == "" and msg.sender_alternatives == ()


def test_attachment_names_are_made_safe_and_payloads_kept():
    msg = parse_mail(fixture("attachments.eml"))
    names = [a.filename for a in msg.attachments]

    assert names[:3] == ["passwd", "shadow", "a.pdf"]
    assert len(names[3]) == 150 and names[3].startswith("quarterly-report-")
    assert names[3].endswith(".pdf")
    assert names[4:] == ["win.ini", "schéma.png", "b.pdf"]
    for name in names:
        assert "/" not in name and "\\" not in name and "\x00" not in name
    assert msg.attachments[2].payload == b"%PDF-1.4 fake\n"
    assert msg.attachments[5].content_id == "schema@customer.example"
    assert msg.text == "Four files for you."


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("", "attachment"),
        ("..", "attachment"),
        ("report.pdf.", "report.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("tab\there.txt", "tab here.txt"),
        ("a" * 200, "a" * 150),
    ],
)
def test_safe_filename(given, shown):
    assert safe_filename(given) == shown


def test_a_forwarded_message_is_an_attachment_and_never_the_sender():
    msg = parse_mail(fixture("forwarded.eml"))

    assert msg.sender is not None and msg.sender.email == "alice@customer.example"
    assert msg.subject == "Fwd: invoice question from our accountant"
    assert msg.in_reply_to == () and msg.references == ()
    assert msg.text == "See the mail below, can you help?"
    assert "#status" not in msg.text
    [forwarded] = msg.attachments
    assert forwarded.content_type == "message/rfc822"
    assert b"From: Eve <eve@other.example>" in forwarded.payload


def test_a_chain_of_twenty_forwarded_messages_stays_one_attachment():
    msg = parse_mail(fixture("rfc822_nested.eml"))

    assert msg.sender is not None and msg.sender.email == "alice@customer.example"
    assert msg.subject == "Fwd: look at this chain"
    assert msg.message_id == "outer@customer.example"
    assert msg.in_reply_to == ()
    assert msg.text == ""
    [chain] = msg.attachments
    assert b"#status closed" in chain.payload


# --- what cannot be handled is quarantined, never crashes the worker ---------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty mail"),
        (b"  \r\n\r\n", "empty mail"),
        (fixture("garbage.eml"), "not a mail: no header"),
        (b"Subject: hi\x00\x01\x02\x03\nFrom: a@b.example\x00\n\nbody", "not a mail: binary header"),
        (b"just some text\nwithout any header\n", "not a mail: no header"),
        (fixture("deep_multipart.eml"), "MIME nesting too deep"),
    ],
)
def test_what_is_not_a_mail_is_quarantined(raw, reason):
    with pytest.raises(QuarantineError) as caught:
        parse_mail(raw)
    assert caught.value.reason == reason


def test_a_stray_nul_in_a_header_is_dropped_not_fatal():
    raw = mail("From: postmaster@carrier.example", "Subject: Error message\x00", "To: a@b.example")
    assert parse_mail(raw).subject == "Error message"


def test_size_caps_quarantine():
    raw = fixture("attachments.eml")
    with pytest.raises(QuarantineError, match="mail too large"):
        parse_mail(raw, ParseLimits(max_bytes=len(raw) - 1))
    with pytest.raises(QuarantineError, match="header section too large"):
        parse_mail(raw, ParseLimits(max_header_bytes=100))
    with pytest.raises(QuarantineError, match="attachment too large"):
        parse_mail(raw, ParseLimits(max_attachment_bytes=10))
    assert parse_mail(raw).attachments  # the defaults take it


def test_too_many_parts_are_quarantined():
    parts = "".join("--b\nContent-Type: text/plain\n\nx\n" for _ in range(600))
    raw = f'From: a@b.example\nContent-Type: multipart/mixed; boundary="b"\n\n{parts}--b--\n'
    with pytest.raises(QuarantineError, match="too many MIME parts"):
        parse_mail(raw.encode())


def test_multipart_nested_far_beyond_the_recursion_limit_is_quarantined():
    depth = 2000
    level = '--{0}\nContent-Type: multipart/mixed; boundary="{1}"\n\n'
    opening = "".join(level.format(i, i + 1) for i in range(depth))
    raw = f'From: a@b.example\nContent-Type: multipart/mixed; boundary="0"\n\n{opening}'
    with pytest.raises(QuarantineError):
        parse_mail(raw.encode())


def test_a_parser_crash_is_quarantined(monkeypatch):
    def crash(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(slices, "_message_from_slices", crash)
    with pytest.raises(QuarantineError, match="nested too deeply"):
        parse_mail(fixture("plain.eml"))


def test_a_mail_parser_bug_falls_back_to_the_standard_library(monkeypatch):
    def broken(message):
        raise AttributeError("'NoneType' object has no attribute 'index'")

    monkeypatch.setattr(parse.mailparser, "MailParser", broken)
    msg = parse_mail(fixture("plain.eml"))
    assert [a.email for a in msg.cc] == ["bob@customer.example"]
    assert msg.date == datetime(2024, 6, 4, 7, 15, tzinfo=UTC)


# --- automatic mail, as the router sees it -----------------------------------------------------


def test_a_bounce_names_the_mail_of_ours_that_bounced():
    msg = parse_mail(fixture("bounce_dsn.eml"))

    assert msg.bounce and msg.automatic == "bounce:failed"
    assert msg.bounced_message_id == "x@mailbot.test"
    assert msg.bounced_recipients == ("gone@customer.example",)
    assert msg.subject == "Undelivered Mail Returned to Sender"  # not the returned mail's
    assert msg.message_id == "20240604150009.AB12C@mx.visi.test"
    assert {a.filename for a in msg.attachments} == {"delivery-status.txt", "message.eml"}


def test_a_delay_notice_is_a_bounce_without_failed_recipients():
    msg = parse_mail(fixture("delayed_dsn.eml"))

    assert msg.bounce and msg.automatic == "bounce:delayed"
    assert msg.bounced_message_id == "y@mailbot.test"
    assert msg.bounced_recipients == ()


@pytest.mark.parametrize(
    ("name", "automatic", "list_mail"),
    [
        ("out_of_office.eml", "auto-submitted:auto-replied", False),
        ("bulk.eml", "precedence:bulk", False),
        ("list_mail.eml", "", True),
        ("plain.eml", "", False),
    ],
)
def test_automatic_and_list_mail_are_marked(name, automatic, list_mail):
    msg = parse_mail(fixture(name))
    assert (msg.automatic, msg.list_mail, msg.bounce) == (automatic, list_mail, False)


def test_a_big_attachment_is_decoded_to_exactly_its_bytes():
    """Attachments over a megabyte take the sliced decoding path (memory); the bytes must be the
    sender's, and the mail is not quarantined."""
    import email.policy
    import os
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "dana@customer.test", "support@p.test", "Log"
    mail["Message-ID"] = "<big-log@customer.test>"
    mail.set_content("The log is attached.")
    payload = os.urandom(3 * 1024 * 1024 + 17)
    mail.add_attachment(payload, maintype="application", subtype="zip", filename="log.zip")
    msg = parse_mail(mail.as_bytes(policy=email.policy.SMTP))
    [attachment] = msg.attachments
    assert attachment.filename == "log.zip" and attachment.payload == payload
    assert msg.text.strip() == "The log is attached."
