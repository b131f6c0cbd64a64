"""One raw mail in: keep the bytes and parse them (`mailbot.inbound.prepare`, here or ahead in a helper
process), hand the message to `mailbot.desk.intake`, and record the outcome in the ledger, all or
nothing.

The order is the guarantee: raw bytes are on disk before anything else; the ticket change, its
outbox rows and the ledger row commit in one transaction; the caller acknowledges the mail on
the server only after that transaction committed (the poller's transaction for a batch, of
which each mail's is a savepoint). A mail that cannot be parsed or handled, or a person's mail
whose sender cannot be made out, is quarantined with its reason, the admin is alerted and the
ledger says so: it is never dropped and never stops a pass. When the reason is an error in
mailbot itself rather than in the mail, the result says so (`internal`) and the alert is of its
own kind. `reprocess` runs a quarantined mail through again, exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from peewee import IntegrityError, OperationalError

from mailbot.config import ProductSettings
from mailbot.context import Desk
from mailbot.desk import intake
from mailbot.errors import TransientError
from mailbot.inbound.message import ParsedMail
from mailbot.inbound.parse import ParseLimits
from mailbot.inbound.prepare import KeptMail, prepare_mail
from mailbot.outgoing import alerts
from mailbot.sources.base import FetchedMail
from mailbot.store import statements
from mailbot.store.db import explain
from mailbot.store.models import Seen, database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # ticket, message, ignored, quarantined
    reason: str = ""
    reference: str = ""
    already_seen: bool = False
    internal: bool = False  # quarantined after an error in mailbot, not in the mail


def parse_limits(desk: Desk) -> ParseLimits:
    return ParseLimits(max_bytes=desk.settings.max_message_size)


def ingest_mail(
    desk: Desk,
    product: ProductSettings,
    mail: FetchedMail,
    prepare: Callable[[FetchedMail], KeptMail] | None = None,
) -> IngestResult:
    """Handle one fetched mail exactly once. Raises TransientError when the database cannot
    take it now: the mail then stays on the server for the next pass. `prepare`: where the mail
    may already be kept and parsed (`mailbot.service.parse_ahead`); by default that is done here
    (`mailbot.inbound.prepare`)."""
    known = _ledger_row(mail)
    if known is not None:
        return IngestResult(known.outcome, known.reason, _reference(known), already_seen=True)
    ready = prepare(mail) if prepare is not None else prepare_mail(desk.store, mail.raw, parse_limits(desk))
    msg, digest, raw_path = ready.message, ready.digest, ready.raw_path
    if msg is None:
        return quarantine(desk, product, mail, digest, ready.reason)
    if msg.sender is None and not msg.automatic:  # a person's mail is kept for a person to read
        return quarantine(desk, product, mail, digest, msg.sender_note or "no sender can be made out")
    twin = statements.seen_twin(product.key, digest, msg.message_id)
    # The twin's raw mail was erased (`account forget`, retention): this copy is not kept either.
    erased = raw_path if twin is not None and not twin.raw_path else ""
    raw_path = "" if erased else raw_path
    try:
        with database.atomic():
            if twin is not None:
                outcome = intake.Outcome("ignored", f"duplicate of {twin.mailbox} uid {twin.uid}")
            else:
                outcome = intake.handle_mail(desk, product, msg, raw_path, mail.internal_date)
                outcome = replace(outcome, reason=_with_detector(outcome.reason, msg))
            _record(
                mail,
                product,
                msg.message_id,
                digest,
                outcome.outcome,
                outcome.reason,
                outcome.ticket,
                raw_path,
            )
    except IntegrityError:
        if _ledger_row(mail) is not None:  # another worker took the same mail first
            return IngestResult("ignored", "handled concurrently", already_seen=True)
        return quarantine(desk, product, mail, digest, "database integrity error", internal=True)
    except OperationalError as exc:
        raise explain(exc, desk.settings.database_url) from exc
    except TransientError:
        raise
    except Exception as exc:  # the per-message boundary: one bad mail must not stop the pass
        log.exception("mail %s in %s could not be handled", msg.message_id, mail.mailbox)
        return quarantine(
            desk, product, mail, digest, f"could not be handled: {type(exc).__name__}: {exc}", internal=True
        )
    desk.store.remove(desk.store.raw_file(erased))
    ref = outcome.ticket.reference if outcome.ticket is not None else ""
    log.info(
        "%s %s uid %s <%s>: %s %s %s",
        product.key,
        mail.mailbox,
        mail.key,
        msg.message_id,
        outcome.outcome,
        ref,
        outcome.reason,
    )
    return IngestResult(outcome.outcome, outcome.reason, ref)


def quarantine(
    desk: Desk, product: ProductSettings, mail: FetchedMail, digest: str, reason: str, internal: bool = False
) -> IngestResult:
    """Keep the mail under quarantine/ with its reason and record that in the ledger. `internal`:
    the reason is an error in mailbot, so the admin is alerted too."""
    origin = f"{mail.mailbox} uidvalidity {mail.uidvalidity} uid {mail.key}"
    path = desk.store.quarantine(mail.raw, reason, origin)
    log.warning("%s: mail %s quarantined as %s: %s", product.key, origin, path.name, reason)
    try:
        with database.atomic():
            _record(mail, product, "", digest, "quarantined", reason, None, str(path))
            if internal:
                alerts.raise_alert(
                    desk,
                    "internal-error",
                    f"{product.key}: a mail was quarantined after an error in mailbot",
                    f"{reason}\nkept as {path}\nfrom {origin}\n"
                    f"Once fixed: `mailbot quarantine reprocess {path.stem}`.",
                )
            else:
                alerts.raise_alert(
                    desk,
                    "quarantine",
                    f"a mail to {product.key} was quarantined: {reason}",
                    f"See `mailbot quarantine show {path.stem}`; `reprocess` or `drop` it.",
                )
    except OperationalError as exc:
        raise explain(exc, desk.settings.database_url) from exc
    return IngestResult("quarantined", reason, internal=internal)


def _record(
    mail: FetchedMail,
    product: ProductSettings,
    message_id: str,
    digest: str,
    outcome: str,
    reason: str,
    ticket: object,
    raw_path: str,
) -> None:
    statements.add(
        Seen,
        mailbox=mail.mailbox,
        uidvalidity=mail.uidvalidity,
        uid=mail.seen_key,
        product=product.key,
        message_id=message_id,
        sha256=digest,
        outcome=outcome,
        reason=reason[:500],
        ticket=ticket,
        raw_path=raw_path,
    )


def _with_detector(reason: str, msg: ParsedMail) -> str:
    """A bounce's ledger reason names the detector that recognised it ("bounce: original mail
    unknown (flufl.bounce: Postfix)"), so a mail taken for a machine's can be traced to a rule."""
    if msg.bounce and msg.automatic_by and reason.startswith("bounce"):
        return f"{reason} ({msg.automatic_by})"
    return reason


def _ledger_row(mail: FetchedMail) -> Seen | None:
    return statements.seen_at(mail.mailbox, mail.uidvalidity, mail.seen_key)


def _reference(row: Seen) -> str:
    return row.ticket.reference if row.ticket is not None else ""


def reprocess(desk: Desk, path: Path) -> IngestResult:
    """Run the quarantined mail at `path` through ingest again, exactly once. Its ledger row
    takes the new outcome in the transaction of what the mail does; the files leave the
    quarantine only after that commit. Quarantined again, it stays, with the new reason. A mail
    whose row no longer says quarantined (reprocessed already) changes nothing."""
    row = _quarantine_row(path)
    if row is None or row.outcome != "quarantined":
        desk.store.release(path)  # a reprocess committed, then stopped before this
        return IngestResult(row.outcome if row else "ignored", "reprocessed already", already_seen=True)
    product = desk.settings.product(row.product)
    ready = prepare_mail(desk.store, path.read_bytes(), parse_limits(desk))
    msg = ready.message
    still = (
        ready.reason
        if msg is None
        else (
            msg.sender_note or "no sender can be made out" if msg.sender is None and not msg.automatic else ""
        )
    )
    try:
        with database.atomic():
            twin = (
                None
                if msg is None or still
                else statements.seen_twin(product.key, ready.digest, msg.message_id)
            )
            if still:
                outcome = intake.Outcome("quarantined", still)
            elif twin is not None:
                outcome = intake.Outcome("ignored", f"duplicate of {twin.mailbox} uid {twin.uid}")
            else:
                assert msg is not None
                outcome = intake.handle_mail(desk, product, msg, ready.raw_path)
            changed = (
                Seen.update(
                    outcome=outcome.outcome,
                    reason=outcome.reason[:500],
                    ticket=outcome.ticket,
                    message_id=msg.message_id if msg and not still else "",
                    raw_path=str(path) if still else ready.raw_path,
                )
                .where((Seen.id == row.id) & (Seen.outcome == "quarantined"))
                .execute()
            )
            if changed != 1:  # another reprocess of the same mail committed first
                raise _AlreadyDone
    except _AlreadyDone:
        return IngestResult("ignored", "reprocessed already", already_seen=True)
    except OperationalError as exc:
        raise TransientError(f"database unavailable: {exc}") from exc
    if not still:
        desk.store.release(path)
    ref = outcome.ticket.reference if outcome.ticket is not None else ""
    log.info(
        "%s: quarantined mail %s reprocessed: %s %s %s",
        product.key,
        path.name,
        outcome.outcome,
        ref,
        outcome.reason,
    )
    return IngestResult(outcome.outcome, outcome.reason, ref)


class _AlreadyDone(Exception):
    """Rolls back a reprocess that another one beat to the ledger row."""


def _quarantine_row(path: Path) -> Seen | None:
    """The ledger row of a quarantined mail: the one whose raw file it is."""
    rows = Seen.select().where(Seen.raw_path.endswith("/" + path.name)).order_by(Seen.id)
    return next((r for r in rows if Path(r.raw_path).name == path.name), None)
