"""Outgoing mail dropped into a local Maildir, for an installation without an SMTP server."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from mailbot.errors import TransientError
from mailbot.transports.base import Delivery

log = logging.getLogger(__name__)


class MaildirTransport:
    """Writes each outgoing mail, unchanged, into a Maildir (tmp/ then rename into new/).

    Used when no SMTP server is configured; another program (or an admin) picks mail up there.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.name = f"maildir://{self.path}"
        self._count = 0

    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> Delivery:
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self._count += 1
        now = time.time()
        unique = (
            f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{self._count}"
            f"R{os.urandom(4).hex()}.{socket.gethostname().replace('/', '_').replace(':', '_')}"
        )
        tmp = self.path / "tmp" / unique
        # Write, fsync, then rename: a reader of new/ never sees half a mail, and a crash
        # leaves at most a stray file in tmp/.
        with open(tmp, "xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, self.path / "new" / unique)
        log.info("wrote mail from %s to %d recipient(s) into %s", sender, len(recipients), self.name)
        return Delivery(accepted=tuple(recipients), refused={})

    def check(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        if not os.access(self.path / "tmp", os.W_OK):
            raise TransientError(f"{self.name}: not writable")

    def close(self) -> None:
        pass
