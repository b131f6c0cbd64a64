"""mailbot's words, in one place: the values a ticket, an account, the ledger and the outbox take,
as `StrEnum`s, with what a value means for the rules as attributes rather than as membership in
lists of names kept apart.

A member equals its string (`Status.OPEN == "open"`), so code and templates that compare with
strings keep working; the database columns (`mailbot.store.fields.EnumField`), the CLI's choices
and the configuration's parsers read the members from here. Pure: no imports of mailbot.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


def values(members: Iterable[StrEnum]) -> tuple[str, ...]:
    """The plain strings of an enum or of some of its members, in order (for click.Choice and
    messages)."""
    return tuple(member.value for member in members)


class Status(StrEnum):
    """Where a ticket is in its life."""

    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"  # on the customer
    RESOLVED = "resolved"  # the customer may still answer
    CLOSED = "closed"

    @property
    def running(self) -> bool:
        """Not yet resolved: the scheduler's reminders and SLA warnings look at it."""
        return self in (Status.NEW, Status.OPEN, Status.WAITING)

    @property
    def pauses_clock(self) -> bool:
        """The resolution clock stands still while the ticket is here."""
        return self in (Status.WAITING, Status.RESOLVED)

    @property
    def done(self) -> bool:
        return self in (Status.RESOLVED, Status.CLOSED)


class Priority(StrEnum):
    """Most urgent first: the order of the SLA targets and of reports."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Category(StrEnum):
    QUESTION = "question"
    BUG = "bug"  # time on a bug is recorded but not taken from credit
    SUGGESTION = "suggestion"


class Role(StrEnum):
    """What a person is to a product (a grant) or to a ticket (a watcher, who has no grant)."""

    CUSTOMER = "customer"
    ENGINEER = "engineer"
    BOARD = "board"
    WATCHER = "watcher"

    @property
    def staff(self) -> bool:
        """The product's own people: they may command tickets and are never rate-limited."""
        return self in (Role.ENGINEER, Role.BOARD)

    @property
    def grantable(self) -> bool:
        """A role an account can be given on a product (watching is per ticket)."""
        return self is not Role.WATCHER


GRANT_ROLES = tuple(role for role in Role if role.grantable)
STAFF_ROLES = tuple(role for role in Role if role.staff)


class Language(StrEnum):
    """The languages mailbot writes in; the first is the default."""

    EN = "en"
    NL = "nl"
    FR = "fr"


class Outcome(StrEnum):
    """What a mail taken from a mailbox came to, as the ledger (`Seen.outcome`) records it."""

    TICKET = "ticket"  # opened one
    MESSAGE = "message"  # joined one
    IGNORED = "ignored"
    QUARANTINED = "quarantined"  # could not be handled; kept for `mailbot quarantine`


class OutboxState(StrEnum):
    """Where an outbox row is. Only `pending` rows are sent; `failed` waits for `outbox retry`."""

    PENDING = "pending"  # to be sent at next_attempt_at
    SENT = "sent"  # the server accepted it
    DEAD = "dead"  # undeliverable (refused, or past the give-up age)
    FAILED = "failed"  # could not be rendered (a broken template); last_error says where


class Flag(StrEnum):
    """Marks on a ticket (`TicketFlag` rows), shown to the team in mails and listings."""

    CONTRACT_EXPIRED = "contract_expired"  # opened under the "flag" contract policy
    NO_CREDIT = "no_credit"  # time was recorded that prepaid credit did not cover
    BEFORE_CUTOVER = "before_cutover"  # history read before the cut-over: no SLA, no reminders


class Template(StrEnum):
    """The mails mailbot writes about tickets (a folder of `mailbot/templates/<language>/`).

    `automatic`: written by mailbot, not relayed from a person, so marked Auto-Submitted and held
    back from no-reply and bounced addresses. `kept`: a mail to the customer side is kept on the
    ticket as part of its conversation (not an answer about a mail that changed nothing).
    `optional`: a person may opt out of it (Account.notify).
    """

    automatic: bool
    kept: bool
    optional: bool

    def __new__(
        cls, value: str, automatic: bool = True, kept: bool = True, optional: bool = False
    ) -> Template:
        member = str.__new__(cls, value)
        member._value_ = value
        member.automatic, member.kept, member.optional = automatic, kept, optional
        return member

    # value, automatic, kept, optional
    TICKET_OPENED = "ticket_opened", True, True, True
    NEW_TICKET = "new_ticket", True, True, True
    REPLY = "reply", False, True, False
    CUSTOMER_REPLY = "customer_reply", False, True, True
    INTERNAL_NOTE = "internal_note", False, True, True
    INFO_REQUESTED = "info_requested", False, True, False
    STATUS_CHANGED = "status_changed", True, True, True
    PRIORITY_CHANGED = "priority_changed", True, True, True
    TICKET_CLOSED = "ticket_closed", True, True, True
    TICKET_UPDATED = "ticket_updated", True, True, True
    AUTO_CLOSED = "auto_closed"
    REMINDER = "reminder"
    SLA_WARNING = "sla_warning"
    SLA_BREACH = "sla_breach"
    CREDIT_LOW = "credit_low"
    CREDIT_REFUNDED = "credit_refunded"  # bug time given back
    CREDIT_EXHAUSTED = "credit_exhausted"  # told once, to the customer and the engineer
    TICKET_MERGED = "ticket_merged"  # where the request continues, with the engineer's text if any
    DELIVERY_FAILED = "delivery_failed"
    ESCALATED = "escalated"  # the ticket passed on to the second line
    COMMAND_ERROR = "command_error", True, False, False
    COMMAND_NOT_TRUSTED = "command_not_trusted", True, False, False
    REFUSED = "refused", True, False, False
    QUERY_ANSWER = "query_answer", True, False, False  # a customer's #list or #show: asking changes nothing

    @property
    def auto_submitted(self) -> str:
        """The Auto-Submitted value (RFC 3834): the acknowledgement answers a mail, the rest
        are generated; "" for mail a person wrote."""
        if not self.automatic:
            return ""
        return "auto-replied" if self is Template.TICKET_OPENED else "auto-generated"
