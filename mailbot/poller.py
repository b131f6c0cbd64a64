"""One pass over one mailbox: list what is pending after the stored cursor, fetch in batches,
ingest each mail, acknowledge it on the server after its commit, and move the cursor.

The same function serves `mailbot poll --once`, the daemon's polling job and the IDLE worker.
A transient failure ends the pass and leaves the rest on the server for the next one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from mailbot.config import ProductSettings
from mailbot.desk import Desk
from mailbot.ingest import ingest_mail
from mailbot.models import MailboxState
from mailbot.sources.base import Cursor, MailSource

log = logging.getLogger(__name__)
BATCH_SIZE = 50


@dataclass
class PassReport:
    mailbox: str
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def handled(self) -> int:
        return sum(self.outcomes.values())


def poll_mailbox(desk: Desk, product: ProductSettings, source: MailSource,
                 should_stop: Callable[[], bool] = lambda: False) -> PassReport:
    report = PassReport(source.name)
    state, _ = MailboxState.get_or_create(mailbox=source.name)
    pending = source.pending(Cursor(state.uidvalidity, state.last_uid))
    if pending.uidvalidity != state.uidvalidity:
        if state.uidvalidity:
            log.warning("%s: UIDVALIDITY changed from %d to %d; rescanning, duplicates are skipped",
                        source.name, state.uidvalidity, pending.uidvalidity)
        state.uidvalidity, state.last_uid = pending.uidvalidity, 0
        state.save()
    for start in range(0, len(pending.keys), BATCH_SIZE):
        for mail in source.fetch(pending.keys[start:start + BATCH_SIZE]):
            result = ingest_mail(desk, product, mail)
            source.acknowledge(mail)
            report.outcomes["already seen" if result.already_seen else result.outcome] += 1
            if mail.uid > state.last_uid:
                state.last_uid = mail.uid
                state.save()
            if should_stop():
                return report
    return report
