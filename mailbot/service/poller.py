"""One pass over one mailbox: list what is pending after the stored cursor, fetch in batches,
ingest each mail, acknowledge it on the server after its commit, and move the cursor.

The same function serves `mailbot poll --once` (every pending mail), the daemon's mailbox worker
(at most `PASS_LIMIT` mails a pass, so that it returns regularly and the outbox gets its turn) and
the IDLE worker. The mails of a fetched batch commit together (each in its own savepoint, so one bad
mail is rolled back alone), then are acknowledged on the server in one go, then the cursor moves
past them. A pass that is killed resumes after the last acknowledged batch: mails of a batch that
had not committed are handled again from the start, those committed but not acknowledged are
recognised by the ledger and only acknowledged.
A big backlog (a first start) logs its progress every `PROGRESS_EVERY` mails (and moves the desk's
progress bar, drawn on a terminal only, after each batch), and a pass that met
mail older than the cut-over says so in one summary line. A transient failure ends the pass and
leaves the rest on the server for the next one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk.caps import BEFORE_CUTOVER, cutover
from mailbot.service import parse_ahead
from mailbot.service.ingest import IngestResult, ingest_mail, parse_limits
from mailbot.service.parse_ahead import ParseAhead
from mailbot.sources.base import Cursor, FetchedMail, MailSource
from mailbot.store import statements
from mailbot.store.models import MailboxState, database

log = logging.getLogger(__name__)
BATCH_SIZE = 50  # mails fetched at once
CHUNK_BYTES = 16 * 1024 * 1024  # at most this much mail in one transaction (one bigger mail alone)
PASS_LIMIT = 500  # mails a daemon pass takes before it returns
PROGRESS_EVERY = 500  # a progress line every so many mails, for a backlog bigger than that


@dataclass
class PassReport:
    mailbox: str
    outcomes: Counter[str] = field(default_factory=Counter)
    pending: int = 0  # mails waiting when the pass began
    remaining: int = 0  # mails left for the next pass (limit reached, or stopped)
    before_cutover: int = 0  # mails older than the cut-over: recorded, nothing sent
    internal_errors: int = 0  # mails quarantined after an error in mailbot, not in the mail

    @property
    def handled(self) -> int:
        return sum(self.outcomes.values())


def poll_mailbox(
    desk: Desk,
    product: ProductSettings,
    source: MailSource,
    should_stop: Callable[[], bool] = lambda: False,
    limit: int | None = None,
) -> PassReport:
    """Handle the mails waiting in `source`, at most `limit` of them (None: all)."""
    report = PassReport(source.name)
    state = _cursor(source)
    pending = source.pending(Cursor(state.uidvalidity, state.last_uid))
    if pending.uidvalidity != state.uidvalidity:
        if state.uidvalidity:
            log.warning(
                "%s: UIDVALIDITY changed from %d to %d; rescanning, duplicates are skipped",
                source.name,
                state.uidvalidity,
                pending.uidvalidity,
            )
        state.uidvalidity, state.last_uid = pending.uidvalidity, 0
        statements.save(state)
    report.pending = len(pending.keys)
    keys = pending.keys if limit is None else pending.keys[:limit]
    report.remaining = report.pending - _work_through(desk, product, source, keys, state, report, should_stop)
    _summarise(desk, product, report)
    return report


def _work_through(
    desk: Desk,
    product: ProductSettings,
    source: MailSource,
    keys: tuple[str, ...],
    state: MailboxState,
    report: PassReport,
    should_stop: Callable[[], bool],
) -> int:
    """Take `keys` in batches until done or stopped; returns how many keys were looked at
    (handled, or vanished before they were fetched). A backlog is prepared ahead in a helper."""
    ahead = ParseAhead(desk.store, parse_limits(desk)) if len(keys) >= parse_ahead.MIN_MAILS else None
    try:
        for start in range(0, len(keys), BATCH_SIZE):
            batch = keys[start : start + BATCH_SIZE]
            before = report.handled
            for mails in _chunks(source.fetch(batch)):  # fetched before the transaction: no write
                if ahead is not None:  # lock held over the network
                    ahead.submit(mails)
                taken = _take_batch(desk, product, mails, report, should_stop, ahead)
                _acknowledge(source, taken, state)
                desk.progress.update(f"{product.key} mails", report.handled, report.pending)
                if should_stop():
                    return start + batch.index(taken[-1].key) + 1
            if report.handled < len(keys) and report.handled // PROGRESS_EVERY > before // PROGRESS_EVERY:
                log.info("%s: %d/%d mails", product.key, report.handled, report.pending)  # end: _summarise
        return len(keys)
    finally:
        if ahead is not None:
            ahead.close()


def _chunks(mails: Iterator[FetchedMail]) -> Iterator[list[FetchedMail]]:
    """The fetched mails in runs of at most CHUNK_BYTES (a bigger mail alone), so that a batch of
    big mails is never held in memory all together."""
    chunk: list[FetchedMail] = []
    size = 0
    for mail in mails:
        if chunk and size + len(mail.raw) > CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(mail)
        size += len(mail.raw)
    if chunk:
        yield chunk


def _take_batch(
    desk: Desk,
    product: ProductSettings,
    mails: list[FetchedMail],
    report: PassReport,
    should_stop: Callable[[], bool],
    ahead: ParseAhead | None,
) -> list[FetchedMail]:
    """Ingest `mails` in one transaction, each mail in its own savepoint (a mail that fails is
    rolled back alone and quarantined); returns those taken, committed. One commit per batch
    instead of one per mail; a failure of the database itself rolls back the whole batch, and
    none of it is acknowledged."""
    taken: list[FetchedMail] = []
    try:
        with database.atomic():
            for mail in mails:
                _take(desk, product, mail, report, ahead)
                taken.append(replace(mail, raw=b""))  # to acknowledge: the bytes may go
                if should_stop():
                    break
    except BaseException:
        if taken:  # the lines logged for them above did not last: say so
            log.warning(
                "%s: the %d mails handled before this failure were rolled back; they stay on "
                "the server for the next pass",
                product.key,
                len(taken),
            )
        raise
    return taken


def _cursor(source: MailSource) -> MailboxState:
    state, _ = MailboxState.get_or_create(mailbox=source.name)
    return state  # type: ignore[no-any-return]


def _take(
    desk: Desk, product: ProductSettings, mail: FetchedMail, report: PassReport, ahead: ParseAhead | None
) -> None:
    """Ingest one mail (its own savepoint)."""
    result: IngestResult = ingest_mail(desk, product, mail, ahead.prepare if ahead is not None else None)
    report.outcomes["already seen" if result.already_seen else result.outcome] += 1
    if not result.already_seen and result.reason.endswith(BEFORE_CUTOVER):
        report.before_cutover += 1
    report.internal_errors += result.internal


def _acknowledge(source: MailSource, mails: list[FetchedMail], state: MailboxState) -> None:
    """After their commits: the mails of a batch acknowledged on the server in one go, then the
    cursor moved past them. A crash before this leaves them unflagged and behind the cursor:
    the next pass fetches them again, the ledger knows them, and they are only acknowledged."""
    if not mails:
        return
    source.acknowledge_all(mails)
    last = max(mail.uid for mail in mails)
    if last > state.last_uid:
        state.last_uid = last
        statements.save(state)


def _summarise(desk: Desk, product: ProductSettings, report: PassReport) -> None:
    if report.before_cutover:
        log.info(
            "%s: %d mails arrived before the cut-over (%s): recorded, nothing sent for them",
            product.key,
            report.before_cutover,
            cutover(desk).isoformat(),
        )
    if report.remaining > 0:
        log.info(
            "%s: %d/%d mails; %d left for the next pass",
            product.key,
            report.handled,
            report.pending,
            report.remaining,
        )
    elif report.pending > PROGRESS_EVERY:
        log.info("%s: %d/%d mails", product.key, report.handled, report.pending)
