"""What every transport is: `send` an envelope and the raw bytes, answer with a `Delivery` (who was
accepted, who was refused and why) or raise `TransientError` / `PermanentError`; `check` the
connection for `mailbot check`; `close`. The outbox is handed one and knows nothing else of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Delivery:
    """What the server made of one send. `refused` maps an address to "550 5.1.1 text"."""

    accepted: tuple[str, ...]
    refused: dict[str, str] = field(default_factory=dict)


class Transport(Protocol):
    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> Delivery: ...

    def check(self) -> None:
        """Connect (and log in) now; raises TransientError when that fails (`mailbot check`)."""
        ...

    def close(self) -> None: ...
