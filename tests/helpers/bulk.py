"""Many mails at once, and counting what an installation made of them.

`append_many` delivers mail to a Dovecot user in MULTIAPPEND batches (one connection, not one
login per mail), optionally with an old INTERNALDATE. `Counts` reads a site's database directly
(the ledger, tickets, outbox and messages) so that a test can show by count that nothing was
lost and nothing was sent twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailbot.store.db import close_database, open_database
from mailbot.store.models import Account, Event, Message, Outbox, Seen, Ticket
from tests.helpers.servers import Dovecot
from tests.helpers.site import Site


def append_many(
    dovecot: Dovecot, user: str, raws: Iterable[bytes], *, arrived: datetime | None = None, batch: int = 250
) -> int:
    """APPEND `raws` to the user's INBOX, `batch` mails per command; returns how many."""
    items = [{"msg": raw, "date": arrived} if arrived else {"msg": raw} for raw in raws]
    with dovecot.client(user) as imap:
        for start in range(0, len(items), batch):
            imap.multiappend("INBOX", items[start : start + batch])
    return len(items)


@contextmanager
def database_of(site: Site) -> Iterator[None]:
    """The site's database, opened for the test and closed again."""
    open_database(site.env.get("MAILBOT_DATABASE_URL") or f"sqlite:///{site.data_dir.resolve()}/mailbot.db")
    try:
        yield
    finally:
        close_database()


@dataclass(frozen=True)
class Counts:
    ledger: int
    outcomes: Counter[str]
    reasons: Counter[str]
    tickets: int
    outbox: Counter[str]  # template -> rows
    outbox_to: Counter[str]  # recipient -> rows
    pending: int
    raw_missing: int

    def to(self, address: str) -> int:
        return self.outbox_to[address.lower()]


def counts(site: Site) -> Counts:
    with database_of(site):
        rows = list(Seen.select())
        outbox = list(Outbox.select(Outbox.template, Outbox.recipient, Outbox.status))
        return Counts(
            ledger=len(rows),
            outcomes=Counter(r.outcome for r in rows),
            reasons=Counter(r.reason for r in rows),
            tickets=Ticket.select().count(),
            outbox=Counter(o.template for o in outbox),
            outbox_to=Counter(o.recipient for o in outbox),
            pending=sum(o.status == "pending" for o in outbox),
            raw_missing=sum(not Path(r.raw_path).is_file() for r in rows),
        )


def ledger_by_message_id(site: Site) -> dict[str, Seen]:
    with database_of(site):
        return {row.message_id: row for row in Seen.select()}


def messages_on(site: Site, reference: str, kind: str | None = None) -> int:
    with database_of(site):
        query = Message.select().join(Ticket).where(Ticket.reference == reference)
        if kind is not None:
            query = query.where(Message.kind == kind)
        return query.count()  # type: ignore[no-any-return]


def events_of_kind(site: Site, kind: str) -> list[tuple[str, str]]:
    with database_of(site):
        return [(e.ticket.reference, e.new) for e in Event.select().where(Event.kind == kind)]


def undeliverable(site: Site, email: str) -> bool:
    with database_of(site):
        account = Account.get_or_none(Account.email == email.lower())
        return account is not None and account.undeliverable_since is not None
