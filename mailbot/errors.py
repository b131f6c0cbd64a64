"""The exceptions mailbot raises, in one short tree.

    MailbotError
     +-- ConfigError          the configuration is wrong; names the key and what is wrong
     |    +-- TemplateError       a mail template cannot be rendered; names the file and line
     +-- TransientError       I/O that may work later (server down, 4xx, database busy): retry
     |    +-- SourceUnavailable   a mailbox could not be reached
     |    +-- SmtpUnavailable     the SMTP server could not be reached or refused our login
     |    +-- DatabaseUnavailable the database cannot be used now (locked, full, read-only, corrupt)
     |    +-- DiskFull            a file under MAILBOT_DATA_DIR could not be written: no space left
     |    +-- AlreadyRunning      another daemon holds this SQLite installation
     +-- PermanentError       will never work as it is (5xx, malformed input): do not retry
     |    +-- QuarantineError     a mail that cannot be handled; carries the reason
     +-- NotRetryable         `outbox retry` of a row that is missing or was not failed or dead

Each error carries the exit code the CLI uses when it ends a command (sysexits). What an admin must
repair before it works again (a corrupt or read-only database, a full disk) is still 75: a mail
behind an MTA then waits in the MTA's queue, and one on a mailbox stays there, until it is repaired.
A mail quarantined after an error in mailbot itself (not in the mail) ends `poll --once` and
`ingest` with EX_SOFTWARE (70) once the other mails are done.
"""

from __future__ import annotations

EX_USAGE = 64
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


class DatabaseUnavailable(TransientError):
    """The database cannot be used now: locked past the busy timeout, full, read-only or not a
    database at all. The message names the file(s) and never changes them."""


class DiskFull(TransientError):
    """No space left to write a file under MAILBOT_DATA_DIR; nothing was acknowledged."""


class AlreadyRunning(TransientError):
    """A second `mailbot run` on one SQLite installation; the message names the database and the
    pid of the daemon that holds it."""


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
