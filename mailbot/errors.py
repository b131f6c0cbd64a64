"""The exceptions mailbot raises, in one short tree.

    MailbotError
     +-- ConfigError          the configuration is wrong; names the key and what is wrong
     +-- TransientError       I/O that may work later (server down, 4xx, database busy): retry
     |    +-- SourceUnavailable   a mailbox could not be reached
     |    +-- SmtpUnavailable     the SMTP server could not be reached or refused our login
     +-- PermanentError       will never work as it is (5xx, malformed input): do not retry
          +-- QuarantineError     a mail that cannot be handled; carries the reason

Each error carries the exit code the CLI uses when it ends a command.
"""

from __future__ import annotations

EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78


class MailbotError(Exception):
    exit_code = 1


class ConfigError(MailbotError):
    exit_code = EX_CONFIG


class TransientError(MailbotError):
    exit_code = EX_TEMPFAIL


class SourceUnavailable(TransientError):
    """A mailbox could not be reached; the message names it, never its password."""


class SmtpUnavailable(TransientError):
    """No SMTP session could be opened (down, silent, TLS or login failure): no mail can go out
    now, so the outbox stops its round instead of waiting on the server once per mail."""


class PermanentError(MailbotError):
    exit_code = EX_SOFTWARE


class QuarantineError(PermanentError):
    """A mail that cannot be handled. `reason` is short and safe to log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
