"""Machines that do not say they are machines, on a real Dovecot and a real SMTP server: a virus
gateway's report, a corporate gateway's plain-text reports in English and French and a list's
moderation notice carry no DSN and no Auto-Submitted, yet none opens a ticket or is answered, and
the ledger names the detector that recognised each. A person who forwards a bounce, or mentions
a failed delivery in passing, is a person: their mail opens a ticket."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.bulk import counts, ledger_by_message_id
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

FIXTURES = Path(__file__).parent / "fixtures" / "machines"
VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"

MACHINES = {
    # fixture: the ledger reason, which names the detector
    "ndr_virus_gateway.eml": "bounce: original mail unknown (mailbot: return-path rule)",
    "ndr_gateway_en.eml": "bounce: original mail unknown (mailbot: text rule)",
    "ndr_gateway_fr.eml": "bounce: original mail unknown (mailbot: text rule)",
    "moderation_notice.eml": "automatic: moderation-notice",
}
PEOPLE = ("forwarded_bounce_by_person.eml", "mentions_undelivered.eml")


@pytest.fixture
def site(tmp_path, mail_user, smtp_sink):
    """VISI open to anyone, so that a machine taken for a person would get a ticket and an
    answer."""
    visi = {"address": VISI, "mailbox": mail_user.url(), "unknown_senders": "open"}
    site = make_site(tmp_path, {"VISI": visi}, smtp_url=smtp_sink.url)
    site.add_account(DANA, "VISI", name="Dana Customer")
    site.add_account(ERIN, "VISI", "engineer", name="Erin Engineer")
    return site


def deliver(dovecot, mail_user, name: str) -> str:
    raw = (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    dovecot.append(mail_user.name, raw)
    return re.search(rb"^Message-ID:\s*<([^>]+)>", raw, re.MULTILINE | re.IGNORECASE).group(1).decode()


def test_reports_and_notices_without_machine_headers_open_nothing_and_get_no_answer(
    site, dovecot, mail_user, smtp_sink
):
    machines = {deliver(dovecot, mail_user, name): (name, reason) for name, reason in MACHINES.items()}
    people = {deliver(dovecot, mail_user, name): name for name in PEOPLE}

    site.poll()

    ledger = ledger_by_message_id(site)
    assert len(ledger) == len(machines) + len(people) == len(dovecot.uids(mail_user.name))
    wrong = [
        (name, ledger[mid].outcome, ledger[mid].reason)
        for mid, (name, reason) in machines.items()
        if (ledger[mid].outcome, ledger[mid].reason) != ("ignored", reason)
    ]
    assert wrong == []
    assert {people[mid]: ledger[mid].outcome for mid in people} == dict.fromkeys(PEOPLE, "ticket")
    found = counts(site)
    assert found.tickets == len(people)
    # Only the person (acknowledged) and the engineer (told of the new tickets) get mail: not one
    # mail goes to a gateway, a list or anyone the reports name.
    assert {m.rcpt_tos[0] for m in smtp_sink.messages} == {DANA, ERIN}
    assert sum(DANA in m.rcpt_tos for m in smtp_sink.messages) == len(people)
    accounts = [a["email"] for a in site.json("account", "list")]
    assert accounts == sorted([DANA, ERIN]), "no account for a gateway or a list"
