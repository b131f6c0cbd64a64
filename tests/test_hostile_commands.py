"""Forged engineers, through a real Dovecot, `poll --once` and a real SMTP server (reliability
S1): with MAILBOT_TRUSTED_AUTHSERV_ID set, a mail from an engineer's address acts on a ticket
only where our own server's Authentication-Results show the sender passed. Anything else (no
header, a fail, a pass written by the sender under another server's name or under ours below
our server's own) is kept as an internal note: no command applied, nothing to the customer, and
the engineer told. Customers' mail is never asked for it."""

from __future__ import annotations

import pytest

from tests.helpers.mails import message_id_of, write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"
OURS = "mx.produsoft.test"
COMMANDS = "#status closed\n#priority critical\n#assign me\n\nPlease send your licence key to key@evil.test."


def arrived(raw: bytes, *results: str) -> bytes:
    """The mail as our server delivers it: its own Authentication-Results on top."""
    return b"".join(f"Authentication-Results: {r}\r\n".encode() for r in results) + raw


@pytest.fixture
def site(tmp_path, dovecot, mail_user, smtp_sink):
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": mail_user.url()}},
        smtp_url=smtp_sink.url,
        trusted_authserv_id=OURS,
    )
    site.add_account(DANA, "VISI", name="Dana Customer")
    site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
    dovecot.append(mail_user.name, write_mail(DANA, VISI, "Licence server down", "Nothing starts."))
    site.poll()
    smtp_sink.wait_for(2)
    return site


def team_mail(sink):
    return next(m for m in sink.messages if m.rcpt_tos == [ERIN])


def with_sender_headers(raw: bytes, *results: str) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    added = b"".join(f"\r\nAuthentication-Results: {r}".encode() for r in results)
    return head + added + b"\r\n\r\n" + body


def test_unverified_engineer_mail_changes_nothing_and_the_engineer_is_told(
    site, dovecot, mail_user, smtp_sink
):
    new_ticket = team_mail(smtp_sink)
    before = site.ticket("VISI-1")
    smtp_sink.clear()
    reply = write_mail(
        f"Erin Engineer <{ERIN}>",
        VISI,
        f"Re: {new_ticket.message['Subject']}",
        COMMANDS,
        in_reply_to=message_id_of(new_ticket.message),
    )
    attempts = [
        reply,  # no header at all
        arrived(reply, f"{OURS}; dmarc=fail header.from=produsoft.test; spf=fail smtp.mailfrom=evil.test"),
        # A pass under another server's name, written by the sender.
        with_sender_headers(reply, "mx.evil.test; dmarc=pass header.from=produsoft.test"),
        # A pass under our name, written by the sender, below our server's own verdict.
        arrived(
            with_sender_headers(reply, f"{OURS}; dmarc=pass header.from=produsoft.test"),
            f"{OURS}; dkim=none; spf=softfail smtp.mailfrom=produsoft.test",
        ),
        # A pass for another domain, and a dkim pass of a subdomain.
        arrived(reply, f"{OURS}; dkim=pass header.d=evil.test; spf=pass smtp.mailfrom=evil.test"),
        arrived(reply, f"{OURS}; dkim=pass header.d=mail.produsoft.test.evil.test"),
    ]
    for raw in attempts:
        dovecot.append(mail_user.name, raw)
    site.poll()

    after = site.ticket("VISI-1")
    for field in ("status", "priority", "assignee", "events"):
        assert after[field] == before[field], f"{field} changed"
    notes = [m for m in after["messages"] if m["direction"] == "in" and m["author"] == ERIN]
    assert len(notes) == len(attempts)
    assert all(m["visibility"] == "internal" for m in notes)
    # Without our server's header at all (the first, and the one with only another server's)
    # the note says so: `mailbot check` counts those.
    kinds = ["unauthenticated", "unverified", "unauthenticated", "unverified", "unverified", "unverified"]
    assert [m["kind"] for m in notes] == kinds
    assert all("#status closed" in m["text"] and "key@evil.test" in m["text"] for m in notes)
    sent = smtp_sink.wait_for(len(attempts))
    assert len(sent) == len(attempts) and all(m.rcpt_tos == [ERIN] for m in sent), "nothing to the customer"
    for mail in sent:
        assert "[VISI-1]" in mail.message["Subject"]
        text = mail.message.get_body(("plain",)).get_content()
        assert "could not verify" in text and "key@evil.test" not in text


def test_verified_engineer_mail_acts_and_customers_need_no_header(site, dovecot, mail_user, smtp_sink):
    new_ticket = team_mail(smtp_sink)
    smtp_sink.clear()
    answer = write_mail(
        f"Erin Engineer <{ERIN}>",
        VISI,
        f"Re: {new_ticket.message['Subject']}",
        "#priority high\n#assign me\n\nRestart the licence service, please.",
        in_reply_to=message_id_of(new_ticket.message),
    )
    # Our server's verdict on top; the forged fail the sender added below it does not count.
    dovecot.append(
        mail_user.name,
        arrived(
            with_sender_headers(answer, f"{OURS}; dmarc=fail"),
            f"{OURS} 1; dkim=pass (good signature) header.d=produsoft.test header.s=s1; "
            "dmarc=pass (p=reject) header.from=produsoft.test",
        ),
    )
    site.poll()
    shown = site.ticket("VISI-1")
    assert (shown["priority"], shown["assignee"], shown["status"]) == ("high", ERIN, "open")
    to_dana = [m for m in smtp_sink.wait_for(1) if m.rcpt_tos == [DANA]]
    assert len(to_dana) == 1, "one mail: the text and the change it made"
    assert "Restart the licence service" in to_dana[0].message.get_body(("plain",)).get_content()

    # The customer's own commands need no Authentication-Results.
    smtp_sink.clear()
    relay = to_dana[0]
    dovecot.append(
        mail_user.name,
        write_mail(
            DANA,
            VISI,
            f"Re: {relay.message['Subject']}",
            "#close\n\nWorks again, thanks.",
            in_reply_to=message_id_of(relay.message),
        ),
    )
    site.poll()
    assert site.ticket("VISI-1")["status"] == "closed"


BORDER = (
    "Received: from mail.evil.test (mail.evil.test [203.0.113.9]) by mx.produsoft.test (Postfix)"
    " with ESMTPS id 4Xy; Mon, 23 Nov 2026 10:00:01 +0000"
)
DELIVERY = (
    "Received: from mx.produsoft.test by imap.produsoft.test (Dovecot) with LMTP id Zq1;"
    " Mon, 23 Nov 2026 10:00:02 +0000"
)


def delivered(raw: bytes, *headers: str) -> bytes:
    """The mail as our servers hand it to the mailbox: `headers` on top, in this order."""
    return b"".join(f"{h}\r\n".encode() for h in headers) + raw


def test_only_our_servers_header_above_the_border_counts_and_check_warns(site, dovecot, mail_user, smtp_sink):
    new_ticket = team_mail(smtp_sink)
    smtp_sink.clear()
    reply = write_mail(
        f"Erin Engineer <{ERIN}>",
        VISI,
        f"Re: {new_ticket.message['Subject']}",
        COMMANDS,
        in_reply_to=message_id_of(new_ticket.message),
    )
    forged = f"Authentication-Results: {OURS}; dmarc=pass header.from=produsoft.test"
    attempts = [
        # Our border wrote none; the sender's copy with our id sits right under its Received line.
        delivered(reply, BORDER, forged),
        # ... or further down, under the sender's own relays.
        delivered(reply, DELIVERY, BORDER, "Received: from pc by mail.evil.test with ESMTP id 1", forged),
    ]
    for raw in attempts:
        dovecot.append(mail_user.name, raw)
    site.poll()
    shown = site.ticket("VISI-1")
    assert (shown["status"], shown["priority"], shown["assignee"]) == ("new", "medium", None)
    sent = smtp_sink.wait_for(len(attempts))
    assert [m.rcpt_tos for m in sent] == [[ERIN]] * len(attempts), "nothing to the customer"
    for mail in sent:
        assert "recorded no sender authentication" in mail.message.get_body(("plain",)).get_content()
    checked = site.mailbot("check")
    warning = f"WARN 2 of the last 2 engineers' mails carried no Authentication-Results of {OURS}"
    assert warning in checked.output

    # Our server's header on top of the border's Received line, under the delivery hop's: it counts.
    smtp_sink.clear()
    good = f"Authentication-Results: {OURS}; dmarc=pass header.from=produsoft.test"
    dovecot.append(
        mail_user.name,
        delivered(
            write_mail(
                ERIN,
                VISI,
                f"Re: {new_ticket.message['Subject']}",
                "#priority high\n\nOn it.",
                in_reply_to=message_id_of(new_ticket.message),
            ),
            DELIVERY,
            good,
            BORDER,
        ),
    )
    site.poll()
    assert site.ticket("VISI-1")["priority"] == "high"
    assert any(m.rcpt_tos == [DANA] for m in smtp_sink.messages)


def test_without_a_trusted_server_named_the_from_address_is_enough(tmp_path, dovecot, mail_user, smtp_sink):
    """The documented choice for sites whose server writes no Authentication-Results."""
    site = make_site(
        tmp_path, {"VISI": {"address": VISI, "mailbox": mail_user.url()}}, smtp_url=smtp_sink.url
    )
    site.add_account(DANA, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    dovecot.append(mail_user.name, write_mail(DANA, VISI, "Licence server down", "Nothing starts."))
    site.poll()
    smtp_sink.wait_for(2)
    new_ticket = team_mail(smtp_sink)
    dovecot.append(
        mail_user.name,
        write_mail(
            ERIN,
            VISI,
            f"Re: {new_ticket.message['Subject']}",
            "#status resolved\n\nFixed.",
            in_reply_to=message_id_of(new_ticket.message),
        ),
    )
    site.poll()
    assert site.ticket("VISI-1")["status"] == "resolved"
