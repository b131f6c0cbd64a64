"""The support workflow by mail, one story per policy in the seeds, on Dovecot and SMTP:
customers and engineers who never leave their mail client."""

from __future__ import annotations

import pytest

from tests.helpers.mails import message_id_of, quote, write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

AIM = "aimticket@aimvalley.test"
CUSTOMER = "carla@operator.test"
BOARD = "bob.board@aimvalley.test"
ENGINEER = "erin@aimvalley.test"


class Desk:
    """One product's desk with its mailbox and the SMTP sink, seen from the mail clients."""

    def __init__(self, site, dovecot, user, sink, address):
        self.site, self.dovecot, self.user, self.sink, self.address = site, dovecot, user, sink, address

    def send(self, sender: str, subject: str, body: str, **headers) -> None:
        self.dovecot.append(self.user.name, write_mail(sender, self.address, subject, body, **headers))
        self.site.poll()

    def inbox(self, address: str) -> list:
        return [m for m in self.sink.messages if address in m.rcpt_tos]

    def last_to(self, address: str):
        mails = self.inbox(address)
        sent = [(m.rcpt_tos, m.message["Subject"]) for m in self.sink.messages]
        assert mails, f"no mail reached {address}; sent: {sent}"
        return mails[-1]

    def reply(self, sender: str, to_mail, body: str) -> None:
        """Answer `to_mail` from a mail client: Re: subject, In-Reply-To, the quoted history."""
        original = to_mail.message.get_body(("plain",)).get_content()
        self.send(
            sender,
            f"Re: {to_mail.message['Subject']}",
            body + "\n\n" + quote(original),
            in_reply_to=message_id_of(to_mail.message),
        )


def text_of(mail) -> str:
    return mail.message.get_body(("plain",)).get_content()


@pytest.fixture
def aim(tmp_path, dovecot, mail_user, smtp_sink):
    site = make_site(
        tmp_path,
        {"AIM": {"address": AIM, "name": "AimTicket", "mailbox": mail_user.url()}},
        smtp_url=smtp_sink.url,
    )
    site.add_account(CUSTOMER, "AIM", name="Carla Operator", language="en")
    site.add_account(BOARD, "AIM", "board", name="Bob Board")
    site.add_account(ENGINEER, "AIM", "engineer", name="Erin Engineer")
    return Desk(site, dovecot, mail_user, smtp_sink, AIM)


def open_ticket(desk: Desk, subject="Alarm storm on node 7", body="Node 7 raises 400 alarms a minute."):
    desk.send(f"Carla Operator <{CUSTOMER}>", subject, body)
    return desk.last_to(BOARD)


def test_the_review_board_triages_and_accepts(aim):
    triage = open_ticket(aim)
    assert "[AIM-1]" in triage.message["Subject"] and triage.message["X-Mailbot-Status"] == "new"
    assert aim.inbox(ENGINEER) == [], "the board triages first; engineers get what is assigned to them"
    aim.sink.clear()
    aim.reply(
        BOARD,
        triage,
        f"#assign {ENGINEER}\n#priority high\n#status open\n#category bug\n\nAccepted; Erin takes this one.",
    )
    ticket = aim.site.ticket("AIM-1")
    assert (ticket["status"], ticket["priority"], ticket["category"], ticket["assignee"]) == (
        "open",
        "high",
        "bug",
        ENGINEER,
    )
    customer_mails = aim.inbox(CUSTOMER)
    bodies = "\n".join(text_of(m) for m in customer_mails)
    assert "Accepted; Erin takes this one." in bodies
    assert "#assign" not in bodies and "#priority" not in bodies, "command lines never reach the customer"
    assert any("High" in text_of(m) and "Medium" in text_of(m) for m in customer_mails), (
        "priority change: old and new"
    )
    [handed_over] = aim.inbox(ENGINEER)
    assert "[AIM-1]" in handed_over.message["Subject"]
    assert "400 alarms a minute" in text_of(handed_over)
    kinds = [e["kind"] for e in ticket["events"]]
    assert {"assignee", "priority", "status", "category"} <= set(kinds)
    assert all(e["actor"] == BOARD for e in ticket["events"] if e["kind"] != "created")


def test_the_engineer_asks_for_information_and_the_answer_reopens_the_work(aim):
    triage = open_ticket(aim)
    aim.sink.clear()
    aim.reply(ENGINEER, triage, "#info\n\nWhich firmware version runs on node 7?")
    assert aim.site.ticket("AIM-1")["status"] == "waiting"
    question = aim.last_to(CUSTOMER)
    assert "Which firmware version runs on node 7?" in text_of(question)
    assert "[AIM-1]" in question.message["Subject"]
    aim.sink.clear()
    aim.reply(CUSTOMER, question, "Firmware 4.2.1.")
    ticket = aim.site.ticket("AIM-1")
    assert ticket["status"] == "open"
    assert [e["new"] for e in ticket["events"] if e["kind"] == "status"] == ["waiting", "open"]
    assert "Firmware 4.2.1." in text_of(aim.last_to(BOARD))


def test_the_customer_signs_off_with_close(aim):
    triage = open_ticket(aim)
    aim.reply(ENGINEER, triage, "#status resolved\n\nFixed in release 7.3.")
    resolved = aim.last_to(CUSTOMER)
    aim.sink.clear()
    aim.reply(CUSTOMER, resolved, "#close\n\nThanks, works now.")
    ticket = aim.site.ticket("AIM-1")
    assert ticket["status"] == "closed" and ticket["closed_at"]
    confirmation = aim.last_to(CUSTOMER)
    assert "[AIM-1]" in confirmation.message["Subject"]
    assert "closed" in text_of(confirmation).lower()


def test_a_reply_to_a_resolved_ticket_reopens_it_and_to_a_closed_one_opens_a_linked_ticket(aim):
    triage = open_ticket(aim)
    aim.reply(ENGINEER, triage, "#status resolved\n\nFixed.")
    resolved = aim.last_to(CUSTOMER)
    aim.reply(CUSTOMER, resolved, "Sorry, it is back.")
    assert aim.site.ticket("AIM-1")["status"] == "open"
    aim.reply(ENGINEER, triage, "#status closed\n\nClosing.")
    closed = aim.last_to(CUSTOMER)
    aim.reply(CUSTOMER, closed, "It happened again today.")
    assert aim.site.ticket("AIM-1")["status"] == "closed"
    follow_up = aim.site.ticket("AIM-2")
    assert follow_up["linked_to"] == "AIM-1" and follow_up["requester"] == CUSTOMER


def test_an_internal_note_never_reaches_the_customer(aim):
    triage = open_ticket(aim)
    aim.sink.clear()
    aim.reply(ENGINEER, triage, "#internal\n\nCustomer runs an unsupported kernel, keep in mind.")
    assert aim.inbox(CUSTOMER) == []
    assert "unsupported kernel" in text_of(aim.last_to(BOARD))
    [note] = [m for m in aim.site.ticket("AIM-1")["messages"] if m["author"] == ENGINEER]
    assert note["visibility"] == "internal"


def test_a_customer_using_an_engineers_command_is_refused_and_nothing_changes(aim):
    open_ticket(aim)
    ack = aim.last_to(CUSTOMER)
    before = aim.site.ticket("AIM-1")
    aim.sink.clear()
    aim.reply(CUSTOMER, ack, "#status resolved\n#priority critical\n\nPlease hurry.")
    after = aim.site.ticket("AIM-1")
    assert (after["status"], after["priority"]) == (before["status"], before["priority"])
    assert after["events"] == before["events"]
    [kept] = after["messages"][len(before["messages"]) :]
    assert "Please hurry." in kept["text"], "the commands are refused, the text is kept"
    error = aim.last_to(CUSTOMER)
    body = text_of(error)
    assert "#status" in body and "#close" in body, "says what is wrong and lists what is valid"
    assert aim.inbox(BOARD) == []


def test_commands_in_quoted_history_are_never_obeyed(aim):
    triage = open_ticket(aim, body="#status closed\nplease look at this")
    assert aim.site.ticket("AIM-1")["status"] == "new"
    aim.reply(CUSTOMER, aim.last_to(CUSTOMER), "More details: node 8 too.\n\n> #close\n> #priority critical")
    ticket = aim.site.ticket("AIM-1")
    assert (ticket["status"], ticket["priority"]) == ("new", "medium")
    assert triage is not None


def test_cc_with_access_become_watchers_and_are_kept_informed(aim):
    colleague = "chris@operator.test"
    aim.site.add_account(colleague, "AIM", name="Chris Colleague")
    aim.dovecot.append(
        aim.user.name,
        write_mail(
            CUSTOMER, AIM, "Backup fails", "Nightly backup fails.", cc=f"{colleague}, outsider@elsewhere.test"
        ),
    )
    aim.site.poll()
    ticket = aim.site.ticket("AIM-1")
    assert ticket["watchers"] == [colleague]
    aim.reply(ENGINEER, aim.last_to(BOARD), "Please check the disk space.")
    assert "Please check the disk space." in text_of(aim.last_to(colleague))
    assert aim.inbox("outsider@elsewhere.test") == []


def test_priority_and_category_from_the_first_mail(aim):
    aim.send(CUSTOMER, "[critical][bug] Node crashes on boot", "Boot loop since 06:00.")
    ticket = aim.site.ticket("AIM-1")
    assert (ticket["priority"], ticket["category"], ticket["subject"]) == (
        "critical",
        "bug",
        "Node crashes on boot",
    )
    aim.send(CUSTOMER, "Licence question", "Priority: low\nHow many seats do we have?")
    assert aim.site.ticket("AIM-2")["priority"] == "low"


@pytest.fixture
def produsoft(tmp_path, dovecot, mail_user, smtp_sink):
    site = make_site(
        tmp_path,
        {
            "VISI": {
                "address": "visi.support@produsoft.test",
                "mailbox": mail_user.url(),
                "language": "nl",
                "contract_required": "true",
                "contract_policy": "refuse",
                "timezone": "Europe/Brussels",
                "hours": "mon-thu 08:30-12:30,13:00-17:00; fri 08:30-12:30,13:00-16:00",
            }
        },
        smtp_url=smtp_sink.url,
    )
    site.add_account("jan@klant.test", "VISI", name="Jan Klant", language="nl", contract_until="2020-12-31")
    site.add_account("piet@klant.test", "VISI", name="Piet Klant", language="nl", contract_until="2099-12-31")
    site.add_account("eva@produsoft.test", "VISI", "engineer", name="Eva", language="nl")
    return Desk(site, dovecot, mail_user, smtp_sink, "visi.support@produsoft.test")


def test_a_produsoft_customer_without_a_valid_contract_is_refused_in_dutch(produsoft):
    produsoft.send("jan@klant.test", "Postprocessor geeft fout", "De postprocessor stopt.")
    assert produsoft.site.tickets() == []
    refusal = produsoft.last_to("jan@klant.test")
    assert "onderhoudscontract" in text_of(refusal)
    produsoft.send("piet@klant.test", "Postprocessor geeft fout", "De postprocessor stopt.")
    [ticket] = produsoft.site.tickets()
    assert ticket["requester"] == "piet@klant.test"
    assert "VISI-1" in produsoft.last_to("piet@klant.test").message["Subject"]


def test_with_the_flag_policy_an_expired_contract_opens_a_flagged_ticket(produsoft):
    produsoft.site.env["MAILBOT_PRODUCT_VISI_CONTRACT_POLICY"] = "flag"
    produsoft.send("jan@klant.test", "Postprocessor geeft fout", "De postprocessor stopt.")
    [ticket] = produsoft.site.tickets()
    assert ticket["flags"] == ["contract_expired"]
    assert "contract" in text_of(produsoft.last_to("eva@produsoft.test")).lower()


def test_a_priority_raised_by_the_engineer_reaches_the_customer_in_their_language(
    tmp_path, dovecot, mail_user, smtp_sink
):
    site = make_site(
        tmp_path,
        {"ALIAS": {"address": "support@alias.test", "mailbox": mail_user.url()}},
        smtp_url=smtp_sink.url,
    )
    site.add_account("luc@client.test", "ALIAS", name="Luc Client", language="fr")
    site.add_account("sam@alias.test", "ALIAS", "engineer", name="Sam", language="en")
    desk = Desk(site, dovecot, mail_user, smtp_sink, "support@alias.test")
    desk.send("luc@client.test", "Licence bloquée", "Le logiciel ne démarre plus.")
    ack = desk.last_to("luc@client.test")
    assert "ALIAS-1" in ack.message["Subject"]
    desk.reply("sam@alias.test", desk.last_to("sam@alias.test"), "#priority high")
    notice = desk.last_to("luc@client.test")
    body = text_of(notice)
    assert "Haute" in body and "Moyenne" in body, body
    assert site.ticket("ALIAS-1")["priority"] == "high"
