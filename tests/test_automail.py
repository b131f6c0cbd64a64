"""Mail written by machines is recognised, so that mailbot never answers a robot (and never
starts a mail loop), while a person's mail, even through a list, stays a person's."""

from __future__ import annotations

import email
from email.message import Message
from pathlib import Path

import pytest
from flufl.bounce import all_failures

from mailbot.inbound import automail, ndr
from mailbot.inbound.automail import classify, is_list_mail, is_noreply_address, read_bounce

FIXTURES = Path(__file__).parent / "fixtures" / "mail"


def fixture(name: str) -> Message:
    return email.message_from_bytes((FIXTURES / name).read_bytes())


ALICE = "Alice <alice@customer.example>"


def mail(*headers: str, body: str = "Hello.", sender: str = ALICE) -> Message:
    text = "\n".join([f"From: {sender}", *headers, "", body, ""])
    return email.message_from_string(text)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (["Auto-Submitted: auto-replied"], "auto-submitted:auto-replied"),
        (["Auto-Submitted: AUTO-GENERATED; x=y"], "auto-submitted:auto-generated"),
        (["Precedence: bulk"], "precedence:bulk"),
        (["Precedence: Junk"], "precedence:junk"),
        (["Precedence: list"], "precedence:list"),
        (["Precedence: auto_reply"], "precedence:auto_reply"),
        (["X-Precedence: bulk"], "precedence:bulk"),
        (["X-Autoreply: yes"], "x-autoreply"),
        (["X-Autorespond: Out of office"], "x-autorespond"),
        (["X-AutoReply-From: alice@customer.example"], "x-autoreply-from"),
        (["X-Mail-Autoreply: yes"], "x-mail-autoreply"),
        (["X-Auto-Response-Suppress: OOF, AutoReply"], "x-auto-response-suppress"),
        (["X-Auto-Response-Suppress: All"], "x-auto-response-suppress"),
        (["X-Auto-Response-Suppress: DR"], "x-auto-response-suppress"),
        (["X-Mailbot-Loop: mailbot.test"], "own-loop"),
        (["X-Failed-Recipients: gone@customer.example"], "bounce:failed"),
        (["Return-Path: <>"], "bounce:failed"),
        (["Subject: Automatic reply: your ticket"], "auto-reply-subject"),
        (["Subject: Out of Office: your ticket"], "auto-reply-subject"),
        (["Subject: Abwesenheitsnotiz: Ihre Anfrage"], "auto-reply-subject"),
        (["Subject: Afwezig: uw vraag"], "auto-reply-subject"),
        (["Subject: =?utf-8?q?R=C3=A9ponse_automatique_:_votre_demande?="], "auto-reply-subject"),
        (["Subject: Undeliverable: your ticket"], "bounce:failed"),
    ],
)
def test_machine_mail_is_recognised(headers, reason):
    assert classify(mail(*headers)) == reason


@pytest.mark.parametrize(
    "headers",
    [
        [],
        ["Auto-Submitted: no"],
        ["Auto-Submitted: No"],
        ["Precedence: first-class"],
        ["X-Auto-Response-Suppress: RN, NRN"],
        ["Subject: Re: out of office hours question"],
        ["Subject: Out of office hours? Who answers then"],
        ["Subject: Question about the automatic reply feature"],
        ["Subject: Vacation: may I move my training to August?"],
        ["List-Id: <it-team.googlegroups.example>"],
        ["List-Unsubscribe: <mailto:leave@lists.example>"],
    ],
)
def test_mail_written_by_a_person_is_not_automatic(headers):
    assert classify(mail(*headers)) == ""


def test_our_own_loop_header_wins_over_everything_else():
    assert classify(mail("X-Mailbot-Loop: yes", "Auto-Submitted: auto-replied")) == "own-loop"


def test_an_auto_reply_with_an_empty_return_path_is_not_a_bounce():
    msg = mail("Return-Path: <>", "Auto-Submitted: auto-replied", "Subject: Out of office")
    assert classify(msg) == "auto-submitted:auto-replied"


def test_the_out_of_office_fixture_is_an_auto_reply():
    assert classify(fixture("out_of_office.eml")) == "auto-submitted:auto-replied"


def test_list_mail_is_marked_but_is_not_a_reason():
    msg = fixture("list_mail.eml")
    assert is_list_mail(msg)
    assert classify(msg) == ""
    assert not is_list_mail(fixture("plain.eml"))


def test_a_dsn_is_a_bounce_with_the_original_message_id_and_failed_recipient():
    msg = fixture("bounce_dsn.eml")

    assert classify(msg) == "bounce:failed"
    assert automail.bounce(msg) == "bounce:failed"
    assert read_bounce(msg) == automail.Bounce("x@mailbot.test", ("gone@customer.example",))
    # the loop header of the returned mail is inside it, not on the bounce
    assert automail.own_loop(msg) == ""


def test_a_delay_notice_is_a_bounce_without_failed_recipients():
    msg = fixture("delayed_dsn.eml")

    assert classify(msg) == "bounce:delayed"
    assert read_bounce(msg) == automail.Bounce("y@mailbot.test", ())


def test_a_bounce_without_a_report_is_recognised_by_its_sender():
    msg = mail(
        "Subject: failure notice",
        "In-Reply-To: <z@mailbot.test>",
        sender="MAILER-DAEMON@mx.customer.example",
        body="Hi. This is the qmail-send program.\n\n<gone@customer.example>:\nNo mailbox here.",
    )

    assert classify(msg) == "bounce:failed"
    assert read_bounce(msg) == automail.Bounce("z@mailbot.test", ("gone@customer.example",))


def test_the_original_message_id_can_come_from_the_quoted_headers_in_the_text():
    msg = mail(
        "X-Failed-Recipients: gone@customer.example",
        "Subject: Mail delivery failed",
        body="------ This is a copy of the message, including all the headers. ------\n"
        "Message-ID: <q@mailbot.test>\nSubject: hi\n",
    )
    assert read_bounce(msg) == automail.Bounce("q@mailbot.test", ("gone@customer.example",))


def test_read_receipts_and_abuse_reports_are_automatic():
    receipt = mail("Content-Type: multipart/report; report-type=disposition-notification")
    abuse = mail("Content-Type: multipart/report; report-type=feedback-report")
    assert classify(receipt) == "report:disposition-notification"
    assert classify(abuse) == "report:feedback-report"


@pytest.mark.parametrize(
    "address",
    [
        "MAILER-DAEMON@mx.example",
        "postmaster@customer.example",
        "abuse@customer.example",
        "root@server.customer.example",
        "noreply@service.example",
        "no-reply@service.example",
        "No_Reply@service.example",
        "donotreply@service.example",
        "do-not-reply@service.example",
        "bounce@lists.example",
        "bounces+1234-gone=customer.example@lists.example",
        "noreply-notifications@service.example",
    ],
)
def test_noreply_addresses(address):
    assert is_noreply_address(address)
    assert classify(mail(f"Reply-To: {address}")) == ""  # only the sender counts


@pytest.mark.parametrize(
    "address", ["alice@customer.example", "noreen@customer.example", "rooter@customer.example", "abuse", ""]
)
def test_people_are_not_noreply_addresses(address):
    assert not is_noreply_address(address)


def test_a_noreply_sender_is_never_answered():
    assert classify(mail(sender="Service <noreply@service.example>")) == "noreply-sender"


MACHINE_FIXTURES = Path(__file__).parent / "fixtures" / "machines"


def test_asking_flufl_bounces_detectors_one_by_one_agrees_with_the_library():
    """mailbot asks flufl.bounce's detectors itself to name the one that fired: it must find
    what the library's own `all_failures` finds (LLNL aside, which mailbot skips)."""
    assert [d.__name__ for d in ndr.library_detectors()][:2] == ["DSN", "Exim"]
    for path in [FIXTURES / "bounce_dsn.eml", FIXTURES / "delayed_dsn.eml", *MACHINE_FIXTURES.glob("*.eml")]:
        msg = email.message_from_bytes(path.read_bytes())
        ours, (temporary, permanent) = ndr.scan_with_library(msg), all_failures(msg)
        assert (ours is not None) == bool(temporary or permanent), path.name
        if ours is not None:
            assert set(ours.recipients) == {a.decode() for a in permanent}, path.name


@pytest.mark.parametrize(
    "text",
    [
        "Hello,\nthe parcel could not be delivered to our office at 12 rue Haute.\nDana",
        "Hi,\nmy mail to you could not be delivered, says Outlook.\nPlease write to dana@customer.test\nDana",
        "> Your message could not be delivered to:\n> x@y.test\nThat was yesterday.",
    ],
)
def test_a_person_mentioning_a_failed_delivery_is_no_report(text):
    assert ndr.text_reports_failure(text) is None
