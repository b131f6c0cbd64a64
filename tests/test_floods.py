"""Floods, on a real Dovecot and a real SMTP server: a sender that opens ticket after ticket is
folded into its last ticket past the flood limit, and a thousand mails a minute to one address,
from one looping robot or from a thousand people, are all stored, each exactly once, and the
outbox drains with nothing sent twice."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.helpers.bulk import append_many, counts, events_of_kind, messages_on
from tests.helpers.mails import write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
OMAR = "omar@customer.test"
ERIN = "erin@produsoft.test"
ROBOT = "helpdesk@remote.test"
ADMIN = "admin@produsoft.test"
FLOOD = 1000


def open_site(root, mail_user, smtp_sink):
    """VISI, open to anyone."""
    open_visi = {"address": VISI, "mailbox": mail_user.url(), "unknown_senders": "open"}
    return make_site(root, {"VISI": open_visi}, smtp_url=smtp_sink.url)


def mails_to(sink, address: str) -> list:
    return [m for m in sink.messages if address in m.rcpt_tos]


def flood_alerts(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "floods the mailbox" in line]


def drain(site, most: int = 20) -> None:
    """`poll --once` until the outbox holds nothing pending (each pass sends a share)."""
    for _ in range(most):
        if counts(site).pending == 0:
            return
        site.poll()
    raise AssertionError(f"outbox not drained after {most} passes")


def test_a_sender_past_the_flood_limit_is_folded_into_their_last_ticket(
    tmp_path, dovecot, mail_user, smtp_sink
):
    site = make_site(
        tmp_path,
        {"VISI": {"address": VISI, "mailbox": mail_user.url()}},
        smtp_url=smtp_sink.url,
        flood_limit="3",
        ack_limit="0",
        alert_address=ADMIN,
    )
    site.add_account(DANA, "VISI")
    site.add_account(OMAR, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    for n in range(7):
        dovecot.append(mail_user.name, write_mail(DANA, VISI, f"Problem {n}", f"Problem number {n}."))
    dovecot.append(mail_user.name, write_mail(OMAR, VISI, "My own problem", "Unrelated."))
    first = site.poll()
    # Dana answers her first ticket: a reply is never folded.
    dovecot.append(mail_user.name, write_mail(DANA, VISI, "Re: [VISI-1] Problem 0", "More details."))
    second = site.poll()

    found = counts(site)
    assert found.ledger == 9
    assert [t["subject"] for t in reversed(site.tickets())] == [
        "Problem 0",
        "Problem 1",
        "Problem 2",
        "My own problem",
    ]
    assert messages_on(site, "VISI-3", "folded") == 4, "Problems 3 to 6 are kept on Dana's last ticket"
    assert messages_on(site, "VISI-1") == 3  # her mail, our acknowledgement, her reply
    assert found.to(DANA) == 3 and found.to(OMAR) == 1, "folded mail is never acknowledged"
    assert found.outbox["new_ticket"] == 4
    assert len(smtp_sink.messages) == sum(found.outbox.values())
    assert events_of_kind(site, "flood") == [("VISI-3", DANA)]
    assert len(flood_alerts(first.stderr + second.stderr)) == 1, "one alert line, not one per mail"
    assert found.to(ADMIN) == 1 and len(mails_to(smtp_sink, ADMIN)) == 1, "and one alert mail"


def test_a_looping_robot_sending_a_thousand_mails_is_folded_and_answered_three_times(
    tmp_path, dovecot, mail_user, smtp_sink
):
    """A remote help desk that answers each of our mails with a new one, without any automatic
    marker (reliability L7, D1a): a thousand mails in a minute."""
    site = open_site(tmp_path, mail_user, smtp_sink)
    site.add_account(ERIN, "VISI", "engineer")
    append_many(
        dovecot,
        mail_user.name,
        (
            write_mail(
                f"Remote Help Desk <{ROBOT}>",
                VISI,
                f"[#{4000 + n}] Re: We received your request",
                f"Thank you, your request {4000 + n} is being handled.",
            )
            for n in range(FLOOD)
        ),
    )

    result = site.poll()
    drain(site)

    found = counts(site)
    print(f"\nlooping robot: {found.ledger} mails -> {dict(found.outcomes)}, outbox {dict(found.outbox)}")
    assert found.ledger == FLOOD == len(dovecot.uids(mail_user.name))
    assert found.raw_missing == 0
    assert found.tickets == 20, "the default flood limit: 20 tickets in two hours"
    assert messages_on(site, "VISI-20", "folded") == FLOOD - 20
    assert found.to(ROBOT) == 3, "three acknowledgements a day at most"
    assert found.to(ERIN) == 20
    sent = Counter(m.rcpt_tos[0] for m in smtp_sink.messages)
    assert sent == {ROBOT: 3, ERIN: 20}, "each outbox row sent once"
    assert len({m.message["Message-ID"] for m in smtp_sink.messages}) == 23
    assert len(flood_alerts(result.stderr)) == 1
    assert "VISI: 500/1000 mails" in result.stderr


def test_a_thousand_people_writing_at_once_all_get_a_ticket_and_one_acknowledgement(
    tmp_path, dovecot, mail_user, smtp_sink
):
    """A thousand different senders in a minute on a product open to anyone (reliability D1b)."""
    site = open_site(tmp_path, mail_user, smtp_sink)
    senders = [f"user{n}@customer{n % 37}.test" for n in range(FLOOD)]
    append_many(
        dovecot, mail_user.name, (write_mail(s, VISI, f"Question from {s}", "Help, please.") for s in senders)
    )

    site.poll()
    drain(site)

    found = counts(site)
    assert found.ledger == FLOOD and found.outcomes == {"ticket": FLOOD}
    assert found.tickets == FLOOD and found.raw_missing == 0
    sent = Counter(m.rcpt_tos[0] for m in smtp_sink.messages)
    assert sent == Counter(senders), "every sender acknowledged exactly once"
    assert len({m.message["Message-ID"] for m in smtp_sink.messages}) == FLOOD
