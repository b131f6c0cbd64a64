"""Outgoing mail handed to an SMTP server (`SmtpTransport`), as a `mailbot.transports.Transport`.

A transport takes an envelope (sender, recipients) and the raw message exactly as the outbox
holds it, and answers with a `Delivery` (who was accepted, who was refused and why) or raises:
`TransientError` when trying again later may work (connection trouble, timeouts, any 4xx, a
connection lost after DATA) and `PermanentError` when it will not (5xx on MAIL or DATA, every
recipient refused). Retrying, backing off, recording per-recipient results and giving up after a
maximum age are the outbox's job, not this module's; so is making the bytes (CRLF, folding).
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from mailbot.config_values import is_loopback
from mailbot.errors import ConfigError, PermanentError, SmtpUnavailable, TokenRefused, TransientError
from mailbot.transports.base import Delivery

log = logging.getLogger(__name__)

SMTP_URL_KEY = "MAILBOT_SMTP_URL"
_BARE_EOL = re.compile(rb"\r\n|\r|\n")


def _reply_text(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"


@dataclass(frozen=True)
class _SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    user: str | None
    password: str | None

    @property
    def name(self) -> str:
        """The server as logs and errors show it: no credentials."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.user}@" if self.user else ""
        query = "?starttls=true" if self.starttls else ""
        return f"{scheme}://{user}{self.host}:{self.port}{query}"


def _parse_smtp_url(url: str) -> _SmtpTarget:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ConfigError(f"{SMTP_URL_KEY}: scheme must be smtp or smtps, not {scheme!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{SMTP_URL_KEY}: the port is not a number") from None
    if not parts.hostname:
        raise ConfigError(f"{SMTP_URL_KEY}: no host name")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"starttls"}
    if unknown:
        raise ConfigError(f"{SMTP_URL_KEY}: unknown option(s) {', '.join(sorted(unknown))}")
    starttls_value = query.get("starttls", ["false"])[-1].lower()
    if starttls_value not in ("true", "false"):
        raise ConfigError(f"{SMTP_URL_KEY}: starttls must be true or false")
    starttls = starttls_value == "true"
    if starttls and scheme == "smtps":
        raise ConfigError(f"{SMTP_URL_KEY}: smtps:// is TLS already; drop ?starttls=true")
    return _SmtpTarget(
        host=parts.hostname,
        port=port or (465 if scheme == "smtps" else 25),
        implicit_tls=scheme == "smtps",
        starttls=starttls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class SmtpTransport:
    """Sends through one SMTP server, reusing the connection between sends.

    Not thread-safe: one transport per thread (the outbox drains from one thread).
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext,
        timeout: float,
        token: Callable[[bool], str] | None = None,
    ):
        self._target = _parse_smtp_url(url)
        self._token = token  # OAuth2 (XOAUTH2) instead of the URL's password
        if token is not None:
            self._check_token_target()
        self._ssl_context = ssl_context
        self._timeout = timeout
        self._conn: smtplib.SMTP | None = None
        self.name = self._target.name

    # -- connection --------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        target = self._target
        try:
            if target.implicit_tls:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    target.host, target.port, timeout=self._timeout, context=self._ssl_context
                )
            else:
                conn = smtplib.SMTP(target.host, target.port, timeout=self._timeout)
            try:
                self._secure_and_login(conn)
            except BaseException:
                conn.close()
                raise
        except smtplib.SMTPAuthenticationError as exc:
            # A wrong password is not the message's fault: keep it queued until an admin fixes
            # the configuration, rather than failing it for good.
            raise SmtpUnavailable(
                f"{self.name}: authentication failed: {_reply_text(exc.smtp_code, exc.smtp_error)}"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpUnavailable(f"{self.name}: cannot connect: {_describe(exc)}") from None
        except TokenRefused as exc:  # no mail can go out until someone signs in again
            raise SmtpUnavailable(f"{self.name}: {exc}") from None
        log.debug("connected to %s", self.name)
        return conn

    def _secure_and_login(self, conn: smtplib.SMTP) -> None:
        conn.ehlo()
        if self._target.starttls:
            # Never fall back to plain text: a missing STARTTLS may be a stripping attacker.
            if not conn.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError("STARTTLS required but not offered")
            code, message = conn.starttls(context=self._ssl_context)
            if code != 220:
                raise smtplib.SMTPResponseException(code, message)
            conn.ehlo()
        if self._token is not None:
            self._log_in_with_token(conn)
        elif self._target.user:
            conn.login(self._target.user, self._target.password or "")

    def _check_token_target(self) -> None:
        target = self._target
        if not target.user:
            raise ConfigError(f"{SMTP_URL_KEY}: OAuth2 needs the account as the URL's user")
        if not (target.implicit_tls or target.starttls or is_loopback(target.host)):
            raise ConfigError(
                f"{SMTP_URL_KEY}: an OAuth2 token is only sent over TLS: smtps:// or ?starttls=true"
            )

    def _log_in_with_token(self, conn: smtplib.SMTP) -> None:
        """SASL XOAUTH2 as the URL's user (over TLS only, loopback aside: checked at start). A
        refused token may have been revoked before its time: one more try with a new one."""
        assert self._token is not None
        target = self._target
        token = self._token

        def xoauth2(renew: bool) -> Callable[..., str]:
            secret = token(renew)
            # After a refusal the server sends an error as a challenge; the answer is empty.
            return lambda challenge=None: "" if challenge else f"user={target.user}\1auth=Bearer {secret}\1\1"

        try:
            conn.auth("XOAUTH2", xoauth2(False), initial_response_ok=True)
        except smtplib.SMTPAuthenticationError:
            log.info("%s: the server refused the OAuth2 token; asking for a new one", self.name)
            conn.auth("XOAUTH2", xoauth2(True), initial_response_ok=True)

    def _connection(self) -> smtplib.SMTP:
        """The open connection, checked with NOOP, or a new one when it was dropped."""
        if self._conn is not None:
            try:
                if self._conn.noop()[0] == 250:
                    return self._conn
            except (OSError, smtplib.SMTPException):
                pass
            log.debug("connection to %s was lost; reconnecting", self.name)
            self._drop()
        self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def check(self) -> None:
        self._connection()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()

    # -- sending -----------------------------------------------------------------------------

    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> Delivery:
        """Send `data` to `recipients`. CRLF bytes go out unchanged; a stray bare LF or CR is
        made CRLF, since strict servers (Postfix smtpd_forbid_bare_newline) refuse them."""
        if not recipients:
            raise PermanentError("no recipients")
        data = _BARE_EOL.sub(b"\r\n", data)
        conn = self._connection()
        try:
            delivery = self._transaction(conn, sender, list(recipients), data)
        except smtplib.SMTPServerDisconnected:
            self._drop()
            raise TransientError(f"{self.name}: connection lost while sending") from None
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise TransientError(f"{self.name}: {_describe(exc)}") from None
        except (TransientError, PermanentError):
            self._reset(conn)
            raise
        log.info(
            "sent from %s to %d recipient(s) via %s (%d refused)",
            sender,
            len(delivery.accepted),
            self.name,
            len(delivery.refused),
        )
        return delivery

    def _transaction(self, conn: smtplib.SMTP, sender: str, recipients: list[str], data: bytes) -> Delivery:
        options = self._mail_options(conn, sender, recipients, data)
        code, message = conn.mail(sender, options)
        self._check(code, message, f"MAIL FROM:<{sender}>")
        accepted: list[str] = []
        refused: dict[str, str] = {}
        for recipient in recipients:
            code, message = conn.rcpt(recipient)
            if 200 <= code < 300:
                accepted.append(recipient)
            elif 500 <= code < 600:
                refused[recipient] = _reply_text(code, message)
            else:
                # A 4xx for one recipient defers the whole send (TransientError), to be tried
                # again later for everyone. Nothing has been delivered yet, so that duplicates
                # nothing; sending to the others now would need per-recipient retry state.
                self._check(code, message, f"RCPT TO:<{recipient}>")
        if not accepted:
            raise PermanentError(
                f"{self.name}: every recipient refused: "
                + "; ".join(f"{r}: {why}" for r, why in refused.items())
            )
        self._data(conn, data)
        return Delivery(accepted=tuple(accepted), refused=refused)

    def _data(self, conn: smtplib.SMTP, data: bytes) -> None:
        try:
            code, message = conn.data(data)
        except smtplib.SMTPDataError as exc:  # the DATA command itself was refused
            code, message = exc.smtp_code, _as_bytes(exc.smtp_error)
        except (smtplib.SMTPServerDisconnected, OSError):
            self._drop()
            # The server may or may not have taken it; the outbox sends it again with the same
            # Message-ID, so the worst case is a duplicate the recipient can recognise.
            raise TransientError(
                f"{self.name}: connection lost after DATA; the message may have been delivered"
            ) from None
        self._check(code, message, "DATA")

    def _check(self, code: int, message: bytes, command: str) -> None:
        if 200 <= code < 400:
            return
        reply = _reply_text(code, message)
        if code == 421 or code < 0:  # the server is closing the connection
            self._drop()
        if 500 <= code < 600:
            raise PermanentError(f"{self.name}: {command} refused: {reply}")
        raise TransientError(f"{self.name}: {command} deferred: {reply}")

    def _mail_options(self, conn: smtplib.SMTP, sender: str, recipients: list[str], data: bytes) -> list[str]:
        options = []
        if conn.has_extn("size"):
            options.append(f"SIZE={len(data)}")
        if conn.has_extn("8bitmime") and not data.isascii():  # a Python loop per byte cost ~1 ms a mail
            options.append("BODY=8BITMIME")
        if not all(address.isascii() for address in [sender, *recipients]):
            if not conn.has_extn("smtputf8"):
                raise PermanentError(f"{self.name}: an address is not ASCII and the server has no SMTPUTF8")
            options.append("SMTPUTF8")
        return options

    def _reset(self, conn: smtplib.SMTP) -> None:
        """RSET after a refused transaction so the connection can be reused."""
        if self._conn is None:
            return
        try:
            conn.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a connection error."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply_text(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPException):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


def _as_bytes(reply: bytes | str) -> bytes:
    """smtplib hands a server's reply text over as bytes, or as str where it made one up."""
    return reply if isinstance(reply, bytes) else reply.encode("utf-8", "replace")
