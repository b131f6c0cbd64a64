"""`MAILBOT_RETENTION_RAW` (e.g. `400d`): the raw mails and attachments of tickets closed longer
ago than that are deleted, so that a desk does not keep every customer's files for ever (GDPR
art. 5(1)(e), storage limitation). Empty: everything is kept.

What goes: each message's raw mail (and the ledger's pointer to it), each attachment's file, and
the rendered copies of mail sent about the ticket (the outbox's bytes). What stays: the ticket,
its messages' texts and its history, the attachments' names and sizes (with an empty path), and
the ledger's keys, so that a mail delivered again is still recognised as seen. A ticket that is
reopened keeps what it had left. A file that another, younger ticket still names is kept.

Run as one of the scheduler's jobs (`mailbot.desk.jobs`: the daemon, and `poll --once`), at the
desk's clock; each ticket in its own transaction, its files deleted after the commit.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from mailbot.context import Desk
from mailbot.store.models import Attachment, Message, Outbox, OutboxStatus, Seen, Ticket, database

log = logging.getLogger(__name__)
BATCH = 200  # tickets per run: a first run on years of tickets is spread over a few runs


def purge_raw_mail(desk: Desk, now: datetime) -> int:
    """Delete the files of tickets closed before `now` minus the retention; returns the number
    of tickets purged."""
    age = desk.settings.retention_raw
    if age is None:
        return 0
    purged = 0
    for ticket in _due(now - age):
        files = _purge_ticket(desk, ticket)
        removed = sum(desk.store.remove(path) for path in files)
        log.info("%s: past retention: raw mails and attachments deleted (%d)", ticket.reference, removed)
        purged += 1
    return purged


def _due(cutoff: datetime) -> list[Ticket]:
    """Closed before `cutoff`, and still holding a raw mail or an attachment file."""
    holding = Message.select(Message.ticket).where(Message.raw_path != "")
    attached = Message.select(Message.ticket).join(Attachment).where(Attachment.stored_path != "")
    query = Ticket.select().where(
        (Ticket.status == "closed")
        & (Ticket.closed_at < cutoff)
        & (Ticket.id.in_(holding) | Ticket.id.in_(attached))
    )
    return list(query.order_by(Ticket.closed_at).limit(BATCH))


def _purge_ticket(desk: Desk, ticket: Ticket) -> set[Path]:
    """The ticket's rows emptied of their files, in one transaction; returns the files that no
    other row names any more, to delete once it committed."""
    files: list[Path | None] = []
    with database.atomic():
        ids = [m.id for m in ticket.messages]
        raws = {m.raw_path for m in ticket.messages if m.raw_path}
        for raw in raws:
            if not _named_elsewhere(Message.raw_path, raw, Message.ticket != ticket.id):
                files.append(desk.store.raw_file(raw))
        Seen.update(raw_path="").where(Seen.raw_path.in_(list(raws))).execute()
        Message.update(raw_path="").where(Message.ticket == ticket.id).execute()
        kept = Attachment.select().where(Attachment.message.in_(ids) & (Attachment.stored_path != ""))
        for attachment in kept:
            if not _named_elsewhere(Attachment.sha256, attachment.sha256, Attachment.message.not_in(ids)):
                files.append(desk.store.attachment_file(attachment.stored_path))
        Attachment.update(stored_path="").where(Attachment.message.in_(ids)).execute()
        done = (OutboxStatus.SENT, OutboxStatus.DEAD)
        Outbox.update(data=b"").where((Outbox.ticket == ticket.id) & Outbox.status.in_(done)).execute()
    return {path for path in files if path is not None}


def _named_elsewhere(column, value: str, elsewhere) -> bool:  # type: ignore[no-untyped-def]
    """Another row, outside this ticket, names the same file (content-addressed: same bytes)."""
    condition = (column == value) & elsewhere
    if column is Attachment.sha256:
        condition &= Attachment.stored_path != ""
    return bool(column.model.select().where(condition).exists())
