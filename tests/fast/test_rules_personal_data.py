"""What the desk keeps of people, and for how long: raw mails and attachments of tickets closed
longer ago than `MAILBOT_RETENTION_RAW` are deleted by the daily jobs (the texts and the tickets
stay), nothing goes without the setting, and a forgotten person's texts, files and address are
gone while other people's tickets are as they were."""

from __future__ import annotations

from pathlib import Path

from mailbot.desk import tickets
from mailbot.desk.jobs import run_due_jobs
from mailbot.desk.personal import forget
from mailbot.service.poller import poll_mailbox
from mailbot.store.models import Account, Attachment, Event, Message, Outbox, OutboxStatus, Seen, Ticket
from tests.fast.people import CARLA, CHRIS, ERIN, open_ticket
from tests.helpers.desks import MailDesk
from tests.helpers.mails import write_mail

LOG = b"error 42 at boot\n" * 10


def files_of(desk: MailDesk, reference: str) -> list[Path]:
    """The raw mails and attachment files the ticket's rows name and that are on disk."""
    ticket = desk.ticket(reference)
    store = desk.desk.store
    paths = [store.raw_file(m.raw_path) for m in ticket.messages]
    paths += [store.attachment_file(a.stored_path) for m in ticket.messages for a in m.attachments]
    return [p for p in paths if p is not None and p.is_file()]


def two_tickets(desk: MailDesk) -> tuple[str, str]:
    """Carla's ticket (with a log file, answered by Erin, then closed) and Chris's, left open."""
    notice = open_ticket(desk)
    desk.reply(f"Erin Engineer <{ERIN}>", "GEN", notice, "Restart it, Carla Customer.")
    desk.send(
        CARLA, "GEN", f"Re: {notice.subject}", "Log attached.", attachments=[("boot.log", LOG, "text/plain")]
    )
    desk.send(CHRIS, "GEN", "Scanner jams", "Every page.")
    carla, chris = (t.reference for t in Ticket.select().order_by(Ticket.id))
    tickets.set_status(desk.ticket(carla), "closed", ERIN, desk.clock())
    return carla, chris


def test_raw_mails_and_attachments_of_a_ticket_closed_400_days_ago_are_deleted(make_desk):
    desk = make_desk(RETENTION_RAW="400d")
    carla, chris = two_tickets(desk)
    kept = files_of(desk, carla)
    assert len(kept) == 4  # three raw mails and the log file

    desk.clock.advance(days=399)
    run_due_jobs(desk.desk)
    assert files_of(desk, carla) == kept

    desk.clock.advance(days=2)
    assert run_due_jobs(desk.desk)["raw-retention"] == 1
    assert files_of(desk, carla) == []
    assert not any(p.exists() for p in kept)
    assert len(files_of(desk, chris)) == 1  # open: kept
    # The ticket, its texts and the attachment's name stay; the ledger still knows every mail.
    ticket = desk.ticket(carla)
    assert [m.text.strip()[:13] for m in ticket.messages if m.direction == "in"][-1] == "Log attached."
    assert [a.filename for a in Attachment.select()] == ["boot.log"]
    assert Seen.select().count() == 4
    assert run_due_jobs(desk.desk)["raw-retention"] == 0  # nothing left to do


def test_without_a_retention_everything_is_kept(make_desk):
    desk = make_desk()
    carla, _ = two_tickets(desk)
    kept = files_of(desk, carla)
    desk.clock.advance(days=3650)
    assert run_due_jobs(desk.desk)["raw-retention"] == 0
    assert files_of(desk, carla) == kept


def test_a_forgotten_customer_leaves_no_text_file_or_address_and_others_keep_theirs(desk: MailDesk):
    carla, chris = two_tickets(desk)
    hers = files_of(desk, carla)
    his = [(m.text, m.author_email) for m in desk.ticket(chris).messages]

    forget(desk.desk, CARLA)

    assert not any(p.exists() for p in hers)
    ticket = desk.ticket(carla)
    assert ticket.subject == "(erased)"
    assert ticket.requester.email.endswith("@forgotten.invalid") and ticket.requester.name == ""
    for message in ticket.messages:
        assert "carla" not in f"{message.text}{message.author_email}{message.subject}".lower()
    assert "Restart it, (forgotten)." in [m.text.strip() for m in ticket.messages]
    assert Attachment.select().count() == 0
    assert not Account.select().where(Account.email == CARLA).exists()
    assert [e.kind for e in Event.select().where(Event.kind == "forgotten")] == ["forgotten"]
    assert [(m.text, m.author_email) for m in desk.ticket(chris).messages] == his
    assert len(files_of(desk, chris)) == 1
    assert Message.select().where(Message.text.contains("carla")).count() == 0


def test_a_forgotten_customers_mail_delivered_again_creates_nobody(desk: MailDesk):
    raw = write_mail(f"Carla Customer <{CARLA}>", "support@generic.test", "Printer on fire", "It burns.")
    desk.deliver("GEN", raw)
    forget(desk.desk, CARLA)
    desk.clear()
    report = desk.deliver("GEN", raw)
    assert dict(report.outcomes) == {"ignored": 1}
    assert not Account.select().where(Account.email == CARLA).exists()
    assert desk.inbox(CARLA) == []
    assert all(b"carla" not in p.read_bytes().lower() for p in desk.desk.store.raw_dir.rglob("*.eml"))


def test_mail_not_yet_sent_to_a_forgotten_customer_is_dropped_and_mail_about_them_names_nobody(
    desk: MailDesk,
):
    raw = write_mail(f"Carla Customer <{CARLA}>", "support@generic.test", "Printer on fire", "It burns.")
    desk.sources["GEN"].deliver(raw, desk.clock())
    poll_mailbox(desk.desk, desk.desk.settings.product("GEN"), desk.sources["GEN"])  # not sent yet
    forget(desk.desk, CARLA)
    desk.drain()
    assert desk.inbox(CARLA) == []
    assert Outbox.select().where(Outbox.status != OutboxStatus.SENT).count() == 0
    [notice] = desk.inbox(ERIN)
    assert "carla" not in notice.message.as_string().lower()
