"""The Peewee models: mailbot's whole state.

`schema.sql` is the schema of record and must match these models (a test compares them); a change
here needs a migration in `mailbot.store.migrations`. Models hold data only: the rules that change them
live in the domain modules (`accounts`, `tickets`, `inbound`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from peewee import (
    AutoField,
    BlobField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    ModelSelect,
    TextField,
)
from peewee import DateTimeField as _PlainDateTimeField

from mailbot.store.fields import EnumField
from mailbot.vocabulary import (
    GRANT_ROLES,
    Category,
    Flag,
    Language,
    OutboxState,
    Outcome,
    Priority,
    Role,
    Status,
)


class _DatabaseProxy(DatabaseProxy):
    def savepoint(self):  # type: ignore[no-untyped-def]
        """The connected database's own savepoints (peewee's proxy makes plain ones), so that
        `mailbot.store.db` decides how a savepoint rolls back."""
        return self.obj.savepoint()


database = _DatabaseProxy()


def utcnow() -> datetime:
    return datetime.now(UTC)


class DateTimeField(_PlainDateTimeField):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC text, which SQLite sorts
    and compares correctly (peewee cannot read back text with an offset)."""

    def db_value(self, value):  # type: ignore[no-untyped-def]
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value):  # type: ignore[no-untyped-def]
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class BaseModel(Model):
    # For the type checker only (annotations make no fields): the key peewee adds to every model
    # but ProductCounter and MailboxState, each foreign key's `<name>_id`, and the backrefs used.
    id: AutoField[int]

    class Meta:
        database = database
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = IntegerField()
    applied_at = DateTimeField(default=utcnow)


class ProductCounter(BaseModel):
    """The last ticket number used per product, so references count per product."""

    product = CharField(primary_key=True)
    last_number = IntegerField(default=0)


class Account(BaseModel):
    email = CharField(unique=True)  # stored lower-cased: matched exactly, case-insensitively
    name = CharField(default="")
    organisation = CharField(default="")
    language = EnumField(Language, default=Language.EN)
    notify = CharField(default="all")  # "all", "none" or a comma list of template names
    contract_until = DateField(null=True)
    credit_minutes = IntegerField(default=0)
    credit_expires = DateField(null=True)
    undeliverable_since = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    grants: ModelSelect[Grant]


class Grant(BaseModel):
    account = ForeignKeyField(Account, backref="grants", on_delete="CASCADE")
    product = CharField()
    role = EnumField(Role, allowed=GRANT_ROLES)

    class Meta:
        indexes = ((("account", "product"), True),)


class Ticket(BaseModel):
    product = CharField()
    number = IntegerField()
    reference = CharField(unique=True)
    subject = TextField()
    requester = ForeignKeyField(Account, backref="tickets")
    category = EnumField(Category, default=Category.QUESTION)
    priority = EnumField(Priority, default=Priority.MEDIUM)
    status = EnumField(Status, default=Status.NEW)
    assignee = ForeignKeyField(Account, null=True, backref="assigned")
    linked_to = ForeignKeyField("self", null=True, backref="follow_ups")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    first_response_at = DateTimeField(null=True)
    resolved_at = DateTimeField(null=True)
    closed_at = DateTimeField(null=True)
    waiting_since = DateTimeField(null=True)
    due_first_response = DateTimeField(null=True)
    due_resolution = DateTimeField(null=True)
    time_spent = IntegerField(default=0)  # minutes, in started 15-minute blocks
    requester_id: int
    assignee_id: int | None
    linked_to_id: int | None
    messages: ModelSelect[Message]
    events: ModelSelect[Event]
    flag_rows: ModelSelect[TicketFlag]

    class Meta:
        indexes = ((("product", "number"), True), (("product", "status"), False))


class TicketFlag(BaseModel):
    """A mark on a ticket (`mailbot.vocabulary.Flag`), one row per ticket and flag."""

    ticket = ForeignKeyField(Ticket, backref="flag_rows", on_delete="CASCADE")
    flag = EnumField(Flag)
    ticket_id: int

    class Meta:
        indexes = ((("ticket", "flag"), True),)


class Watcher(BaseModel):
    ticket = ForeignKeyField(Ticket, backref="watchers", on_delete="CASCADE")
    account = ForeignKeyField(Account, backref="watching")

    class Meta:
        indexes = ((("ticket", "account"), True),)


class Seen(BaseModel):
    """The ledger: one row per mail taken from a mailbox, written in the same transaction as what
    the mail caused. Its key (mailbox, uidvalidity, uid) makes a second look a no-op."""

    mailbox = CharField()
    uidvalidity = IntegerField()
    uid = CharField()
    product = CharField()
    message_id = CharField(index=True)
    sha256 = CharField()
    outcome = EnumField(Outcome)
    reason = CharField(default="")
    ticket = ForeignKeyField(Ticket, null=True, backref="ledger")
    raw_path = CharField(default="")
    received_at = DateTimeField(default=utcnow)
    ticket_id: int | None

    class Meta:
        indexes = ((("mailbox", "uidvalidity", "uid"), True), (("product", "sha256"), False))


class Message(BaseModel):
    ticket = ForeignKeyField(Ticket, backref="messages", on_delete="CASCADE")
    direction = CharField()  # in, out
    message_id = CharField(index=True)
    author = ForeignKeyField(Account, null=True, backref="messages")
    author_email = CharField(default="")
    visibility = CharField(default="public")  # public, internal
    kind = CharField(default="mail")  # mail, note, auto, bounce, notification
    subject = TextField(default="")
    text = TextField(default="")
    html = TextField(default="")
    raw_path = CharField(default="")
    created_at = DateTimeField(default=utcnow)
    author_id: int | None
    attachments: ModelSelect[Attachment]
    # Not a column: the files stored with a message just added (`mailbot.desk.tickets.add_message`),
    # so that the mail it causes encloses them without reading them back.
    added_files: list[Attachment]


class Attachment(BaseModel):
    message = ForeignKeyField(Message, backref="attachments", on_delete="CASCADE")
    filename = CharField()  # the sender's name made safe; never used as a path
    content_type = CharField()
    size = IntegerField()
    sha256 = CharField()
    stored_path = CharField()  # generated, inside the data folder
    content_id = CharField(default="")  # as the sender wrote it, without brackets
    inline = BooleanField(default=False)  # shown in the HTML (by its Content-ID), not a file


class Event(BaseModel):
    ticket = ForeignKeyField(Ticket, backref="events", on_delete="CASCADE")
    kind = CharField()  # created, status, priority, assignee, category, time, watcher, ...
    actor_email = CharField(default="")
    old = CharField(default="")
    new = CharField(default="")
    detail = TextField(default="")
    at = DateTimeField(default=utcnow)


class TicketLink(BaseModel):
    """Two tickets of one product that belong together, with why: `related` (an engineer's
    `#link`), `mention` (a new mail named the earlier reference) or `merged` (`#merge`: the
    ticket's messages moved into `other`, and mail about the ticket threads to `other`)."""

    ticket = ForeignKeyField(Ticket, backref="links_out", on_delete="CASCADE")
    other = ForeignKeyField(Ticket, backref="links_in", on_delete="CASCADE")
    kind = CharField()  # related, mention, merged
    actor_email = CharField(default="")
    at = DateTimeField(default=utcnow)
    ticket_id: int
    other_id: int

    class Meta:
        indexes = ((("ticket", "other"), True),)


OutboxStatus = OutboxState  # its name before `mailbot.vocabulary`


class Outbox(BaseModel):
    """One mail to one recipient, written in the transaction of the change that causes it.

    What to say is kept as a draft (`template`, `language`, `context` and `headers` as JSON) and
    rendered when the row is sent, enclosing the stored files `attachments` names (read from disk
    then: `mailbot.outgoing.enclosures`); `data` holds the mail's bytes from then on (and from the
    start for alerts, and rows queued before drafts existed). `claimed_by`/`claimed_until`: the
    process sending the row right now, so that no other one sends it too."""

    message_id = CharField(unique=True)
    ticket = ForeignKeyField(Ticket, null=True, backref="outbox")
    product = CharField()
    template = CharField()  # a vocabulary.Template, or "alert-<kind>" (`mailbot.outgoing.alerts`)
    recipient = CharField(index=True)
    envelope_from = CharField()
    data = BlobField(default=b"")
    automatic = BooleanField(default=True)
    status = EnumField(OutboxState, default=OutboxState.PENDING, index=True)
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(default=utcnow)
    last_error = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    language = CharField(default="")
    context = TextField(default="")
    headers = TextField(default="")
    claimed_by = CharField(default="")
    claimed_until = DateTimeField(null=True)
    attachments = TextField(default="")  # JSON list of Attachment ids to enclose when sent
    ticket_id: int | None


class MailboxState(BaseModel):
    mailbox = CharField(primary_key=True)
    uidvalidity = IntegerField(default=0)
    last_uid = IntegerField(default=0)
    updated_at = DateTimeField(default=utcnow)


class MailboxHealth(BaseModel):
    """What the last passes over a product's mailbox found, for `mailbot status`, the metrics and
    the health alerts: one row per product, written once per pass (not per mail) and on each
    failed connection."""

    product = CharField(primary_key=True)
    mailbox = CharField(default="")  # the source's name: never its password
    first_pass_at = DateTimeField(null=True)  # the silence alert counts from here until a mail came
    last_pass_at = DateTimeField(null=True)  # the last pass that read the mailbox
    last_mail_at = DateTimeField(null=True)  # the last pass that took new mail
    pass_seconds = FloatField(default=0.0)
    backlog = IntegerField(default=0)  # mails left on the server after the last pass
    failing_since = DateTimeField(null=True)  # None: reachable at the last try
    last_error = TextField(default="")
    last_error_at = DateTimeField(null=True)


class MailboxLease(BaseModel):
    """Which daemon works a product's mailbox when several share a server database: the holder
    (`host:pid:nonce`) renews `expires_at` while it works; another daemon takes the row over
    once it has expired (its holder was killed or cut off). Unused on SQLite, where one daemon
    runs per database."""

    product = CharField(primary_key=True)
    holder = CharField()
    expires_at = DateTimeField()
    renewed_at = DateTimeField(default=utcnow)


class Alarm(BaseModel):
    """A health alert that is raised and not yet recovered (`mailbot.service.health`): its row
    makes the alert mail go out once, and the recovery mail once when the row is removed."""

    key = CharField(primary_key=True)  # e.g. "unreachable:VISI", "silence:VISI", "outbox"
    summary = TextField(default="")
    raised_at = DateTimeField(default=utcnow)


class Organisation(BaseModel):
    """A customer organisation that holds prepaid support credit for its people (matched by
    name with Account.organisation). Time is taken from here before the account's own credit."""

    name = CharField(unique=True)
    credit_minutes = IntegerField(default=0)
    credit_expires = DateField(null=True)  # the last day the credit may be used
    created_at = DateTimeField(default=utcnow)


class CreditEntry(BaseModel):
    """The ledger of time and credit: credit added, time recorded on a ticket (and how much of it
    was taken from credit), credit forfeited at expiry. Balances live on Account/Organisation;
    this is their history and the source of the time figures in reports."""

    kind = CharField()  # add, time, expire
    account = ForeignKeyField(Account, null=True, backref="credit_entries", on_delete="CASCADE")
    organisation = ForeignKeyField(Organisation, null=True, backref="credit_entries", on_delete="CASCADE")
    ticket = ForeignKeyField(Ticket, null=True, backref="credit_entries", on_delete="SET NULL")
    spent = IntegerField(default=0)  # time entries: minutes recorded, in started 15-minute blocks
    minutes = IntegerField(default=0)  # change of the balance: + added, - taken or forfeited
    uncovered = IntegerField(default=0)  # time entries: minutes the credit could not cover
    balance = IntegerField(default=0)  # the holder's balance after this entry
    expires = DateField(null=True)
    note = TextField(default="")
    actor_email = CharField(default="")
    at = DateTimeField(default=utcnow, index=True)
    account_id: int | None
    organisation_id: int | None


class Notice(BaseModel):
    """What the scheduler's jobs did to a ticket (SLA warning or breach, reminder, automatic
    close), one row per ticket, kind and deadline: the unique key makes each happen once, also
    across restarts and when a one-shot pass runs beside the daemon."""

    ticket = ForeignKeyField(Ticket, backref="notices", on_delete="CASCADE")
    kind = CharField()  # sla_warning, sla_breach, reminder, auto_close
    key = CharField()  # which deadline: e.g. "resolution:high", "first_response", a waiting start
    at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("ticket", "kind", "key"), True),)


MODELS: tuple[type[BaseModel], ...] = (
    SchemaVersion,
    ProductCounter,
    Account,
    Grant,
    Ticket,
    TicketFlag,
    Watcher,
    Seen,
    Message,
    Attachment,
    Event,
    Outbox,
    MailboxState,
    Organisation,
    CreditEntry,
    Notice,
    MailboxHealth,
    Alarm,
    TicketLink,
    MailboxLease,
)
