"""Several daemons on one server database: which one works which mailbox.

Each daemon has a `LeaseKeeper`, run by its own scheduler job in its own thread (so its
renewals are committed at once, never held back inside a mailbox worker's batch transaction).
Every third of `MAILBOT_LEASE_TIME` it renews the leases it holds, announces itself (a row
`@<holder>` in the same table: the daemons alive), takes free or expired mailboxes up to its
fair share (the mailboxes divided by the daemons alive, rounded up) and hands back what it holds
beyond that share (its lease cut to a third of the lease time, so that its worker is done with
the current mail before another daemon starts), so that a daemon that joins gets work and one
that dies leaves its mailboxes to the others within the lease time. A mailbox worker works only
while its keeper holds the mailbox's lease, which it counts as held until a third of the lease
time before its expiry as last written, so that a keeper that can no longer renew (database
gone, process stalled) stops its workers before another daemon may take over.

One statement takes or renews a lease: an upsert whose update applies only when the row is
ours or has expired, so that two daemons racing for a free mailbox get it once.

On SQLite there is one daemon per database (its lock file) and no keeper."""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from peewee import EXCLUDED, DatabaseError

from mailbot.context import Desk
from mailbot.errors import MailbotError
from mailbot.store.models import MailboxLease, database

log = logging.getLogger(__name__)
PRESENCE = "@"  # a daemon's own row: "@host:pid:nonce" (product keys are A-Z and 0-9)


def new_holder() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}"


def take(key: str, holder: str, now: datetime, lease_time: timedelta) -> bool:
    """Take or renew the lease `key` for `holder` until now + lease_time; True when it is ours."""
    with database.atomic():
        row = {"product": key, "holder": holder, "expires_at": now + lease_time, "renewed_at": now}
        MailboxLease.insert(**row).on_conflict(
            conflict_target=[MailboxLease.product],
            update={
                MailboxLease.holder: EXCLUDED.holder,
                MailboxLease.expires_at: EXCLUDED.expires_at,
                MailboxLease.renewed_at: EXCLUDED.renewed_at,
            },
            where=(MailboxLease.holder == holder) | (MailboxLease.expires_at < now),
        ).execute()
        lease = MailboxLease.get_or_none(MailboxLease.product == key)
    return lease is not None and lease.holder == holder


def release(keys: list[str], holder: str) -> None:
    MailboxLease.delete().where(MailboxLease.product.in_(keys) & (MailboxLease.holder == holder)).execute()


def hand_back(keys: list[str], holder: str, until: datetime) -> None:
    MailboxLease.update(expires_at=until).where(
        MailboxLease.product.in_(keys) & (MailboxLease.holder == holder) & (MailboxLease.expires_at > until)
    ).execute()


def fleet(now: datetime) -> tuple[int, dict[str, str]]:
    """How many daemons are alive, and the holder of each mailbox whose lease has not expired."""
    rows = list(MailboxLease.select().where(MailboxLease.expires_at >= now))
    alive = sum(1 for row in rows if row.product.startswith(PRESENCE))
    return alive, {row.product: row.holder for row in rows if not row.product.startswith(PRESENCE)}


@contextmanager
def borrowed(desk: Desk, key: str) -> Iterator[bool]:
    """For a one-shot pass (`poll --once`) on a server database: the mailbox's lease, held for
    the pass if no daemon holds it (True), else False and the mailbox is left to that daemon.
    Held for ten lease times, not renewed: a pass longer than that may meet a daemon taking
    over, whose mails the ledger's unique keys then keep from being taken twice. Always True
    on SQLite, where no daemon runs beside `poll --once` on other mailboxes."""
    if desk.settings.database_url.startswith("sqlite:"):
        yield True
        return
    holder, now = new_holder(), desk.clock()
    lease_time = timedelta(seconds=desk.settings.lease_time * 10)
    mine = take(key, holder, now, lease_time) or _take_from_the_dead(key, holder, now, lease_time)
    try:
        yield mine
    finally:
        if mine:
            release([key], holder)


def _take_from_the_dead(key: str, holder: str, now: datetime, lease_time: timedelta) -> bool:
    """Take over the lease `key` when its holder is a process of this host that no longer runs:
    a `poll --once` (or a daemon) killed mid-pass, whose lease would otherwise keep the next
    cron pass off the mailbox until it expires. A holder on another host is waited for; were
    a same-named host in another PID namespace taken for dead, the ledger's unique keys still
    keep each mail from being taken twice."""
    row = MailboxLease.get_or_none(MailboxLease.product == key)
    if row is None or not _gone(row.holder):
        return False
    taken = (
        MailboxLease.update(holder=holder, expires_at=now + lease_time, renewed_at=now)
        .where((MailboxLease.product == key) & (MailboxLease.holder == row.holder))
        .execute()
    )
    if taken:
        log.info("mailbox %s: lease of %s, which no longer runs, taken over", key, row.holder)
    return bool(taken)


def _gone(holder: str) -> bool:
    """Whether `holder` ("host:pid:nonce") is a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != os.uname().nodename or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it runs, under another user
        return False
    return False


class LeaseKeeper:
    def __init__(self, desk: Desk, stop: threading.Event):
        self.desk, self.stop = desk, stop
        self.holder = new_holder()
        self.lease_time = timedelta(seconds=desk.settings.lease_time)
        self.every = desk.settings.lease_time / 3
        self.products = [p.key for p in desk.settings.products]
        self._held: dict[str, float] = {}  # product -> monotonic time until which we may work it
        self.failing = False

    def holds(self, product: str) -> bool:
        return self._held.get(product, 0.0) > time.monotonic()

    def run_once(self, budget: float) -> None:
        deadline = time.monotonic() + budget
        while not self.stop.is_set():
            self.round()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.stop.wait(min(self.every, left))

    def round(self) -> None:
        """Renew, announce, take the fair share, hand back the excess."""
        started = time.monotonic()
        trusted_until = started + self.lease_time.total_seconds() - self.every
        try:
            now = self.desk.clock()
            take(PRESENCE + self.holder, self.holder, now, self.lease_time)
            alive, holders = fleet(now)
            share = math.ceil(len(self.products) / max(alive, 1))
            mine = [key for key in self.products if holders.get(key) == self.holder]
            keep, excess = mine[:share], mine[share:]
            for key in excess:
                self._held.pop(key, None)  # its worker stops at its next mail
            if excess:
                # Not deleted: the lease runs out after a third of its time, so that this
                # daemon's worker has finished its mail before another may start on the mailbox.
                hand_back(excess, self.holder, now + self.lease_time / 3)
                log.info("mailbox(es) %s handed to the other daemons (%d alive)", ", ".join(excess), alive)
            free = [key for key in self.products if key not in holders]
            wanted = keep + free[: max(share - len(keep), 0)]
            for key in list(self._held):
                if key not in wanted:
                    del self._held[key]
            for key in wanted:
                if take(key, self.holder, now, self.lease_time):
                    if key not in mine:
                        log.info("mailbox %s: worked by this daemon (%s)", key, self.holder)
                    self._held[key] = trusted_until
                else:
                    self._held.pop(key, None)
        except (DatabaseError, MailbotError) as exc:
            if not self.failing:
                log.warning("leases not renewed: database unavailable: %s; retrying", _one_line(exc))
            self.failing = True
            return
        if self.failing:
            log.info("leases renewed again")
        self.failing = False

    def interrupt(self) -> None:
        """Nothing to do: the wait looks at the stop event."""

    def close(self) -> None:
        """Hand every mailbox back at a clean stop, so that the others take them at once."""
        try:
            release([*self._held, PRESENCE + self.holder], self.holder)
        except (DatabaseError, MailbotError) as exc:
            log.warning("leases not handed back (they expire by themselves): %s", _one_line(exc))
        self._held.clear()


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
