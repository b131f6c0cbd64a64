"""Never start a loop, on a real Dovecot and a real SMTP server: mail written by machines
(auto-replies, bounces, lists, no-reply senders, our own mail coming back) is recorded and never
answered; a bounce of our mail goes on its ticket and stops automatic mail to the dead address;
and the limits on acknowledgements and automatic mail hold. Every test counts: one ledger row per
mail delivered, and exactly the mails expected at the SMTP server."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

import pytest

from tests.helpers.bulk import counts, events_of_kind, ledger_by_message_id, messages_on, undeliverable
from tests.helpers.mails import message_id_of, write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
WORKNC = "worknc.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"


@pytest.fixture
def site(tmp_path, mail_user, smtp_sink):
    """VISI open to unknown senders (so a robot's mail would even get an account), and WORKNC,
    whose address is ours too."""
    open_visi = {"address": VISI, "mailbox": mail_user.url(), "unknown_senders": "open"}
    site = make_site(tmp_path, {"VISI": open_visi, "WORKNC": {"address": WORKNC}}, smtp_url=smtp_sink.url)
    site.add_account(DANA, "VISI", name="Dana Customer")
    site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
    return site


def deliver(dovecot, mail_user, raw: bytes) -> str:
    dovecot.append(mail_user.name, raw)
    return re.search(rb"^Message-ID:\s*<([^>]+)>", raw, re.MULTILINE | re.IGNORECASE).group(1).decode()


def mails_to(sink, address: str) -> list:
    return [m for m in sink.messages if address in m.rcpt_tos]


def write_dsn(
    original_headers: str,
    recipient: str,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    sender: str = "MAILER-DAEMON@mx.customer.test",
    to: str = VISI,
) -> bytes:
    """A delivery status notification (RFC 3464) as Postfix writes it, returning the headers of
    the mail that could not be delivered."""
    boundary = "dsn-boundary-1"
    subject = "Undelivered Mail Returned to Sender" if action == "failed" else "Delayed Mail (still retried)"
    text = f"""Return-Path: <>
From: Mail Delivery System <{sender}>
To: {to}
Subject: {subject}
Date: {format_datetime(datetime.now(UTC))}
Message-ID: {make_msgid("dsn", "mx.customer.test")}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.customer.test.
Your message could not be delivered to one or more recipients.

<{recipient}>: 550 5.1.1 Recipient address rejected: User unknown

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.test

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected

--{boundary}
Content-Type: text/rfc822-headers

{original_headers.strip()}

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode()


def headers_of(raw: bytes) -> str:
    return raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode()


# -- machine mail is recorded, never answered ------------------------------------------------

STRANGER = "someone@other.test"
MACHINE_MAILS = [
    # label, sender, extra headers, expected ledger reason
    ("auto-replied", DANA, {"Auto-Submitted": "auto-replied"}, "automatic: auto-submitted:auto-replied"),
    (
        "auto-generated",
        STRANGER,
        {"Auto-Submitted": "Auto-Generated"},
        "automatic: auto-submitted:auto-generated",
    ),
    ("x-autoreply", STRANGER, {"X-Autoreply": "yes"}, "automatic: x-autoreply"),
    ("suppress all", STRANGER, {"X-Auto-Response-Suppress": "All"}, "automatic: x-auto-response-suppress"),
    (
        "suppress oof",
        STRANGER,
        {"X-Auto-Response-Suppress": "OOF, AutoReply"},
        "automatic: x-auto-response-suppress",
    ),
    ("bulk", STRANGER, {"Precedence": "bulk"}, "automatic: precedence:bulk"),
    ("junk", STRANGER, {"Precedence": "junk"}, "automatic: precedence:junk"),
    ("auto_reply", STRANGER, {"Precedence": "auto_reply"}, "automatic: precedence:auto_reply"),
    (
        "empty return path",
        "mail-system@mx.other.test",
        {"Return-Path": "<>"},
        "bounce: original mail unknown (mailbot: return-path rule)",
    ),
    (
        "mailer-daemon",
        "MAILER-DAEMON@mx.other.test",
        {},
        "bounce: original mail unknown (mailbot: sender rule)",
    ),
    ("postmaster", "postmaster@other.test", {}, "bounce: original mail unknown (mailbot: sender rule)"),
    ("noreply", "noreply@shop.test", {}, "automatic: noreply-sender"),
    ("no-reply", "no-reply@shop.test", {}, "automatic: noreply-sender"),
    ("do-not-reply", "do-not-reply@shop.test", {}, "automatic: noreply-sender"),
    ("bounces+", "bounces+12345@shop.test", {}, "automatic: noreply-sender"),
    ("our own address", VISI, {}, "own-loop"),
    ("another product's address", WORKNC, {}, "own-loop"),
    ("our loop header", STRANGER, {"X-Mailbot-Loop": "mailbot.test"}, "own-loop"),
]


def test_machine_mail_is_recorded_and_answered_by_nothing(site, dovecot, mail_user, smtp_sink):
    expected = {}
    for label, sender, headers, reason in MACHINE_MAILS:
        mid = deliver(
            dovecot,
            mail_user,
            write_mail(sender, VISI, f"About {label}", f"Mail of kind {label}.", headers=headers),
        )
        expected[mid] = (label, reason)
    someone_elses = "From: x@elsewhere.test\nMessage-ID: <unknown@elsewhere.test>\nSubject: hi"
    dsn = write_dsn(someone_elses, "gone@other.test", sender="mta@other.test")
    expected[deliver(dovecot, mail_user, dsn)] = (
        "multipart/report",
        "bounce: original mail unknown (flufl.bounce: DSN)",
    )
    # "Auto-Submitted: no" is a person: the one mail here that is answered.
    human = deliver(
        dovecot,
        mail_user,
        write_mail(DANA, VISI, "Licence question", "How many seats?", headers={"Auto-Submitted": "no"}),
    )

    site.poll()

    ledger = ledger_by_message_id(site)
    assert len(ledger) == len(expected) + 1 == len(dovecot.uids(mail_user.name))
    wrong = [
        (label, ledger[mid].outcome, ledger[mid].reason)
        for mid, (label, reason) in expected.items()
        if (ledger[mid].outcome, ledger[mid].reason) != ("ignored", reason)
    ]
    assert wrong == []
    assert ledger[human].outcome == "ticket"
    found = counts(site)
    print(f"\n{len(expected)} machine mails: {dict(found.reasons)}")
    assert found.tickets == 1 and found.raw_missing == 0
    assert dict(found.outbox) == {"ticket_opened": 1, "new_ticket": 1}
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == [DANA, ERIN]
    accounts = [a["email"] for a in site.json("account", "list")]
    assert accounts == sorted([DANA, ERIN]), "no account for a robot"
    for uid in dovecot.uids(mail_user.name):
        assert "$MailbotDone" in dovecot.flags(mail_user.name, uid)


def test_auto_replies_to_our_mail_go_on_the_ticket_and_change_nothing(site, dovecot, mail_user, smtp_sink):
    deliver(dovecot, mail_user, write_mail(DANA, VISI, "Export fails", "The STEP export stops."))
    site.poll()
    [ack] = mails_to(smtp_sink, DANA)
    ack_id = message_id_of(ack.message)
    smtp_sink.clear()

    robots = [
        {"Auto-Submitted": "auto-replied"},
        {"X-Autoreply": "yes"},
        {"Precedence": "auto_reply"},
        {"X-Auto-Response-Suppress": "OOF"},
        {},
    ]
    for headers in robots:
        subject = "Automatic reply: [VISI-1] Export fails" if not headers else "Re: [VISI-1] Export fails"
        deliver(
            dovecot,
            mail_user,
            write_mail(
                DANA,
                VISI,
                subject,
                "I am out of the office until Monday.",
                in_reply_to=ack_id,
                headers=headers,
            ),
        )
    # A colleague's responder answering a mail forwarded to them: not on the ticket, no refusal.
    deliver(
        dovecot,
        mail_user,
        write_mail(
            "colleague@customer.test",
            VISI,
            "Re: [VISI-1] Export fails",
            "Out of office.",
            in_reply_to=ack_id,
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    site.poll()

    found = counts(site)
    assert found.ledger == 7 and found.tickets == 1
    assert messages_on(site, "VISI-1", "auto") == len(robots)
    assert smtp_sink.messages == [] and sum(found.outbox.values()) == 2  # the first ack and new-ticket mail
    shown = site.ticket("VISI-1")
    assert shown["status"] == "new", "an auto-reply changes nothing"
    assert all(m["visibility"] == "internal" for m in shown["messages"] if m["kind"] == "auto")


def test_a_machine_notice_or_list_mail_from_a_customer_opens_a_ticket_without_acknowledgement(
    site, dovecot, mail_user, smtp_sink
):
    deliver(
        dovecot,
        mail_user,
        write_mail(
            DANA,
            VISI,
            "Nightly licence check failed",
            "Failed at 02:00.",
            headers={"Auto-Submitted": "auto-generated"},
        ),
    )
    deliver(
        dovecot,
        mail_user,
        write_mail(DANA, VISI, "Weekly report", "All jobs ran.", headers={"Precedence": "bulk"}),
    )
    # Dana writes through her team's Google Group: a person, through a list.
    deliver(
        dovecot,
        mail_user,
        write_mail(
            DANA,
            VISI,
            "Plotter driver",
            "Which driver for the HP plotter?",
            headers={
                "List-Id": "<cad-team.customer.test>",
                "Precedence": "list",
                "List-Unsubscribe": "<mailto:leave@customer.test>",
            },
        ),
    )
    site.poll()

    assert sorted(t["subject"] for t in site.tickets()) == [
        "Nightly licence check failed",
        "Plotter driver",
        "Weekly report",
    ]
    assert mails_to(smtp_sink, DANA) == [], "no acknowledgement to a machine or a list"
    assert len(mails_to(smtp_sink, ERIN)) == 3, "the engineers hear of each ticket"


def test_a_machine_notice_that_would_be_refused_gets_no_refusal(tmp_path, dovecot, mail_user, smtp_sink):
    visi = {"address": VISI, "mailbox": mail_user.url(), "contract_required": "true"}
    site = make_site(tmp_path, {"VISI": visi}, smtp_url=smtp_sink.url)
    site.add_account(DANA, "VISI")  # no contract
    deliver(
        dovecot,
        mail_user,
        write_mail(
            DANA, VISI, "Backup failed", "Job 12 failed.", headers={"Auto-Submitted": "auto-generated"}
        ),
    )
    site.poll()
    found = counts(site)
    assert (found.ledger, found.tickets, found.outcomes) == (1, 0, {"ignored": 1})
    assert smtp_sink.messages == [] and not found.outbox


def test_a_bounce_of_our_mail_goes_on_its_ticket_and_stops_automatic_mail(
    site, dovecot, mail_user, smtp_sink
):
    deliver(dovecot, mail_user, write_mail(DANA, VISI, "Crash on start", "VISI crashes at start."))
    site.poll()
    [ack] = mails_to(smtp_sink, DANA)
    smtp_sink.clear()

    # Dana's mailbox is gone: her server returns our acknowledgement.
    deliver(dovecot, mail_user, write_dsn(headers_of(ack.raw), DANA))
    site.poll()
    found = counts(site)
    assert found.ledger == 2 and found.tickets == 1
    assert found.outcomes == {"ticket": 1, "message": 1}
    assert messages_on(site, "VISI-1", "bounce") == 1
    assert events_of_kind(site, "delivery_failed") == [("VISI-1", DANA)]
    assert undeliverable(site, DANA)
    [told] = smtp_sink.messages
    assert told.rcpt_tos == [ERIN] and "VISI-1" in told.message["Subject"], "the engineers are told"
    smtp_sink.clear()

    # The same bounce again (the MTA retried), and a delay notice: recorded, nobody told again.
    deliver(dovecot, mail_user, write_dsn(headers_of(ack.raw), DANA))
    deliver(dovecot, mail_user, write_dsn(headers_of(ack.raw), DANA, action="delayed", status="4.4.1"))
    # The engineer resolves the ticket: the status mail to the dead address is not sent.
    deliver(dovecot, mail_user, write_mail(ERIN, VISI, "Re: [VISI-1] Crash on start", "#status resolved\n"))
    site.poll()
    assert messages_on(site, "VISI-1", "bounce") == 3
    assert site.ticket("VISI-1")["status"] == "resolved"
    assert smtp_sink.messages == [], "no automatic mail to the dead address, engineers told once"
    assert counts(site).to(DANA) == 1  # the acknowledgement that bounced, nothing since

    # Dana writes again from the address: it works again, and she is answered.
    deliver(dovecot, mail_user, write_mail(DANA, VISI, "New mailbox", "My mailbox is back."))
    site.poll()
    assert not undeliverable(site, DANA)
    assert len(mails_to(smtp_sink, DANA)) == 1
    assert counts(site).ledger == 6


def test_a_forged_bounce_silences_no_one(site, dovecot, mail_user, smtp_sink):
    # A report naming Dana, about a mail we never sent, to an address we never mailed.
    forged = "From: visi.support@produsoft.test\nMessage-ID: <guess@mailbot.test>\nSubject: [VISI-1] x"
    deliver(dovecot, mail_user, write_dsn(forged, DANA))
    deliver(dovecot, mail_user, write_mail(DANA, VISI, "Question", "Still there?"))
    site.poll()
    assert not undeliverable(site, DANA)
    assert len(mails_to(smtp_sink, DANA)) == 1


def test_our_own_mail_coming_back_is_recorded_only(site, dovecot, mail_user, smtp_sink):
    deliver(dovecot, mail_user, write_mail(DANA, VISI, "Licence", "Which licence file?"))
    site.poll()
    [ack] = mails_to(smtp_sink, DANA)
    smtp_sink.clear()
    # A forwarding rule sends our acknowledgement back as it was, and once more with our
    # markers stripped and the From rewritten (a relay that "resends"): its Message-ID is ours.
    dovecot.append(mail_user.name, ack.raw)
    markers = rb"(?im)^(X-Mailbot-Loop|Auto-Submitted|X-Auto-Response-Suppress):.*\r?\n"
    stripped = re.sub(markers, b"", ack.raw)
    stripped = re.sub(rb"(?im)^From:.*$", f"From: {DANA}".encode(), stripped, count=1)
    dovecot.append(mail_user.name, stripped)
    site.poll()
    found = counts(site)
    assert found.ledger == 3 and found.reasons["own-loop"] == 2
    assert found.tickets == 1 and smtp_sink.messages == []


# -- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("ack_limit", "acks"), [(None, 3), ("1", 1), ("0", 5)])
def test_acknowledgements_per_sender_and_day_are_limited(
    tmp_path, dovecot, mail_user, smtp_sink, ack_limit, acks
):
    settings = {"ack_limit": ack_limit} if ack_limit is not None else {}
    site = make_site(
        tmp_path, {"VISI": {"address": VISI, "mailbox": mail_user.url()}}, smtp_url=smtp_sink.url, **settings
    )
    site.add_account(DANA, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    for n in range(5):
        deliver(dovecot, mail_user, write_mail(DANA, VISI, f"Separate question {n}", f"Question {n}."))
    site.poll()
    found = counts(site)
    assert found.tickets == 5, "every request is a ticket; only acknowledgements are limited"
    assert len(mails_to(smtp_sink, DANA)) == found.to(DANA) == acks
    assert len(mails_to(smtp_sink, ERIN)) == 5


def test_automatic_mail_to_one_address_stops_at_the_daily_limit_but_engineers_hear_of_everything(
    tmp_path, dovecot, mail_user, smtp_sink
):
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": mail_user.url()}},
        smtp_url=smtp_sink.url,
        ack_limit="0",
        automatic_limit="4",
    )
    site.add_account(DANA, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    for n in range(6):
        deliver(dovecot, mail_user, write_mail(DANA, VISI, f"Request {n}", f"Request {n}."))
    site.poll()
    # The engineer answers the first ticket: a person's reply still goes out.
    deliver(dovecot, mail_user, write_mail(ERIN, VISI, "Re: [VISI-1] Request 0", "Fixed in 2026.4."))
    site.poll()
    assert len(mails_to(smtp_sink, DANA)) == 4 + 1
    assert len(mails_to(smtp_sink, ERIN)) == 6
    assert counts(site).ledger == 7
