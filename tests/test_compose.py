"""What a receiving mail server and mail client see of the bytes mailbot sends."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from mailbot.inbound.message import Address
from mailbot.outgoing.addressing import (
    build_references,
    check_address,
    is_our_message_id,
    make_message_id,
    reference_from_thread_ref,
    thread_ref,
)
from mailbot.outgoing.compose import LOOP_HEADER, OutgoingMail, compose
from mailbot.outgoing.render import REPLY_MARKERS, Renderer

DOMAIN = "mail.produsoft.test"
SUPPORT = Address("visi.support@produsoft.test", "VISI Support")
ANNA = Address("anna@customer.test", "Anna de Vries")


def outgoing(**changes: object) -> OutgoingMail:
    mail = OutgoingMail(
        sender=SUPPORT,
        to=(ANNA,),
        subject="[VISI-42] Export to STEP fails",
        text="-- Reply above this line --\n\nWe have registered your request.\n",
        message_id="visi-42.0123456789abcdef@" + DOMAIN,
        in_reply_to="CAF=abc@mail.customer.test",
        references=(f"ticket-VISI-42@{DOMAIN}", "CAF=abc@mail.customer.test"),
        automatic="auto-replied",
        loop_marker=DOMAIN,
        date=datetime(2025, 3, 3, 9, 12, tzinfo=UTC),
    )
    return replace(mail, **changes)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def content(part: email.message.EmailMessage) -> str:
    """A part's text as a mail client shows it (line ends as plain newlines)."""
    return part.get_content().replace("\r\n", "\n")


def decoded(encoded_word: str) -> str:
    return str(make_header(decode_header(encoded_word)))


def test_an_injected_subject_stays_one_subject_and_adds_no_recipient():
    subject = decoded("=?utf-8?b?SGkNCkJjYzogZXZpbEB4LnRlc3Q=?=")
    assert subject == "Hi\r\nBcc: evil@x.test"
    raw = compose(outgoing(subject=subject))
    message = parse(raw)
    assert len(message.get_all("Subject")) == 1
    assert message["Subject"] == "Hi Bcc: evil@x.test"
    assert message.get_all("Bcc") is None
    assert [a.addr_spec for a in message["To"].addresses] == ["anna@customer.test"]
    assert not re.search(rb"^Bcc:", raw, re.MULTILINE | re.IGNORECASE)


@pytest.mark.parametrize(
    "name", [decoded("=?utf-8?q?=0A?="), "Eve\r\nBcc: evil@x.test", "Eve\nX-Evil: 1", 'Doe, "J" <x@y>']
)
def test_hostile_display_names_change_no_header_and_no_recipient(name):
    message = parse(compose(outgoing(to=(Address("eve@customer.test", name),), cc=(ANNA,))))
    assert message.get_all("Bcc") is None and message.get_all("X-Evil") is None
    assert [a.addr_spec for a in message["To"].addresses] == ["eve@customer.test"]
    assert [a.addr_spec for a in message["Cc"].addresses] == ["anna@customer.test"]
    assert "\n" not in message["To"].addresses[0].display_name


def test_bytes_use_crlf_only_and_no_line_is_too_long():
    raw = compose(
        outgoing(
            subject="Grüße – " + "sehr lange Betreffzeile " * 20,
            text="x" * 5000 + "\nline two\rline three\n",
            html="<p>" + "y" * 5000 + "</p>",
            references=tuple(f"id{i}.{'a' * 40}@mail.customer.test" for i in range(30)),
        )
    )
    assert not re.search(rb"(?<!\r)\n", raw), "bare LF"
    assert not re.search(rb"\r(?!\n)", raw), "bare CR"
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    header_lines = lines[: lines.index(b"")]
    assert max(len(line) for line in header_lines) <= 78


def test_threading_and_loop_headers_are_present_and_right():
    message = parse(compose(outgoing(automatic="auto-generated")))
    assert message["Message-ID"] == f"<visi-42.0123456789abcdef@{DOMAIN}>"
    assert message["In-Reply-To"] == "<CAF=abc@mail.customer.test>"
    assert message["References"].split() == [f"<ticket-VISI-42@{DOMAIN}>", "<CAF=abc@mail.customer.test>"]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["Precedence"] == "bulk"
    assert message[LOOP_HEADER] == DOMAIN
    assert message["From"].addresses[0].addr_spec == "visi.support@produsoft.test"
    assert message["From"].addresses[0].display_name == "VISI Support"
    assert message["Date"].datetime == datetime(2025, 3, 3, 9, 12, tzinfo=UTC)
    assert message["MIME-Version"] == "1.0"


def test_an_acknowledgement_is_auto_replied():
    assert parse(compose(outgoing()))["Auto-Submitted"] == "auto-replied"


def test_a_relayed_human_reply_is_not_marked_automatic():
    message = parse(compose(outgoing(automatic="")))
    assert message["Auto-Submitted"] is None
    assert message["Precedence"] is None
    assert message["X-Auto-Response-Suppress"] is None
    assert message[LOOP_HEADER] == DOMAIN  # the loop marker is on every mail


def test_non_ascii_names_subjects_and_text_round_trip():
    sender = Address("support@produsoft.test", "Support Çà & Cie, Zürich")
    zoe = Address("zoe@klant.test", "Zoë Ünal")
    subject = "[VISI-42] Grüße – ça marche ? 日本語"
    text = "Bonjour Zoë,\nvoilà ½ € 日本語.\n"
    raw = compose(outgoing(sender=sender, to=(zoe,), subject=subject, text=text))
    raw.decode("ascii")  # nothing needs SMTPUTF8
    message = parse(raw)
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "Support Çà & Cie, Zürich"
    assert message["To"].addresses[0].display_name == "Zoë Ünal"
    assert content(message) == text


def test_text_and_html_travel_as_alternatives():
    message = parse(compose(outgoing(html="<p>Hello <b>Anna</b></p>\n")))
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert content(plain).startswith("-- Reply above this line --")
    assert content(html) == "<p>Hello <b>Anna</b></p>\n"
    assert plain.get_content_charset() == "utf-8"


def test_without_html_the_mail_is_plain_text():
    message = parse(compose(outgoing()))
    assert message.get_content_type() == "text/plain"
    assert not message.is_multipart()


def test_control_characters_do_not_reach_the_body():
    message = parse(compose(outgoing(text="a\x00b\x1bc\td\n")))
    assert content(message) == "abc\td\n"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "anna",
        "anna@",
        "@customer.test",
        "a@evil.org@customer.test",
        "anna@customer.test, eve@evil.test",
        "Anna <anna@customer.test>",
        "anna smith@customer.test",
        "anna@customer.test\r\nBcc: eve@evil.test",
        '"anna"@customer.test',
        "anna@cust..test",
        "anna@-customer.test",
        "zoë@customer.test",
    ],
)
def test_an_address_that_is_not_one_plain_addr_spec_is_refused(bad):
    with pytest.raises(ValueError):
        check_address(bad)
    with pytest.raises(ValueError):
        compose(outgoing(to=(Address(bad, "X"),)))


def test_unusual_but_valid_addresses_are_accepted():
    assert check_address("o'brien+visi@sub.customer.test") == "o'brien+visi@sub.customer.test"
    assert check_address("anna@bücher.example") == "anna@xn--bcher-kva.example"
    message = parse(compose(outgoing(to=(Address("anna@bücher.example", "Anna"),))))
    assert message["To"].addresses[0].addr_spec == "anna@xn--bcher-kva.example"


def test_engineer_metadata_headers_are_added_and_cleaned():
    extra = (
        ("X-Mailbot-Ticket", "VISI-42"),
        ("X-Mailbot-Status", "open\r\nBcc: evil@x.test"),
        ("X-Mailbot-Product", "VISI"),
    )
    message = parse(compose(outgoing(extra_headers=extra)))
    assert message["X-Mailbot-Ticket"] == "VISI-42"
    assert message["X-Mailbot-Status"] == "open Bcc: evil@x.test"
    assert message.get_all("Bcc") is None


@pytest.mark.parametrize("name", ["Bcc", "from", "Message-ID", LOOP_HEADER, "X-Bad: name", ""])
def test_extra_headers_cannot_replace_ours_or_be_malformed(name):
    with pytest.raises(ValueError):
        compose(outgoing(extra_headers=((name, "x"),)))


@pytest.mark.parametrize(
    "changes",
    [
        {"to": ()},
        {"loop_marker": " \r\n"},
        {"date": datetime(2025, 3, 3, 9, 12)},
        {"message_id": "<visi-42.0123456789abcdef@mail.produsoft.test>"},
        {"message_id": "no-at-sign"},
    ],
)
def test_a_mail_that_could_not_be_sent_safely_raises(changes):
    with pytest.raises(ValueError):
        compose(outgoing(**changes))


def test_automatic_must_be_a_known_value():
    with pytest.raises(ValueError):
        outgoing(automatic="yes")


def test_the_date_keeps_its_time_zone():
    brussels = timezone(timedelta(hours=1))
    message = parse(compose(outgoing(date=datetime(2025, 3, 3, 10, 12, tzinfo=brussels))))
    assert message["Date"].endswith("+0100")


def test_our_message_ids_are_unique_and_recognisable():
    ids = {make_message_id("VISI-42", DOMAIN) for _ in range(1000)}
    assert len(ids) == 1000
    sample = ids.pop()
    assert re.fullmatch(r"visi-42\.[0-9a-f]{16}@mail\.produsoft\.test", sample)
    assert is_our_message_id(sample, DOMAIN)
    assert is_our_message_id(f"<{sample}>", DOMAIN.upper())
    assert not is_our_message_id(sample, "other.test")
    assert not is_our_message_id("CAF=abc@mail.customer.test", DOMAIN)
    assert not is_our_message_id(f"visi-42.nothex@{DOMAIN}", DOMAIN)
    assert is_our_message_id(make_message_id("", DOMAIN), DOMAIN)


def test_the_thread_ref_is_stable_per_ticket():
    assert thread_ref("VISI-42", DOMAIN) == f"ticket-VISI-42@{DOMAIN}"
    assert reference_from_thread_ref(f"<ticket-VISI-42@{DOMAIN}>", DOMAIN) == "VISI-42"
    assert reference_from_thread_ref("ticket-VISI-42@other.test", DOMAIN) == ""
    with pytest.raises(ValueError):
        thread_ref("VISI 42>", DOMAIN)


def test_references_keep_the_first_four_and_last_six_plus_the_thread_ref():
    existing = [f"<id{i}@customer.test>" for i in range(20)]
    refs = build_references(existing, "<parent@customer.test>", "VISI-42", DOMAIN)
    assert refs == (
        f"ticket-VISI-42@{DOMAIN}",
        "id0@customer.test",
        "id1@customer.test",
        "id2@customer.test",
        "id3@customer.test",
        "id15@customer.test",
        "id16@customer.test",
        "id17@customer.test",
        "id18@customer.test",
        "id19@customer.test",
        "parent@customer.test",
    )
    message = parse(compose(outgoing(references=refs)))
    assert len(message["References"].split()) == 11


def test_references_have_no_duplicates_and_the_parent_last():
    existing = [
        f"ticket-VISI-42@{DOMAIN}",
        "a@customer.test",
        "parent@customer.test",
        "a@customer.test",
        "not a message id",
        "",
    ]
    refs = build_references(existing, "parent@customer.test", "VISI-42", DOMAIN)
    assert refs == (f"ticket-VISI-42@{DOMAIN}", "a@customer.test", "parent@customer.test")
    assert build_references([], "", "VISI-42", DOMAIN) == (f"ticket-VISI-42@{DOMAIN}",)


def test_a_rendered_acknowledgement_arrives_as_the_customer_reads_it():
    templates = Path(__file__).resolve().parent.parent / "mailbot" / "templates"
    context = {
        "product": {"key": "VISI", "name": "VISI", "address": "visi.support@produsoft.test"},
        "ticket": {
            "reference": "VISI-42",
            "subject": "Export naar STEP mislukt",
            "priority": "high",
            "category": "bug",
            "due_first_response": "",
            "linked_reference": "",
        },
        "recipient": {"name": "Anna de Vries", "email": "anna@customer.test", "role": "customer"},
    }
    rendered = Renderer(templates).render("ticket_opened", "nl", "VISI", context)
    raw = compose(outgoing(subject=rendered.subject, text=rendered.text, html=rendered.html))
    message = parse(raw)
    assert message["Subject"] == "[VISI-42] Export naar STEP mislukt"
    text = content(message.get_body(("plain",)))
    assert text.splitlines()[0] == REPLY_MARKERS["nl"]
    assert "Prioriteit: Hoog" in text
    assert "Hoog" in content(message.get_body(("html",)))
