"""The exceptions mailbot raises, in one short tree.

    MailbotError
     +-- ConfigError          the configuration is wrong; names the key and what is wrong
     |    +-- TemplateError       a mail template cannot be rendered; names the file and line
     +-- TransientError       I/O that may work later (server down, 4xx, database busy): retry
     |    +-- SourceUnavailable   a mailbox could not be reached
     |    +-- SmtpUnavailable     the SMTP server could not be reached or refused our login
     +-- PermanentError       will never work as it is (5xx, malformed input): do not retry
     |    +-- QuarantineError     a mail that cannot be handled; carries the reason
     +-- NotRetryable         `outbox retry` of a row that is missing or was not failed or dead

Each error carries the exit code the CLI uses when it ends a command.
"""

from __future__ import annotations

EX_DATAERR = 65
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78


class MailbotError(Exception):
    exit_code = 1


class ConfigError(MailbotError):
    exit_code = EX_CONFIG


class TemplateError(ConfigError):
    """A template that cannot be rendered: a syntax error, a missing block, an unknown value.
    The message starts with the file and line (`path/to/reply.txt:12: ...`)."""


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


class NotRetryable(MailbotError):
    """`mailbot outbox retry ID` of a row that does not exist or is not failed or dead."""

    exit_code = EX_DATAERR
