"""A desk for one test, without mail servers: the seeds' products and calendars, a database in
the test's folder, a clock the test moves by hand, and the outbox read back as parsed mail.
Used by the service-level tests (deadlines, jobs, credit, report). `MailDesk` adds mail in and
out through the honest twins (a memory mailbox, a recording transport): the fast tier, tests/fast."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mailbot.config import Settings, load_settings
from mailbot.context import TEMPLATE_DIR, Desk, make_desk
from mailbot.desk import accounts, tickets
from mailbot.outgoing import drafts
from mailbot.outgoing.outbox import drain_outbox
from mailbot.outgoing.render import Renderer
from mailbot.service.poller import PassReport, poll_mailbox
from mailbot.sla.deadlines import refresh_deadlines
from mailbot.sources.memory import MemorySource
from mailbot.store.db import close_database, open_database
from mailbot.store.migrations import migrate
from mailbot.store.models import Account, Outbox, Ticket
from mailbot.transports.recording import RecordingTransport
from tests.helpers.engines import fresh_database_url
from tests.helpers.mails import quote, write_mail

PRODUCTS = {
    # The generic support service: 9:00-18:00 on weekdays, 4/24/48/72 h, answer within an hour.
    "GEN": {
        "ADDRESS": "support@generic.test",
        "NAME": "Generic Support",
        "TIMEZONE": "UTC",
        "HOURS": "mon-fri 09:00-18:00",
        "ESCALATION_ADDRESS": "second-line@generic.test",
    },
    # Produsoft: office hours with a lunch break, Brussels time.
    "VISI": {
        "ADDRESS": "visi.support@produsoft.test",
        "NAME": "VISI Support",
        "TIMEZONE": "Europe/Brussels",
        "HOURS": "mon-thu 08:30-12:30,13:00-17:00; fri 08:30-12:30,13:00-16:00",
    },
    # BAS-IP: 06:00-22:00 GMT on weekdays, first response in 5 minutes, resolution in 5 hours,
    # escalation to the developers.
    "BASIP": {
        "ADDRESS": "support@bas-ip.test",
        "NAME": "BAS-IP Support",
        "TIMEZONE": "UTC",
        "HOURS": "mon-fri 06:00-22:00",
        "FIRST_RESPONSE": "5m",
        "SLA": "critical=5h,high=5h,medium=5h,low=5h",
        "ESCALATION_ADDRESS": "developers@bas-ip.test",
    },
    # Alias: prepaid support packages, 9:00-17:00 Paris time.
    "ALIAS": {
        "ADDRESS": "support@alias.test",
        "NAME": "Alias Support",
        "TIMEZONE": "Europe/Paris",
        "HOURS": "mon-fri 09:00-17:00",
        "CREDIT_LOW": "60",
    },
}


def at(text: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


class Clock:
    """The desk's clock, moved only by the test."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> datetime:
        self.now = moment
        return moment

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def make_settings(data_dir: Path, **overrides: str) -> Settings:
    """Settings for the four seed products; overrides are MAILBOT_PRODUCT_<KEY>_<NAME> keys
    without the MAILBOT_PRODUCT_ prefix, e.g. GEN_REMINDER_DAYS="2"."""
    env = {
        "MAILBOT_DATA_DIR": str(data_dir),
        "MAILBOT_MAIL_DOMAIN": "mailbot.test",
        "MAILBOT_PRODUCTS": ",".join(PRODUCTS),
    }
    for key, values in PRODUCTS.items():
        env.update({f"MAILBOT_PRODUCT_{key}_{name}": value for name, value in values.items()})
    env.update({f"MAILBOT_PRODUCT_{name}": value for name, value in overrides.items()})
    return load_settings(env)


def desk_database_url(root: Path) -> str:
    """The database `open_desk(root, ...)` opens: the test engine's for `root`, by default a
    SQLite file in `root`."""
    return fresh_database_url(root) or f"sqlite:///{root}/mailbot.db"


@contextmanager
def open_desk(root: Path, clock: Clock, url: str | None = None, **overrides: str) -> Iterator[Desk]:
    """A desk on the database in `root` (created or reused: a second desk is a restart), or
    at `url`; on the test's engine (tests/helpers/engines.py) when no url is given."""
    db = open_database(url or desk_database_url(root))
    migrate(db)
    try:
        yield make_desk(make_settings(root / "data", **overrides), clock=clock)
    finally:
        close_database()


def person(email_address: str, product: str, role: str = "customer", **fields: str) -> Account:
    account = accounts.upsert_account(accounts.AccountSpec(email_address, **fields))
    accounts.grant(account, product, role)
    return account


def open_ticket(
    desk: Desk,
    product_key: str,
    requester: Account,
    created: datetime,
    priority: str = "medium",
    subject: str = "Something is wrong",
) -> Ticket:
    """A ticket opened at `created`, with its deadlines, as the ticket domain does it."""
    product = desk.settings.product(product_key)
    ticket = tickets.open_ticket(product.key, product.prefix, requester, subject, created, priority=priority)
    refresh_deadlines(ticket, product, created)
    return ticket


def answer(
    desk: Desk, ticket: Ticket, moment: datetime, status: str = "open", engineer: str = "erin@desk.test"
) -> None:
    """An engineer answers at `moment` (the first response) and sets `status`."""
    tickets.mark_first_response(ticket, moment)
    change_status(desk, ticket, status, moment, engineer)


def change_status(
    desk: Desk, ticket: Ticket, status: str, moment: datetime, actor: str = "erin@desk.test"
) -> None:
    tickets.set_status(ticket, status, actor, moment)
    refresh_deadlines(ticket, desk.settings.product(ticket.product), moment)


@dataclass(frozen=True)
class Sent:
    template: str
    recipient: str
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()


def outbox(template: str | None = None, data_dir: Path = Path("data")) -> list[Sent]:
    """The mails queued so far (oldest first), optionally of one template, as they will be sent:
    a row still holding its draft is rendered from the default templates, as the outbox will,
    enclosing its files from under `data_dir`."""
    query = Outbox.select().order_by(Outbox.id)
    if template is not None:
        query = query.where(Outbox.template == template)
    renderer = Renderer(TEMPLATE_DIR)
    return [
        Sent(
            row.template,
            row.recipient,
            email.message_from_bytes(
                drafts.write_mail(renderer, row, data_dir)[1] if drafts.is_draft(row) else bytes(row.data),
                policy=email.policy.default,
            ),
        )
        for row in query
    ]


# -- a whole desk in one process: mail in through memory, mail out recorded ---------------------

CUTOVER = "2000-01-01T00:00:00+00:00"  # every mail of a test is live mail, whatever the clock says


@dataclass(frozen=True)
class Delivered:
    """One mail the transport was given, parsed, with its envelope."""

    recipients: tuple[str, ...]
    message: EmailMessage
    template: str  # the outbox row's template: ticket_opened, reply, status_changed ...

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()


class MailDesk:
    """The seed products' desk wired as the daemon wires it (source -> poll -> ingest -> outbox ->
    transport), with a `MemorySource` per product, a `RecordingTransport` and the test's clock.
    `send` is a person's mail client: the mail arrives, one poll and one outbox round run."""

    def __init__(self, desk: Desk, clock: Clock):
        self.desk, self.clock = desk, clock
        self.transport = RecordingTransport()
        self.sources = {p.key: MemorySource(f"memory://{p.key}") for p in desk.settings.products}

    def address(self, product: str) -> str:
        return self.desk.settings.product(product).address

    def send(self, sender: str, product: str, subject: str, body: str, **fields: Any) -> PassReport:
        """`sender` writes to `product`'s address (write_mail's keywords: cc, in_reply_to, headers...)."""
        return self.deliver(product, write_mail(sender, self.address(product), subject, body, **fields))

    def deliver(self, product: str, raw: bytes) -> PassReport:
        """Raw bytes into `product`'s mailbox, then a poll and an outbox round."""
        self.sources[product].deliver(raw, self.clock())
        report = poll_mailbox(self.desk, self.desk.settings.product(product), self.sources[product])
        self.drain()
        return report

    def drain(self) -> None:
        drain_outbox(self.desk, self.transport)

    def reply(self, sender: str, product: str, to: Delivered, body: str, **fields: Any) -> PassReport:
        """Answer `to` from a mail client: Re: its subject, In-Reply-To, its text quoted below."""
        return self.send(
            sender,
            product,
            f"Re: {to.subject}",
            f"{body}\n\n{quote(to.text)}",
            in_reply_to=str(to.message["Message-ID"]),
            **fields,
        )

    @property
    def delivered(self) -> list[Delivered]:
        parsed = [email.message_from_bytes(m.data, policy=email.policy.default) for m in self.transport.sent]
        templates = {
            row.message_id: row.template
            for row in Outbox.select(Outbox.message_id, Outbox.template).where(
                Outbox.message_id.in_([str(p["Message-ID"]).strip("<>") for p in parsed])
            )
        }
        return [
            Delivered(m.recipients, p, templates.get(str(p["Message-ID"]).strip("<>"), ""))
            for m, p in zip(self.transport.sent, parsed, strict=True)
        ]

    def inbox(self, address: str) -> list[Delivered]:
        """The mails that reached `address`, oldest first."""
        return [m for m in self.delivered if address.lower() in (r.lower() for r in m.recipients)]

    def last_to(self, address: str) -> Delivered:
        mails = self.inbox(address)
        assert mails, (
            f"no mail reached {address}; sent: {[(m.recipients, m.subject) for m in self.delivered]}"
        )
        return mails[-1]

    def clear(self) -> None:
        self.transport.clear()

    def ticket(self, reference: str) -> Ticket:
        prefix, _, number = reference.rpartition("-")
        product = next(p for p in self.desk.settings.products if p.prefix == prefix)
        found = tickets.find_ticket(product.key, int(number))
        assert found is not None, f"no ticket {reference}"
        return found


@contextmanager
def open_mail_desk(root: Path, clock: Clock, url: str | None = None, **overrides: str) -> Iterator[MailDesk]:
    """A `MailDesk` on the database at `url` (by default the test engine's: SQLite in memory, or
    a fresh PostgreSQL database), files (raw mails, attachments) under `root`.
    `overrides` are settings without the MAILBOT_ prefix (ACK_LIMIT="1", PRODUCT_GEN_NAME=...)."""
    env = {
        "MAILBOT_DATA_DIR": str(root / "data"),
        "MAILBOT_MAIL_DOMAIN": "mailbot.test",
        "MAILBOT_PRODUCTS": ",".join(PRODUCTS),
        "MAILBOT_ACK_CUTOVER": CUTOVER,
    }
    for key, values in PRODUCTS.items():
        env.update({f"MAILBOT_PRODUCT_{key}_{name}": value for name, value in values.items()})
    env.update({f"MAILBOT_{name}": value for name, value in overrides.items()})
    db = open_database(url or fresh_database_url(root) or "sqlite:///:memory:")
    migrate(db)
    try:
        yield MailDesk(make_desk(load_settings(env), clock=clock), clock)
    finally:
        close_database()
