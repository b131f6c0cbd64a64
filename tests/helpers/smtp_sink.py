"""An SMTP server for tests: aiosmtpd in a thread on 127.0.0.1 that records what it accepts
and fails on request (4xx/5xx at MAIL, RCPT or DATA; a connection cut after DATA; down and up
again), with STARTTLS or TLS on connect from a `trustme` CA, and optional AUTH.

Part of the test harness (see tests/helpers/servers.py, which also exports `SmtpSink`); plain Python,
no pytest. Judging what a client did with the faults is the tests' job.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import ssl
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from urllib.parse import quote

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.helpers.servers import HOST, free_port


@dataclass(frozen=True)
class ReceivedMail:
    """One message the sink accepted (envelope names as in aiosmtpd's Envelope)."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    login: str | None  # the AUTH identity, None when the client did not authenticate
    tls: bool

    @cached_property
    def message(self) -> EmailMessage:
        """The mail parsed, when a test first reads it: parsing before the 250 reply made every
        client wait for the email package (a real MTA answers without that)."""
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class _Fault:
    stage: str
    reply: str
    recipient: str | None
    times: int


@dataclass
class _SinkHandler:
    """aiosmtpd handler; runs in the sink's event-loop thread, shares state under `lock`."""

    sink: SmtpSink
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _fault(self, stage: str, address: str | None = None) -> str | None:
        with self.lock:
            for fault in self.sink._faults:
                wanted = fault.recipient
                if fault.stage == stage and wanted in (None, address):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.sink._faults.remove(fault)
                    return fault.reply
        return None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not getattr(server, "_sink_counted", False):
            server._sink_counted = True  # one count per connection that sends a MAIL
            with self.lock:
                self.sink.connections += 1
        if self.sink.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        reply = self._fault("mail")
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        while not self.sink._open.is_set():  # hold(): the client waits here, before any DATA
            self.sink.held.set()
            await asyncio.sleep(0.05)
        reply = self._fault("rcpt", address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            drop = self.sink._drops > 0
            self.sink._drops -= drop
        if drop:
            with self.sink._arrived:  # kept: the client cannot know whether it was delivered
                self.sink.dropped.append(envelope.original_content or envelope.content)
            server.transport.close()  # the data arrived, the reply never will
            return "250 OK (never sent)"
        reply = self._fault("data")
        if reply is not None:
            return reply
        raw = envelope.original_content or envelope.content
        login = session.auth_data.login.decode() if session.authenticated else None
        mail = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            login=login,
            tls=session.ssl is not None or self.sink.tls == "implicit",
        )
        with self.sink._arrived:
            self.sink.messages.append(mail)
            self.sink._arrived.notify_all()
        return "250 OK queued"


class _XOauth2Handler(_SinkHandler):
    """Also takes SASL XOAUTH2 (`user=U^Aauth=Bearer T^A^A`), the token checked by the sink's
    `oauth_check(user, token)` (the identity provider's introspection, in the tests)."""

    async def auth_XOAUTH2(self, server, args):
        blob = args[1] if len(args) > 1 else await server.challenge_auth("", encode_to_b64=False)
        try:
            text = base64.b64decode(blob).decode()
            fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
            user, token = fields["user"], fields["auth"].removeprefix("Bearer ")
        except (ValueError, KeyError, UnicodeDecodeError):
            return AuthResult(success=False, handled=False)
        assert self.sink.oauth_check is not None
        ok = await asyncio.get_running_loop().run_in_executor(None, self.sink.oauth_check, user, token)
        with self.lock:
            self.sink.oauth_logins.append((user, ok))
        if not ok:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))


class _TrackingController(Controller):
    """A Controller that knows its connections, so that stop() can cut them (aiosmtpd's own
    stop leaves them open, and their transports are then garbage-collected unclosed)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._servers: weakref.WeakSet = weakref.WeakSet()

    def factory(self):
        server = super().factory()
        self._servers.add(server)
        return server

    def abort_connections(self) -> None:  # runs in the event loop's thread
        for server in list(self._servers):
            if server.transport is not None:
                server.transport.abort()


class SmtpSink:
    """An SMTP server on 127.0.0.1 that records what it accepts (`messages`).

    tls: None (plain), "starttls" (offered; required before MAIL unless require_starttls is
    False) or "implicit" (TLS on connect). auth: (user, password) to offer AUTH PLAIN/LOGIN and
    refuse MAIL without it. Faults: `fail_next`, `drop_after_data`, and `stop()` for a server
    that is down (`start()` brings it back on the same port).
    """

    def __init__(
        self,
        tls: str | None = None,
        *,
        auth: tuple[str, str] | None = None,
        ca: trustme.CA | None = None,
        require_starttls: bool = True,
        oauth_check: Callable[[str, str], bool] | None = None,
    ):
        if tls not in (None, "starttls", "implicit"):
            raise ValueError(f"tls must be None, 'starttls' or 'implicit', not {tls!r}")
        self.tls = tls
        self.auth = auth
        self.require_starttls = require_starttls
        self.oauth_check = oauth_check  # (user, token) -> valid: XOAUTH2 offered, and required
        self.oauth_logins: list[tuple[str, bool]] = []  # each XOAUTH2 attempt: (user, accepted)
        self.ca = ca or trustme.CA()
        self.host = HOST
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self.dropped: list[bytes] = []  # raw messages received by drop_after_data, unanswered
        self.connections = 0
        self._faults: list[_Fault] = []
        self._drops = 0
        self._open = threading.Event()  # cleared by hold(): RCPT waits until it is set again
        self._open.set()
        self.held = threading.Event()  # set when a client waits at a hold
        self._arrived = threading.Condition()
        self._handler = (_XOauth2Handler if oauth_check else _SinkHandler)(self)
        self._controller: Controller | None = None

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(HOST, "localhost").configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this sink's CA."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and self.auth == (
            auth_data.login.decode(),
            auth_data.password.decode(),
        )
        # handled=False: let aiosmtpd answer 535 itself (its default is to send nothing).
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self) -> None:
        if self._controller is not None:
            return
        kwargs: dict = {"server_hostname": "sink.test", "ready_timeout": 10}
        if self.oauth_check is not None:
            kwargs["auth_require_tls"] = self.tls == "starttls"
            kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN"]
        if self.auth is not None:
            # Over STARTTLS, AUTH is only offered once TLS is up; with implicit TLS aiosmtpd
            # does not see the TLS, and plain is a test of plain, so allow AUTH there.
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = self.tls == "starttls"
        if self.tls == "starttls":
            kwargs["tls_context"] = self._server_context()
            kwargs["require_starttls"] = self.require_starttls
        elif self.tls == "implicit":
            kwargs["ssl_context"] = self._server_context()
        # A fresh controller each time: a stopped one has closed its event loop.
        controller = _TrackingController(self._handler, hostname=HOST, port=self.port, **kwargs)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening and cut every open connection, like a server going down."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.loop.call_soon_threadsafe(controller.abort_connections)
            controller.stop()

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """mailbot's MAILBOT_SMTP_URL for this sink as configured (credentials included)."""
        return self.url_for()

    def url_for(self, scheme: str | None = None, *, starttls: bool | None = None) -> str:
        """A MAILBOT_SMTP_URL for this sink with another scheme or STARTTLS setting, e.g. to
        ask for STARTTLS from a sink that does not offer it."""
        scheme = scheme or ("smtps" if self.tls == "implicit" else "smtp")
        auth = ""
        if self.auth is not None:
            auth = f"{quote(self.auth[0], safe='')}:{quote(self.auth[1], safe='')}@"
        if starttls is None:
            starttls = self.tls == "starttls"
        query = "?starttls=true" if starttls else ""
        return f"{scheme}://{auth}{HOST}:{self.port}{query}"

    def fail_next(
        self, code: int, text: str, stage: str = "mail", recipient: str | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` MAIL / RCPT (to `recipient`, or any) / end of DATA with
        `code text` instead of accepting."""
        if stage not in ("mail", "rcpt", "data"):
            raise ValueError(f"stage must be mail, rcpt or data, not {stage!r}")
        with self._handler.lock:
            self._faults.append(_Fault(stage, f"{code} {text}", recipient, times))

    def drop_after_data(self, times: int = 1) -> None:
        """Receive the next `times` messages, then close the connection without a reply."""
        with self._handler.lock:
            self._drops += times

    def hold(self) -> None:
        """Keep every client waiting at RCPT (before the mail's data) until `release()`; `held`
        is set once one waits. A client killed meanwhile has delivered nothing."""
        self.held.clear()
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedMail]:
        """Wait until at least `count` messages arrived; AssertionError with what came if not."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                got = [(m.mail_from, m.rcpt_tos, m.message["Subject"]) for m in self.messages]
                raise AssertionError(f"expected {count} message(s) within {timeout} s, got {got}")
            return list(self.messages)

    def clear(self) -> None:
        with self._arrived:
            self.messages.clear()
            self.dropped.clear()
        with self._handler.lock:
            self._faults.clear()
            self._drops = 0
            self.connections = 0
