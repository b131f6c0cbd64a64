"""Which tickets mention a word, on each engine. SQLite: instr() on the lower-cased texts
rather than LIKE, so that a user's % or _ is matched as itself, never as a wildcard.
PostgreSQL: its own full-text search over the messages' texts (the `simple` configuration:
no stemming, since the desks write in many languages; `phraseto_tsquery` so that `1_0` means
the token 1 followed by the token 0, not two words anywhere), backed by a GIN index on the
same expression (migration step 9); strpos() on the subject and the requester's address, which
are short and searched as plain text."""

from __future__ import annotations

from typing import Any

from peewee import SQL, Expression, PostgresqlDatabase, fn

from mailbot.store.models import Account, Message, Ticket

FTS_INDEX_SQL = (
    "CREATE INDEX IF NOT EXISTS message_text_fts ON message "
    "USING GIN (to_tsvector('simple', coalesce(text, '')))"
)


def on_postgresql() -> bool:
    return isinstance(Ticket._meta.database.obj, PostgresqlDatabase)


def mentions(word: str) -> Any:
    """The condition on Ticket: its subject, its requester's address or one of its messages
    contains `word` (any case)."""
    needle = word.lower()
    if on_postgresql():
        # The very expression of the index, so that the planner can use it.
        vector = fn.to_tsvector(SQL("'simple'"), fn.coalesce(Message.text, ""))
        words = fn.phraseto_tsquery(SQL("'simple'"), needle)
        in_messages = Message.select(Message.ticket).where(Expression(vector, "@@", words))
        contains = fn.strpos
    else:
        in_messages = Message.select(Message.ticket).where(fn.instr(fn.lower(Message.text), needle) > 0)
        contains = fn.instr
    requesters = Account.select(Account.id).where(contains(Account.email, needle) > 0)
    return (
        (contains(fn.lower(Ticket.subject), needle) > 0)
        | Ticket.requester.in_(requesters)
        | Ticket.id.in_(in_messages)
    )
