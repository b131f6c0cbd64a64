"""What people read: the mails customers, engineers and the developers receive, on Dovecot and
the SMTP sink, counted per person and read as they would read them, in their own language."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from tests.helpers.mails import message_id_of, quote, write_mail
from tests.helpers.site import make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
CUSTOMER = "carla@operator.test"
ENGINEER = "erin@produsoft.test"
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")


class Scene:
    """One product's desk, as its people see it: the mailbox and the SMTP sink, seen from the mail clients."""

    def __init__(self, site, dovecot, user, sink):
        self.site, self.dovecot, self.user, self.sink = site, dovecot, user, sink

    def send(self, sender: str, subject: str, body: str, **headers) -> None:
        self.dovecot.append(self.user.name, write_mail(sender, VISI, subject, body, **headers))
        self.site.poll()

    def inbox(self, address: str) -> list:
        return [m for m in self.sink.messages if address in m.rcpt_tos]

    def only_to(self, address: str):
        mails = self.inbox(address)
        assert len(mails) == 1, [(m.message["Subject"], text_of(m)[:300]) for m in mails]
        return mails[0]

    def reply(self, sender: str, to_mail, body: str) -> None:
        original = text_of(to_mail)
        self.send(
            sender,
            f"Re: {to_mail.message['Subject']}",
            body + "\n\n" + quote(original),
            in_reply_to=message_id_of(to_mail.message),
        )


def text_of(mail) -> str:
    return mail.message.get_body(("plain",)).get_content()


def html_of(mail) -> str:
    return mail.message.get_body(("html",)).get_content()


def from_name(mail) -> str:
    return mail.message["From"].addresses[0].display_name


def make_scene(tmp_path, dovecot, mail_user, smtp_sink, customer_language="en", **product):
    settings = {"address": VISI, "mailbox": mail_user.url(), **product}
    site = make_site(tmp_path, {"VISI": settings}, smtp_url=smtp_sink.url)
    site.add_account(CUSTOMER, "VISI", name="Carla Operator", language=customer_language)
    site.add_account(ENGINEER, "VISI", "engineer", name="Erin Engineer")
    return Scene(site, dovecot, mail_user, smtp_sink)


def open_ticket(scene: Scene):
    """Carla writes in; returns the mail the engineer got, with the sink emptied."""
    scene.send(f"Carla Operator <{CUSTOMER}>", "Licence server down", "The licence server stopped at 9.")
    handed = scene.only_to(ENGINEER)
    scene.sink.clear()
    return handed


@pytest.fixture
def visi(tmp_path, dovecot, mail_user, smtp_sink):
    return make_scene(tmp_path, dovecot, mail_user, smtp_sink)


def customer_copies(scene: Scene) -> list[dict]:
    return [m for m in scene.site.ticket("VISI-1")["messages"] if m["direction"] == "out"]


# --- 1. one engineer mail, one customer mail ---------------------------------------------------


def test_text_status_and_priority_from_one_engineer_mail_reach_the_customer_as_one_mail(visi):
    handed = open_ticket(visi)
    copies_before = len(customer_copies(visi))
    visi.reply(ENGINEER, handed, "#status open\n#priority high\n\nWe are restarting the licence service.")
    mail = visi.only_to(CUSTOMER)
    body = text_of(mail)
    assert "We are restarting the licence service." in body
    assert "Priority: Medium → High" in body and "Status: New → In progress" in body
    assert "Current status: In progress" in body and "Current status: New" not in body
    assert "#status" not in body and "#priority" not in body
    ticket = visi.site.ticket("VISI-1")
    assert (ticket["status"], ticket["priority"]) == ("open", "high")
    assert [(e["kind"], e["new"]) for e in ticket["events"] if e["kind"] in ("status", "priority")] == [
        ("priority", "high"),
        ("status", "open"),
    ]
    [copy] = customer_copies(visi)[copies_before:]
    assert copy["kind"] == "reply" and "We are restarting the licence service." in copy["text"]


def test_info_with_text_and_priority_is_one_request_for_information(visi):
    handed = open_ticket(visi)
    visi.reply(ENGINEER, handed, "#info\n#priority low\n\nWhich version of the licence server runs?")
    mail = visi.only_to(CUSTOMER)
    body = text_of(mail)
    assert "Which version of the licence server runs?" in body and "Priority: Medium → Low" in body
    assert visi.site.ticket("VISI-1")["status"] == "waiting"


def test_commands_without_text_are_one_mail_listing_the_changes(visi):
    handed = open_ticket(visi)
    visi.reply(ENGINEER, handed, "#status resolved\n#priority critical")
    body = text_of(visi.only_to(CUSTOMER))
    assert "Status: New → Resolved" in body and "Priority: Medium → Critical" in body
    assert "#close" in body, "a resolved request tells how to sign off"


def test_a_customers_text_and_priority_reach_the_engineer_as_one_mail(visi):
    open_ticket(visi)
    visi.send(CUSTOMER, "Re: [VISI-1] Licence server down", "#priority critical\n\nNow nobody can work.")
    body = text_of(visi.only_to(ENGINEER))
    assert "Now nobody can work." in body and "Priority: Medium → Critical" in body


# --- 2. no empty brackets after a name -----------------------------------------------------------


def test_a_relayed_reply_shows_no_empty_brackets(tmp_path, dovecot, mail_user, smtp_sink):
    scene = make_scene(tmp_path, dovecot, mail_user, smtp_sink)
    scene.site.add_account("nameless@operator.test", "VISI")
    scene.send("nameless@operator.test", "Printer licence", "Which licence do I need?")
    scene.sink.clear()
    scene.send("nameless@operator.test", "Re: [VISI-1] Printer licence", "For two printers.")
    mail = scene.only_to(ENGINEER)
    assert "()" not in text_of(mail) and "()" not in html_of(mail)
    assert "nameless@operator.test (customer) wrote on VISI-1" in text_of(mail)


# --- 3. command errors in the recipient's language -----------------------------------------------


@pytest.mark.parametrize(
    ("language", "says", "english"),
    [
        ("nl", "alleen het supportteam kan #status gebruiken", "only the support team"),
        ("fr", "seule l'équipe support peut utiliser #status", "only the support team"),
    ],
)
def test_a_refused_command_is_explained_in_the_customers_language(
    tmp_path, dovecot, mail_user, smtp_sink, language, says, english
):
    scene = make_scene(tmp_path, dovecot, mail_user, smtp_sink, customer_language=language)
    open_ticket(scene)
    scene.send(CUSTOMER, "Re: [VISI-1] Licence server down", "#status closed\n#priority high\n#priority low")
    body = text_of(scene.only_to(CUSTOMER))
    assert says in body
    for sentence in (english, "is given twice", "sign off", "change the priority", "Valid commands"):
        assert sentence not in body


# --- 9. a refused command keeps the customer's text ------------------------------------------------


def test_a_customers_text_is_kept_when_their_command_is_refused(visi):
    open_ticket(visi)
    visi.send(CUSTOMER, "Re: [VISI-1] Licence server down", "#status resolved\n\nThe log is attached below.")
    ticket = visi.site.ticket("VISI-1")
    assert ticket["status"] == "new", "the command is refused"
    assert any("The log is attached below." in m["text"] for m in ticket["messages"]), "the text is kept"
    error = text_of(visi.only_to(CUSTOMER))
    assert "only the support team may use #status" in error and "added to the request" in error


# --- 5 and 6. dates as each language writes them; one name for the scene ----------------------------


@pytest.mark.parametrize(
    ("language", "desk_name", "month"),
    [
        (
            "en",
            "VISI Support",
            r"(January|February|March|April|May|June|July|August|September|October"
            r"|November|December) \d+, \d{4}",
        ),
        (
            "nl",
            "Support VISI",
            r"\d+ (januari|februari|maart|april|mei|juni|juli|augustus|september|oktober"
            r"|november|december) \d{4}",
        ),
        (
            "fr",
            "Support VISI",
            r"\d+ (janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre"
            r"|novembre|décembre) \d{4}",
        ),
    ],
)
def test_the_confirmation_writes_dates_and_the_desk_name_in_the_customers_language(
    tmp_path, dovecot, mail_user, smtp_sink, language, desk_name, month
):
    scene = make_scene(
        tmp_path,
        dovecot,
        mail_user,
        smtp_sink,
        customer_language=language,
        hours="24x7",
        timezone="Europe/Brussels",
        first_response="4h",
    )
    scene.send(f"Carla Operator <{CUSTOMER}>", "Licence server down", "The licence server stopped at 9.")
    confirmation = scene.only_to(CUSTOMER)
    body = text_of(confirmation)
    assert re.search(month + r", \d", body), body
    assert re.search(r" (CES?T|[+]0[12]00)\b", body), "with the time zone"
    assert not ISO_DATE.search(body)
    assert from_name(confirmation) == desk_name
    signed = [line for line in body.splitlines() if line.strip() == desk_name]
    assert signed, f"signed {desk_name!r} as the From says"


def test_a_product_named_with_support_keeps_its_name(tmp_path, dovecot, mail_user, smtp_sink):
    scene = make_scene(
        tmp_path, dovecot, mail_user, smtp_sink, customer_language="nl", name="Produsoft Support"
    )
    scene.send(CUSTOMER, "Licence server down", "The licence server stopped at 9.")
    confirmation = scene.only_to(CUSTOMER)
    assert from_name(confirmation) == "Produsoft Support"
    assert "Support Produsoft Support" not in text_of(confirmation)


# --- 4 and 7. the escalation after the daemon was down -----------------------------------------------


def backdate_ticket(scene: Scene, reference: str, by: timedelta) -> None:
    """The ticket arrived `by` ago and nobody ran the clock since: the daemon was down."""
    site = scene.site
    [(created,)] = site.query(f"SELECT created_at FROM ticket WHERE reference = '{reference}'")
    # Stored as naive UTC (mailbot.models.DateTimeField): text on SQLite, a timestamp on PostgreSQL.
    created = created if isinstance(created, datetime) else datetime.fromisoformat(created)
    stamp = (created - by).isoformat(sep=" ")
    site.execute(f"UPDATE ticket SET created_at = '{stamp}' WHERE reference = '{reference}'")
    ticket = f"(SELECT id FROM ticket WHERE reference = '{reference}')"
    site.execute(f"UPDATE event SET at = '{stamp}' WHERE ticket_id = {ticket}")


@pytest.mark.parametrize(
    ("account_language", "expected"),
    [
        (None, "fr"),  # no account: the product's language
        ("nl", "nl"),  # an account: its own language, like every other recipient
    ],
)
def test_a_late_escalation_says_how_late_in_the_developers_language(
    tmp_path, dovecot, mail_user, smtp_sink, account_language, expected
):
    developers = "developers@produsoft.test"
    scene = make_scene(
        tmp_path,
        dovecot,
        mail_user,
        smtp_sink,
        hours="24x7",
        first_response="5m",
        language="fr",
        escalation_address=developers,
    )
    if account_language:
        scene.site.add_account(developers, "VISI", "engineer", name="Dev Team", language=account_language)
    open_ticket(scene)
    backdate_ticket(scene, "VISI-1", timedelta(hours=3, minutes=25))
    scene.site.poll()
    escalation = [m for m in scene.inbox(developers) if "sla" in text_of(m).lower()]
    assert len(escalation) == 1, [text_of(m)[:200] for m in scene.inbox(developers)]
    body = text_of(escalation[0])
    late = {
        "fr": r"dépassée de 3 h 2\d min en heures ouvrées",
        "nl": r"3 u 2\d min geleden verstreken, gerekend in werktijd",
    }[expected]
    assert re.search(late, body), body
    assert "%" not in body, "no share of the target for a clock that caught up late"
    assert "SLA breached" not in body
