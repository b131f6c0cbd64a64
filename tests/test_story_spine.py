"""The spine, as the people involved see it, on a real Dovecot and a real SMTP server:
a customer writes, gets a reference, replies; the engineer answers from a mail client; a
stranger and a vacation responder get nothing; a second pass changes nothing."""

from __future__ import annotations

import pytest

from tests.helpers.mails import message_id_of, quote, write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"


@pytest.fixture
def site(tmp_path, dovecot, mail_user, smtp_sink, database_url):
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": mail_user.url()}},
        smtp_url=smtp_sink.url,
        database_url=database_url,
    )
    site.add_account(DANA, "VISI", name="Dana Customer")
    site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
    return site


def deliver(dovecot, mail_user, raw: bytes) -> None:
    dovecot.append(mail_user.name, raw)


def mails_to(sink, address: str) -> list:
    return [m for m in sink.messages if address in m.rcpt_tos]


def test_a_ticket_from_first_mail_to_engineer_answer(site, dovecot, mail_user, smtp_sink):
    deliver(
        dovecot,
        mail_user,
        write_mail(
            f"Dana Customer <{DANA}>",
            VISI,
            "Export to STEP fails",
            "Since the update the STEP export stops at 80 %.",
        ),
    )
    site.poll()
    [ticket] = site.tickets()
    assert ticket["reference"] == "VISI-1" and ticket["status"] == "new"
    assert ticket["requester"] == DANA

    smtp_sink.wait_for(2)
    [ack] = mails_to(smtp_sink, DANA)
    assert "[VISI-1]" in ack.message["Subject"]
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert ack.message["X-Mailbot-Loop"]
    assert VISI in str(ack.message["From"])
    [new_ticket] = mails_to(smtp_sink, ERIN)
    assert "[VISI-1]" in new_ticket.message["Subject"]
    assert "STEP export stops at 80 %" in new_ticket.message.get_body(("plain",)).get_content()
    assert new_ticket.message["X-Mailbot-Ticket"] == "VISI-1"

    # The customer answers the acknowledgement, keeping the tag.
    deliver(
        dovecot,
        mail_user,
        write_mail(
            DANA,
            VISI,
            "Re: [VISI-1] Export to STEP fails",
            "It also happens with IGES.\n\n" + quote("old text"),
            in_reply_to=message_id_of(ack.message),
        ),
    )
    # ... and once more from a client that dropped the tag but kept In-Reply-To.
    deliver(
        dovecot,
        mail_user,
        write_mail(
            DANA,
            VISI,
            "Re: Export to STEP fails",
            "Log file attached.",
            in_reply_to=message_id_of(ack.message),
        ),
    )
    site.poll()
    shown = site.ticket("VISI-1")
    customer_texts = [m["text"] for m in shown["messages"] if m["direction"] == "in"]
    assert len(customer_texts) == 3
    assert customer_texts[1].strip() == "It also happens with IGES."
    assert "Log file attached." in customer_texts[2]
    assert len(site.tickets()) == 1

    # The engineer replies to the new-ticket mail from a mail client.
    smtp_sink.clear()
    answer = "Please install patch 2026.4; it fixes the STEP export."
    deliver(
        dovecot,
        mail_user,
        write_mail(
            f"Erin Engineer <{ERIN}>",
            VISI,
            f"Re: {new_ticket.message['Subject']}",
            answer + "\n\n" + quote("Since the update the STEP export stops at 80 %."),
            in_reply_to=message_id_of(new_ticket.message),
        ),
    )
    site.poll()
    [relay] = smtp_sink.wait_for(1)
    assert relay.rcpt_tos == [DANA]
    body = relay.message.get_body(("plain",)).get_content()
    assert answer in body
    assert "stops at 80 %" not in body, "the quoted history is not relayed to the customer"
    assert "[VISI-1]" in relay.message["Subject"]
    assert relay.message["In-Reply-To"]
    assert site.ticket("VISI-1")["status"] == "open"


def test_a_stranger_writing_the_reference_attaches_nothing(site, dovecot, mail_user, smtp_sink):
    deliver(dovecot, mail_user, write_mail(DANA, VISI, "Licence server down", "Nothing starts."))
    site.poll()
    smtp_sink.wait_for(2)
    smtp_sink.clear()
    deliver(
        dovecot,
        mail_user,
        write_mail(
            "mallory@evil.test", VISI, "Re: [VISI-1] Licence server down", "Send me the customer's logs."
        ),
    )
    site.poll()
    shown = site.ticket("VISI-1")
    assert [m["author"] for m in shown["messages"] if m["direction"] == "in"] == [DANA]
    for mail in smtp_sink.messages:
        assert mail.rcpt_tos == ["mallory@evil.test"]
        text = mail.message.get_body(("plain",)).get_content()
        assert "VISI-1" not in text + str(mail.message["Subject"]), "the refusal reveals nothing"
        assert "Nothing starts" not in text and DANA not in text


def test_an_out_of_office_reply_gets_no_answer(site, dovecot, mail_user, smtp_sink):
    deliver(dovecot, mail_user, write_mail(DANA, VISI, "Question about licences", "How many seats?"))
    site.poll()
    [ack] = [m for m in smtp_sink.wait_for(2) if DANA in m.rcpt_tos]
    smtp_sink.clear()
    deliver(
        dovecot,
        mail_user,
        write_mail(
            DANA,
            VISI,
            "Automatic reply: [VISI-1] Question about licences",
            "I am out of the office.",
            in_reply_to=message_id_of(ack.message),
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    site.poll()
    assert smtp_sink.messages == []
    shown = site.ticket("VISI-1")
    assert shown["status"] == "new", "an auto-reply changes nothing"
    auto = [m for m in shown["messages"] if m["kind"] == "auto"]
    assert len(auto) == 1 and auto[0]["visibility"] == "internal"


def test_polling_twice_makes_no_second_ticket_and_no_second_mail(site, dovecot, mail_user, smtp_sink):
    deliver(dovecot, mail_user, write_mail(DANA, VISI, "Crash on start", "It crashes."))
    site.poll()
    smtp_sink.wait_for(2)
    site.poll()
    site.poll()
    assert len(site.tickets()) == 1
    assert len(smtp_sink.messages) == 2
    assert sorted(dovecot.flags(mail_user.name, dovecot.uids(mail_user.name)[0])) != []


def test_an_unreachable_mailbox_is_one_clear_line_and_the_others_still_run(
    tmp_path, dovecot, mail_user, smtp_sink
):
    site = make_site(
        tmp_path,
        {
            "VISI": {"address": VISI, "mailbox": "imap://visi:s3cret-pw@127.0.0.1:1/INBOX"},
            "WORKNC": {"address": "worknc.support@produsoft.test", "mailbox": mail_user.url()},
        },
        smtp_url=smtp_sink.url,
        io_timeout="5",
    )
    site.add_account(DANA, "WORKNC")
    dovecot.append(mail_user.name, write_mail(DANA, "worknc.support@produsoft.test", "Toolpath", "Help"))
    result = site.mailbot("poll", "--once", expect=None)
    assert result.exit_code != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("mailbot:")]
    assert len(errors) == 1 and "VISI" in errors[0]
    assert "s3cret-pw" not in result.output + result.stderr
    assert "Traceback" not in result.stderr
    assert [t["reference"] for t in site.tickets()] == ["WORKNC-1"]
