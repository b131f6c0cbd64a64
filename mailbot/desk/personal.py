"""`mailbot account forget EMAIL`: a person's right to erasure (GDPR art. 17), for a desk that
must still work afterwards.

What goes: their address and name wherever they were written (accounts, tickets, messages,
events, the ledger's reasons, the outbox, credit notes, alerts), the texts they wrote (their
tickets' subjects, their messages, with their raw mails and attachments), and the raw mails of
their tickets and of any other mail that names them. What stays: the ticket rows themselves
(reference, product, status, times) so that reports and other people's links keep adding up;
a placeholder account (`forgotten-<id>@forgotten.invalid`) that they hang on; and the ledger's
keys (mailbox, UID, content hash, Message-ID), so that a mail of theirs delivered again is
recognised as one seen before and creates nobody. The erasure is recorded on each of their
tickets as a `forgotten` event that names nobody.

The rows change in one transaction; files are deleted after its commit (a failure before that
leaves everything as it was); then the database's freed pages are overwritten and its write-ahead
log emptied (`mailbot.store.db.erase_freed_pages`), so that the old text is not left in the file.
Backups taken earlier still hold it: docs/operating.md says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailbot.context import Desk
from mailbot.desk import accounts, tickets
from mailbot.errors import NoSuchAccount
from mailbot.store.db import erase_freed_pages
from mailbot.store.models import (
    Account,
    Alarm,
    Attachment,
    BaseModel,
    CreditEntry,
    Event,
    Grant,
    MailboxHealth,
    Message,
    Outbox,
    OutboxStatus,
    Seen,
    Ticket,
    Watcher,
    database,
)

log = logging.getLogger(__name__)
ERASED = "(erased)"
FORGOTTEN_NAME = "(forgotten)"
FORGOTTEN_DOMAIN = "forgotten.invalid"  # RFC 2606: never a real address
FORGOTTEN_EVENT = "forgotten"


@dataclass
class Forgotten:
    """What `forget` did, for the command's one line."""

    tickets: int = 0
    messages: int = 0
    files: set[Path] = field(default_factory=set)  # to delete after the commit


def placeholder_address(account: Account) -> str:
    return f"forgotten-{account.id}@{FORGOTTEN_DOMAIN}"


def forget(desk: Desk, email: str) -> Forgotten:
    """Erase the person with the address `email`; returns what was done. Raises NoSuchAccount
    for an address without an account."""
    account = accounts.find_account(email)
    if account is None:
        raise NoSuchAccount(f"no account {accounts.normalise(email)!r}: nothing to forget")
    done = Forgotten()
    scrub = _scrubber(account.email, account.name, placeholder_address(account))
    with database.atomic():
        own = list(Ticket.select().where(Ticket.requester == account))
        _erase_tickets(desk, own, scrub, done)
        _erase_messages(desk, account, scrub, done)
        _scrub_records(account, own, scrub)
        _scrub_outbox(account, own, scrub)
        for ticket in own:
            detail = "the requester's personal data was erased"
            tickets.record_event(ticket, FORGOTTEN_EVENT, "", detail=detail, at=desk.clock())
        Watcher.delete().where(Watcher.account == account).execute()
        Grant.delete().where(Grant.account == account).execute()
        account.email, account.name, account.notify = placeholder_address(account), "", "none"
        account.undeliverable_since = None
        account.save()
    done.files |= _files_naming(desk, scrub.literals)
    removed = sum(desk.store.remove(path) for path in done.files)
    erase_freed_pages()
    log.info(
        "account #%d forgotten: %d ticket(s), %d message(s) erased, %d file(s) deleted",
        account.id,
        done.tickets,
        done.messages,
        removed,
    )
    return done


# --- the rows -------------------------------------------------------------------------------


class _Scrub:
    """Replaces the person's address and name in a text with the placeholders."""

    def __init__(self, literals: list[tuple[str, str]]):
        self.literals = [text for text, _ in literals]
        self.pairs = [(re.compile(re.escape(text), re.IGNORECASE), new) for text, new in literals]
        self.patterns = [p for p, _ in self.pairs]

    def __call__(self, text: str) -> str:
        for pattern, replacement in self.pairs:
            text = pattern.sub(replacement, text)
        return text

    def names(self, text: str) -> bool:
        return any(p.search(text) for p in self.patterns)


def _scrubber(address: str, name: str, placeholder: str) -> _Scrub:
    pairs = [(address, placeholder)]
    if len(name.strip()) >= 3:  # a one- or two-letter name would erase bits of every text
        pairs.append((name.strip(), FORGOTTEN_NAME))
    return _Scrub(pairs)


def _erase_tickets(desk: Desk, own: list[Ticket], scrub: _Scrub, done: Forgotten) -> None:
    """Their tickets: the subject they wrote goes; every message on them is scrubbed of them and
    loses its raw mail (a reply to them quotes them and is addressed to them)."""
    for ticket in own:
        ticket.subject = ERASED
        ticket.save()
        for message in ticket.messages:
            _scrub_message(desk, message, scrub, done)
    done.tickets = len(own)


def _erase_messages(desk: Desk, account: Account, scrub: _Scrub, done: Forgotten) -> None:
    """What they wrote, on any ticket: the texts, raw mails and attachments go."""
    written = Message.select().where((Message.author == account) | (Message.author_email == account.email))
    for message in written:
        message.subject = message.text = message.html = ERASED
        message.author_email = placeholder_address(account)
        for attachment in message.attachments:
            path = _attachment_path(desk, attachment)
            if path is not None:
                done.files.add(path)
            attachment.delete_instance()
        _scrub_message(desk, message, scrub, done)
        done.messages += 1
    for message in Message.select().where(_mentions(Message.text, scrub) | _mentions(Message.html, scrub)):
        _scrub_message(desk, message, scrub, done)


def _scrub_message(desk: Desk, message: Message, scrub: _Scrub, done: Forgotten) -> None:
    for name in ("subject", "text", "html", "author_email"):
        setattr(message, name, scrub(getattr(message, name)))
    raw = desk.store.raw_file(message.raw_path)
    if raw is not None:
        done.files.add(raw)
        Seen.update(raw_path="").where(Seen.raw_path == message.raw_path).execute()
    message.raw_path = ""
    message.save()


def _attachment_path(desk: Desk, attachment: Attachment) -> Path | None:
    """The file, unless another attachment row (someone else's) has the same content."""
    shared = Attachment.select().where(
        (Attachment.sha256 == attachment.sha256) & (Attachment.id != attachment.id)
    )
    return None if shared.exists() else desk.store.attachment_file(attachment.stored_path)


def _scrub_records(account: Account, own: list[Ticket], scrub: _Scrub) -> None:
    """Events, the ledger's reasons, credit notes, alerts and mailbox errors that name them."""
    _scrub_rows(Event, (Event.actor_email, Event.old, Event.new, Event.detail), scrub)
    _scrub_rows(Seen, (Seen.reason, Seen.message_id), scrub)
    _scrub_rows(CreditEntry, (CreditEntry.actor_email, CreditEntry.note), scrub)
    _scrub_rows(Alarm, (Alarm.summary,), scrub)
    _scrub_rows(MailboxHealth, (MailboxHealth.last_error,), scrub)
    Seen.update(raw_path="").where(Seen.ticket.in_([t.id for t in own]) & (Seen.raw_path != "")).execute()


def _scrub_rows(model: type[BaseModel], columns: Iterable[Any], scrub: _Scrub) -> None:
    condition = None
    for column in columns:
        found = _mentions(column, scrub)
        condition = found if condition is None else condition | found
    for row in model.select().where(condition):
        for column in columns:
            setattr(row, column.name, scrub(getattr(row, column.name)))
        row.save()


def _mentions(column, scrub: _Scrub):  # type: ignore[no-untyped-def]
    """SQL: the column names the person (LIKE is case-insensitive for ASCII; the scrub checks)."""
    condition = None
    for text in scrub.literals:
        found = column.contains(text)
        condition = found if condition is None else condition | found
    return condition


def _scrub_outbox(account: Account, own: list[Ticket], scrub: _Scrub) -> None:
    """Mail to them is not sent any more and keeps no copy; mail about them keeps no copy of
    what was sent (rendered bytes), and what still waits is rendered without them."""
    address = account.email
    # Not sent yet: dropped (a row marked dead would count as mail given up, and alert).
    unsent = (OutboxStatus.PENDING, OutboxStatus.FAILED)
    Outbox.delete().where((Outbox.recipient == address) & Outbox.status.in_(unsent)).execute()
    Outbox.update(recipient=placeholder_address(account), data=b"", context="", headers="").where(
        Outbox.recipient == address
    ).execute()
    about = Outbox.ticket.in_([t.id for t in own]) | _mentions(Outbox.context, scrub)
    about |= _mentions(Outbox.headers, scrub)
    for row in Outbox.select().where(about):
        row.context, row.headers = scrub(row.context), scrub(row.headers)
        if row.status != OutboxStatus.PENDING or _bytes_name(row.data, scrub.names):
            row.data = b""
        row.save()


def _bytes_name(data: bytes, names: Callable[[str], bool]) -> bool:
    return bool(data) and names(data.decode("utf-8", "replace"))


# --- the files ------------------------------------------------------------------------------


def _files_naming(desk: Desk, literals: list[str]) -> set[Path]:
    """Raw and quarantined mails whose bytes name the person (a Cc, a forwarded mail, a mail
    that never made it to a ticket): read through once, as an erasure is rare."""
    wanted = [re.compile(re.escape(text.encode()), re.IGNORECASE) for text in literals]
    found: set[Path] = set()
    for folder in (desk.store.raw_dir, desk.store.quarantine_dir):
        if not folder.is_dir():
            continue
        for path in folder.rglob("*.eml"):
            data = path.read_bytes()
            if any(p.search(data) for p in wanted):
                found.add(path)
                Seen.update(raw_path="").where(Seen.raw_path.endswith("/" + path.name)).execute()
    return found
