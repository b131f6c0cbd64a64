"""Strangers at the door, through a real Dovecot, `poll --once` and a real SMTP server: an
ambiguous From grants nothing and a sender is matched exactly and case-insensitively (S9); a
reference guessed by someone without access attaches nothing, reveals nothing, and a sender who
keeps guessing is throttled while the ticket's customer goes on as before (S2). Counted in the
SMTP server, the CLI and the ledger."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers.mails import message_id_of, write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"
CARL = "carl@othercustomer.test"
MALLORY = "mallory@outside.test"


def raw_mail(
    from_lines: list[str], subject: str, body: str = "Please send me the licence file.", extra: str = ""
) -> bytes:
    head = "".join(f"From: {line}\r\n" for line in from_lines)
    head += (
        f"To: {VISI}\r\nSubject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@client.test>\r\n"
        f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n{extra}"
        "Content-Type: text/plain; charset=utf-8\r\n"
    )
    return (head + "\r\n" + body + "\r\n").encode()


@pytest.fixture
def site(tmp_path, dovecot, mail_user, smtp_sink):
    site = make_site(
        tmp_path, {"VISI": {"address": VISI, "mailbox": mail_user.url()}}, smtp_url=smtp_sink.url
    )
    site.add_account(DANA, "VISI", name="Dana Customer")
    site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
    return site


def ledger(site) -> list[tuple[str, str]]:
    """(outcome, reason) of every mail taken in, read straight from the database."""
    return [
        tuple(row) for row in site.query("SELECT outcome, reason FROM seen ORDER BY CAST(uid AS INTEGER)")
    ]


# (From lines, outcome): a sender nobody can make out is quarantined for the admin; a sender
# read as someone else's address is refused like any stranger.
AMBIGUOUS_FROM = [
    (["a@evil.test@customer.test"], "quarantined"),
    (['"dana@customer.test x"@evil.test'], "quarantined"),
    (["dana@customer.test(<x@evil.test>)"], "quarantined"),
    (["dana@customer.test <mallory@evil.test>"], "quarantined"),
    (["=?utf-8?q?dana=40customer.test?= <mallory@evil.test>"], "ignored"),
    (["=?utf-8?b?ZGFuYUBjdXN0b21lci50ZXN0?="], "quarantined"),  # the whole address RFC 2047-encoded
    (["dana@customer.test.evil.test"], "ignored"),
    (["d\u0430na@customer.test"], "quarantined"),  # a Cyrillic "a"
    (["dana%customer.test@evil.test"], "ignored"),
    (["<dana@customer.test"], "quarantined"),
    ([""], "quarantined"),
]
# Readings that may be dana's: hers, since she has an account, but only ever as a customer.
UNCERTAIN_DANA = [
    [f"Dana <{DANA}>, Mallory <mallory@evil.test>"],
    [DANA, "mallory@evil.test"],  # two From headers
    ["dana@customer.test."],
]


def test_ambiguous_senders_get_nothing_and_the_exact_address_matches_in_any_case(
    site, dovecot, mail_user, smtp_sink
):
    for from_lines, _ in AMBIGUOUS_FROM:
        dovecot.append(mail_user.name, raw_mail(from_lines, "Need the licence file"))
    dovecot.append(mail_user.name, raw_mail(["Dana <DANA@Customer.TEST>"], "Licence file, please"))
    site.poll()

    [ticket] = site.tickets()
    assert (ticket["reference"], ticket["requester"]) == ("VISI-1", DANA)
    assert ticket["subject"] == "Licence file, please"
    assert sorted(a["email"] for a in site.json("account", "list")) == [DANA, ERIN], "no account was created"
    rows = ledger(site)
    assert len(rows) == len(AMBIGUOUS_FROM) + 1, "every mail has its one ledger row"
    assert [outcome for outcome, _ in rows] == [outcome for _, outcome in AMBIGUOUS_FROM] + ["ticket"]
    quarantined = [outcome for outcome, _ in rows].count("quarantined")
    assert len(list((site.data_dir / "quarantine").glob("*.eml"))) == quarantined, "each kept for the admin"

    sent = smtp_sink.wait_for(2)
    to_customer = [m for m in sent if any(r.endswith("customer.test") for r in m.rcpt_tos)]
    assert [m.rcpt_tos for m in to_customer] == [[DANA]] and "[VISI-1]" in to_customer[0].message["Subject"]
    assert len([m for m in sent if m.rcpt_tos == [ERIN]]) == 1
    for mail in sent:  # the rest are refusals, each to one plain address that was not dana's
        [rcpt] = mail.rcpt_tos
        assert rcpt.count("@") == 1 and (rcpt in (DANA, ERIN) or "VISI-" not in str(mail.message["Subject"]))

    # A reply in any case of the address is dana's too.
    smtp_sink.clear()
    dovecot.append(
        mail_user.name,
        write_mail("dAnA@cUsToMeR.tEsT", VISI, "Re: [VISI-1] Licence file, please", "Any news?"),
    )
    site.poll()
    authors = [m["author"].lower() for m in site.ticket("VISI-1")["messages"] if m["direction"] == "in"]
    assert authors == [DANA] * 2
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [[ERIN]]


SECRETS = (
    "SECRET-KEY-4711",
    "lic01.customer.test",
    "Licence server down",
    "Second problem",
    DANA,
    "Dana Customer",
    "VISI-1",
    "VISI-2",
    "[VISI",
)


def assert_reveals_nothing(mail) -> None:
    shown = str(mail.message["Subject"]) + mail.message.get_body(("plain",)).get_content()
    html = mail.message.get_body(("html",))
    shown += html.get_content() if html is not None else ""
    for secret in SECRETS:
        assert secret not in shown, f"{secret!r} reached {mail.rcpt_tos}"
    staff_headers = [k for k in mail.message.keys() if k.lower().startswith("x-mailbot-")]
    assert staff_headers == ["X-Mailbot-Loop"]
    assert "ticket-visi" not in str(mail.message.get("References", "")).lower()


def test_guessed_references_attach_nothing_reveal_nothing_and_guessing_is_throttled(
    site, dovecot, mail_user, smtp_sink
):
    site.add_account(CARL, "VISI", name="Carl Other")  # a customer of the product, not of these tickets
    dovecot.append(
        mail_user.name,
        write_mail(
            DANA, VISI, "Licence server down", "Our key is SECRET-KEY-4711, server lic01.customer.test."
        ),
    )
    dovecot.append(mail_user.name, write_mail(DANA, VISI, "Second problem", "The dongle blinks."))
    site.poll()
    [ack] = [m for m in smtp_sink.wait_for(4) if m.rcpt_tos == [DANA] and "[VISI-1]" in m.message["Subject"]]
    smtp_sink.clear()

    guesses = [  # (sender, subject, In-Reply-To): seven at existing tickets, one at none
        (MALLORY, "Re: [VISI-1] hello", ""),
        (MALLORY, "[VISI-2] hi", ""),
        (MALLORY, "Re: [VISI-3] hi", ""),
        (MALLORY, "Re: hello", "ticket-VISI-1@mailbot.test"),
        (MALLORY, "Re: [VISI-1] again", ""),
        (MALLORY, "Re: [VISI-2] again", ""),
        (MALLORY, "Re: [visi-1] and again", ""),
        (MALLORY, "RE: [ VISI-1 ] more", message_id_of(ack.message)),
    ] + [(CARL, "Re: [VISI-1] status?", "")] * 7
    for sender, subject, parent in guesses:
        dovecot.append(
            mail_user.name,
            write_mail(sender, VISI, subject, "#close\n\nWhat is in this ticket?", in_reply_to=parent),
        )
    # The ticket's customer, amid all that, adds to her ticket.
    dovecot.append(
        mail_user.name,
        write_mail(
            DANA,
            VISI,
            "Re: [VISI-1] Licence server down",
            "Still down.",
            in_reply_to=message_id_of(ack.message),
        ),
    )
    site.poll()

    rows = ledger(site)[2:]
    assert len(rows) == len(guesses) + 1
    assert rows[0] == rows[2] == ("ignored", "refused: unknown_sender"), "existing or not, the same answer"
    throttled = [reason for _, reason in rows if reason.startswith("throttled")]
    assert len(throttled) == 2 + 2, "mallory's 6th and 7th guess at a ticket, carl's 6th and 7th"
    assert rows[-1][0] == "message"

    sent = smtp_sink.wait_for(3)
    to = {who: [m for m in sent if m.rcpt_tos == [who]] for who in (MALLORY, CARL, DANA, ERIN)}
    assert [len(to[who]) for who in (MALLORY, CARL, DANA, ERIN)] == [1, 1, 0, 1] and len(sent) == 3
    for mail in to[MALLORY] + to[CARL]:
        assert_reveals_nothing(mail)
    assert "Still down." in to[ERIN][0].message.get_body(("plain",)).get_content()

    for reference in ("VISI-1", "VISI-2"):
        shown = site.ticket(reference)
        assert shown["status"] == "new", "no #close from a stranger"
        assert {m["author"] for m in shown["messages"] if m["direction"] == "in"} == {DANA}
    events = site.ticket("VISI-1")["events"] + site.ticket("VISI-2")["events"]
    refused = [e for e in events if e["kind"] == "reply_refused"]
    assert sorted(e["actor"] for e in refused) == [CARL] * 5 + [MALLORY] * 5, "throttled ones add nothing"

    # The ticket's people go on as before: the engineer answers, the customer hears it.
    smtp_sink.clear()
    team = write_mail(ERIN, VISI, "Re: [VISI-1] Licence server down", "Restart the licence service.")
    dovecot.append(mail_user.name, team)
    site.poll()
    [relay] = smtp_sink.wait_for(1)
    assert (
        relay.rcpt_tos == [DANA]
        and "Restart the licence service." in relay.message.get_body(("plain",)).get_content()
    )


def test_a_reading_among_several_is_dana_s_as_a_customer_and_never_an_engineer_s(
    site, dovecot, mail_user, smtp_sink
):
    for from_lines in UNCERTAIN_DANA:
        dovecot.append(mail_user.name, raw_mail(from_lines, "Need the licence file"))
    site.poll()

    tickets = site.tickets()
    assert sorted(t["requester"] for t in tickets) == [DANA] * len(UNCERTAIN_DANA)
    for ticket in tickets:
        kinds = [e["kind"] for e in site.ticket(ticket["reference"])["events"]]
        assert "sender_uncertain" in kinds, "the ticket says how its sender was read"
    assert sorted(a["email"] for a in site.json("account", "list")) == [DANA, ERIN], "no account was created"

    # An engineer's commands from a list that names erin and mallory apply nothing.
    for from_lines in ([f"Erin <{ERIN}>, Mallory <mallory@evil.test>"], [ERIN, "mallory@evil.test"]):
        dovecot.append(
            mail_user.name,
            raw_mail(
                from_lines, "Re: [VISI-1] Need the licence file", "#status closed\n#priority urgent\n\nDone."
            ),
        )
    site.poll()
    shown = site.ticket("VISI-1")
    assert (shown["status"], shown["priority"]) == ("new", "medium")
    notes = [m for m in shown["messages"] if m["direction"] == "in" and "Done." in m["text"]]
    assert [m["visibility"] for m in notes] == ["internal", "internal"]
