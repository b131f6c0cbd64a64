"""A transport that keeps every mail it is given, as a `Transport`: the honest twin of the SMTP
transport for fast tests (httpx's MockTransport, aiosmtpd's recording handler).

Each `send` is kept as a `SentMail` (envelope and bytes). Like a real server it can refuse:
addresses in `refuse` are answered with their SMTP reply (the outbox then gives that row up as
a permanent failure), and `down` makes every send and `check` raise `SmtpUnavailable`, as a
server that cannot be reached does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mailbot.errors import SmtpUnavailable
from mailbot.transports.base import Delivery


@dataclass(frozen=True)
class SentMail:
    sender: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass
class RecordingTransport:
    name: str = "recording://"
    refuse: dict[str, str] = field(default_factory=dict)  # address -> "550 5.1.1 no such user"
    down: bool = False
    sent: list[SentMail] = field(default_factory=list)

    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> Delivery:
        if self.down:
            raise SmtpUnavailable(f"{self.name}: server down")
        refused = {r: self.refuse[r.lower()] for r in recipients if r.lower() in self.refuse}
        accepted = tuple(r for r in recipients if r not in refused)
        if accepted:
            self.sent.append(SentMail(sender, accepted, bytes(data)))
        return Delivery(accepted=accepted, refused=refused)

    def check(self) -> None:
        if self.down:
            raise SmtpUnavailable(f"{self.name}: server down")

    def close(self) -> None:
        pass

    def clear(self) -> None:
        """Forget what was sent so far (a test's next step starts with an empty record)."""
        self.sent.clear()
