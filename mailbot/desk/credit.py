"""Prepaid support time: `#time` entries, the credit they are taken from, and its expiry.

Time is recorded in started 15-minute blocks (45m -> 45, 50m -> 60) and added to the ticket's
`time_spent`. It is taken from the prepaid credit of the requester's organisation when that has
usable credit, else from the requester's own account; time on a ticket whose category is `bug`
(a confirmed software bug) is recorded but never charged. Credit is usable up to and including
its expiry date; expired credit is forfeited (and written to the ledger) the next time the
balance is touched. Every movement is a `CreditEntry`, so balances can be explained and reports
can count the time per organisation.

Changes happen inside the caller's transaction (the command handler's, or the CLI's). What a
`#time` line means and who may write one is decided before this module is called.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from peewee import fn

from mailbot.context import Desk
from mailbot.desk import recipients, tickets
from mailbot.outgoing import notify
from mailbot.sla import clock
from mailbot.store import statements
from mailbot.store.models import Account, CreditEntry, Organisation, Ticket
from mailbot.vocabulary import Category, Flag, Template

log = logging.getLogger(__name__)

BLOCK_MINUTES = 15
BUG_NOTE = "confirmed bug, not charged"
Holder = Account | Organisation


@dataclass(frozen=True)
class Credit:
    """A holder's credit on a given day."""

    holder: str  # the account's address, or "organisation NAME"
    minutes: int  # usable today (0 once expired)
    expires: date | None  # last day it may be used; None: no expiry
    on_record: int  # the balance as stored, which may include expired minutes

    @property
    def expired(self) -> bool:
        return self.on_record > 0 and self.minutes == 0


@dataclass(frozen=True)
class ChargeResult:
    """What one `#time` entry did."""

    minutes: int  # recorded on the ticket, in started blocks
    charged: int  # taken from credit
    uncovered: int  # not covered: no (or not enough) credit left
    holder: str  # whose credit was used ("" for a bug, where none is)
    balance: int | None  # the holder's balance afterwards
    note: str  # what the ticket's history says about it
    credit_low_mailed: bool
    exhausted: bool = False  # this entry used up the last of the holder's credit
    fell_low: bool = False  # this entry took the credit below the product's threshold


def label(holder: Holder) -> str:
    return f"organisation {holder.name}" if isinstance(holder, Organisation) else holder.email


def find_organisation(name: str) -> Organisation | None:
    """The organisation called `name` (case-insensitive), or None."""
    name = name.strip()
    if not name:
        return None
    return Organisation.get_or_none(fn.LOWER(Organisation.name) == name.lower())


def get_or_create_organisation(name: str) -> Organisation:
    found = find_organisation(name)
    return found if found is not None else Organisation.create(name=name.strip())


def credit_of(holder: Holder, today: date) -> Credit:
    usable = holder.credit_minutes if not _expired(holder, today) else 0
    return Credit(label(holder), max(usable, 0), holder.credit_expires, holder.credit_minutes)


def add_credit(
    holder: Holder,
    minutes: int,
    now: datetime,
    *,
    expires: date | None = None,
    clear_expiry: bool = False,
    actor: str = "",
    note: str = "",
) -> Credit:
    """Add `minutes` (may be 0 to change only the expiry); `expires` sets the expiry date of the
    whole balance, `clear_expiry` removes it. A balance that had already expired is forfeited
    first: an expired package does not come back by buying a new one."""
    if minutes < 0:
        raise ValueError(f"credit to add must not be negative; got {minutes}")
    today = now.date()
    forfeit_expired(holder, now, today, actor)
    holder.credit_minutes += minutes
    if expires is not None or clear_expiry:
        holder.credit_expires = expires
    statements.save(holder)
    _write_entry(
        holder,
        "add",
        now,
        minutes=minutes,
        expires=holder.credit_expires,
        actor=actor,
        note=note or f"{minutes} min added",
    )
    log.info("credit of %s: %d min added, %d min now", label(holder), minutes, holder.credit_minutes)
    return credit_of(holder, today)


def forfeit_expired(holder: Holder, now: datetime, today: date, actor: str = "") -> int:
    """Write off a balance whose expiry date has passed; returns the minutes forfeited."""
    if not _expired(holder, today) or holder.credit_minutes <= 0:
        return 0
    lost = holder.credit_minutes
    holder.credit_minutes = 0
    statements.save(holder)
    _write_entry(
        holder,
        "expire",
        now,
        minutes=-lost,
        expires=holder.credit_expires,
        actor=actor,
        note=f"{lost} min expired on {holder.credit_expires}",
    )
    log.info("credit of %s: %d min expired on %s", label(holder), lost, holder.credit_expires)
    return lost


def charge_time(
    desk: Desk, ticket: Ticket, actor: Account | str, minutes: int, now: datetime, *, mail: bool = True
) -> ChargeResult:
    """Record `minutes` of work on `ticket` (rounded up to started 15-minute blocks) and take
    them from the prepaid credit; a bug is recorded but not charged. Mails the customer when
    the credit falls below the product's threshold, unless `mail` is False (the caller words
    it in the mail it sends anyway: `mailbot.desk.prepaid`)."""
    spent = clock.round_up_to_blocks(minutes, BLOCK_MINUTES)
    actor_email = actor.email if isinstance(actor, Account) else actor
    if ticket.category == Category.BUG:
        result = ChargeResult(spent, 0, 0, "", None, BUG_NOTE, False)
        _write_time_entry(ticket, None, result, actor_email, now)
    else:
        result = _take_credit(desk, ticket, spent, actor_email, now, mail)
    ticket.time_spent += spent
    statements.save(ticket, only=[Ticket.time_spent])
    detail = f"{minutes} min entered, {spent} min recorded; {result.note}"
    tickets.record_event(ticket, "time", actor_email, new=str(spent), detail=detail, at=now)
    log.info("%s: %d min recorded by %s; %s", ticket.reference, spent, actor_email, result.note)
    return result


def _take_credit(
    desk: Desk, ticket: Ticket, spent: int, actor: str, now: datetime, mail: bool
) -> ChargeResult:
    product = desk.settings.product(ticket.product)
    today = now.astimezone(product.calendar.zone).date()
    holder = _holder_for(ticket.requester, today)
    forfeit_expired(holder, now, today, actor)
    before = holder.credit_minutes
    charged = min(max(before, 0), spent)
    if charged:
        # Subtract in SQL, not from the value read, so two charges at once both count.
        model = type(holder)
        model.update(credit_minutes=model.credit_minutes - charged).where(model.id == holder.id).execute()
        holder.credit_minutes = model.get_by_id(holder.id).credit_minutes
    # Used up: nothing left here, nor with the account when the organisation paid.
    exhausted = before > 0 and holder.credit_minutes <= 0 and credit_of(ticket.requester, today).minutes <= 0
    # Used up says more than running low: one of the two, never both.
    low = 0 < product.credit_low <= before and holder.credit_minutes < product.credit_low and not exhausted
    result = ChargeResult(
        spent,
        charged,
        spent - charged,
        label(holder),
        holder.credit_minutes,
        _charge_note(holder, spent, charged),
        low and mail,
        exhausted,
        low,
    )
    _write_time_entry(ticket, holder, result, actor, now)
    if result.uncovered and is_prepaid(ticket.requester):
        tickets.add_flag(ticket, Flag.NO_CREDIT)
    if low and mail:
        _mail_credit_low(desk, ticket, holder, today)
    return result


def refund_bug_time(ticket: Ticket, actor: str, now: datetime) -> int:
    """Give back the credit taken for time on `ticket`, which turned out to be a confirmed bug
    (bug time is free); returns the minutes given back, each to the holder it was taken from.
    What was given back before is not given twice: the ledger's time and refund entries of the
    ticket add up to what is still charged."""
    given = 0
    for holder, charged in _charged_on(ticket):
        model = type(holder)
        model.update(credit_minutes=model.credit_minutes + charged).where(model.id == holder.id).execute()
        holder.credit_minutes = model.get_by_id(holder.id).credit_minutes
        note = f"{charged} min given back to {label(holder)}: confirmed bug"
        _write_entry(holder, "refund", now, ticket=ticket, minutes=charged, actor=actor, note=note)
        given += charged
    if given:
        tickets.record_event(ticket, "credit_refund", actor, new=str(given), detail=BUG_NOTE, at=now)
        log.info("%s: %d min of credit given back, confirmed bug", ticket.reference, given)
    return given


def _charged_on(ticket: Ticket) -> list[tuple[Holder, int]]:
    """(holder, minutes still charged) per holder whose credit paid for time on `ticket`."""
    totals: dict[tuple[str, int], int] = {}
    holders: dict[tuple[str, int], Holder] = {}
    entries = CreditEntry.select().where(
        (CreditEntry.ticket == ticket) & CreditEntry.kind.in_(("time", "refund"))
    )
    for entry in entries:
        holder = entry.organisation if entry.organisation_id else entry.account
        if holder is None:
            continue
        key = (type(holder).__name__, holder.id)
        holders[key] = holder
        totals[key] = totals.get(key, 0) - entry.minutes
    return [(holders[key], minutes) for key, minutes in totals.items() if minutes > 0]


def _holder_for(account: Account, today: date) -> Holder:
    """The organisation when it has usable credit, else the account itself."""
    organisation = find_organisation(account.organisation)
    if organisation is not None and credit_of(organisation, today).minutes > 0:
        return organisation
    return account


def _charge_note(holder: Holder, spent: int, charged: int) -> str:
    if charged == spent:
        return f"{charged} min taken from the credit of {label(holder)} ({holder.credit_minutes} min left)"
    if charged:
        return (
            f"{charged} min taken from the credit of {label(holder)}, "
            f"{spent - charged} min not covered: no credit left"
        )
    return f"not covered: {label(holder)} has no credit left"


def is_prepaid(account: Account) -> bool:
    """Whether the customer works with prepaid credit at all (someone once added some)."""
    organisation = find_organisation(account.organisation)
    whose = CreditEntry.account == account
    if organisation is not None:
        whose |= CreditEntry.organisation == organisation
    return CreditEntry.select().where((CreditEntry.kind == "add") & whose).exists()


def _mail_credit_low(desk: Desk, ticket: Ticket, holder: Holder, today: date) -> None:
    product = desk.settings.product(ticket.product)
    credit = credit_of(holder, today)
    context = {
        "credit": {
            "remaining_minutes": credit.minutes,
            "expires": credit.expires.isoformat() if credit.expires else "",
        }
    }
    recipient = recipients.requester(ticket, product)
    notify.queue_mail(desk, Template.CREDIT_LOW, product, ticket, [recipient], context=context)
    log.info("%s: credit of %s low (%d min), customer told", ticket.reference, label(holder), credit.minutes)


def _write_time_entry(
    ticket: Ticket, holder: Holder | None, result: ChargeResult, actor: str, now: datetime
) -> None:
    _write_entry(
        holder,
        "time",
        now,
        ticket=ticket,
        spent=result.minutes,
        minutes=-result.charged,
        uncovered=result.uncovered,
        actor=actor,
        note=result.note,
    )


def _write_entry(holder: Holder | None, kind: str, now: datetime, **fields: object) -> CreditEntry:
    actor = fields.pop("actor", "")
    return statements.add(
        CreditEntry,
        kind=kind,
        account=holder if isinstance(holder, Account) else None,
        organisation=holder if isinstance(holder, Organisation) else None,
        balance=holder.credit_minutes if holder is not None else 0,
        actor_email=actor,
        at=now,
        **fields,
    )


def _expired(holder: Holder, today: date) -> bool:
    return holder.credit_expires is not None and holder.credit_expires < today
