"""Real mail servers on loopback for the integration tests and the benchmarks.

`Dovecot` runs the system's /usr/sbin/dovecot with a private configuration under a work
directory (IMAP with STARTTLS, IMAPS, passwd-file users); `SmtpSink` is an aiosmtpd server in a
thread that records what it accepts and can be told to fail; `SilentServer` accepts TCP
connections and never answers. Certificates come from a throw-away `trustme` CA.

Plain Python, no pytest: fixtures live in conftest.py, and a benchmark script can use these
classes directly. Every server stops in `stop()` (also via `with`) and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import email
import email.policy
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from imapclient import IMAPClient

HOST = "127.0.0.1"
DOVECOT_BINARY = Path("/usr/sbin/dovecot")
INSTALL_HINT = (
    "Dovecot is not installed ({binary} not found). The IMAP integration tests need it: install "
    "the Debian package dovecot-imapd (apt-get install dovecot-imapd), or run scripts/test.sh, "
    "which installs it when run as root."
)
# When the tests run as root (CI), Dovecot drops to this account: its login processes refuse
# to run as root, and it will not give mail access to UID 0.
ROOT_RUN_AS = "nobody"


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class DovecotNotInstalled(RuntimeError):
    """/usr/sbin/dovecot is missing; the message says what to install."""


def _die_with_parent() -> None:
    """Runs in the Dovecot child: end it (SIGTERM) if the test process dies without stop().
    Linux only; tied to the thread that started Dovecot, so start it from a long-lived one."""
    with contextlib.suppress(Exception):
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


try:  # looked up before fork, so the child only makes the call
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _PRCTL = None


def _end_process_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group we started (Dovecot's master alone takes a second to shut
    down, the whole group a tenth), SIGKILL what lingers. Used by stop() and at exit."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    # The group id stays ours while any member lives, so this reaches only our leftovers.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@dataclass
class _Account:
    name: str
    uid: int
    gid: int
    group: str


def _run_as_account(name: str | None) -> _Account:
    if name is None:
        name = ROOT_RUN_AS if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    entry = pwd.getpwnam(name)
    return _Account(name, entry.pw_uid, entry.pw_gid, grp.getgrgid(entry.pw_gid).gr_name)


_DOVECOT_CONF = """\
# Written by tests/servers.py for one test Dovecot; nothing here is shared with a system one.
instance_name = mailbot-test-{imap_port}
base_dir = {workdir}/run
state_dir = {workdir}/state
log_path = {workdir}/dovecot.log
protocols = imap
listen = {host}
# Rootless: every service runs as the one account that runs Dovecot, and nothing chroots.
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:~/Maildir
ssl = {ssl}
ssl_cert = <{workdir}/server.pem
ssl_key = <{workdir}/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
# Failed logins are answered at once: tests check them and must stay fast.
auth_failure_delay = 0
mail_max_userip_connections = 100
{capability_line}
# One passwd-file per user: Dovecot rereads a changed passwd-file at most once a second, but
# opens a new one at once, so users added while it runs can log in straight away.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {workdir}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {workdir}/users/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


class Dovecot:
    """A private Dovecot on 127.0.0.1 with plain IMAP (STARTTLS offered) and IMAPS.

    `capabilities` replaces the capability list advertised after login (Dovecot's
    `imap_capability`), e.g. to look like a server without MOVE or IDLE; `tls=False` turns
    SSL off altogether (no STARTTLS, no IMAPS). Run as root, Dovecot drops to `nobody`, so
    `workdir` must be reachable by that account (a directory made under /tmp is).
    """

    def __init__(
        self,
        workdir: Path | str,
        capabilities: Sequence[str] | str | None = None,
        *,
        tls: bool = True,
        run_as: str | None = None,
        binary: Path | str = DOVECOT_BINARY,
    ):
        self.binary = Path(binary)
        if not self.binary.exists():
            raise DovecotNotInstalled(INSTALL_HINT.format(binary=self.binary))
        self.workdir = Path(workdir).resolve()
        if re.search(r"\s", str(self.workdir)):
            raise ValueError(f"Dovecot work directory must not contain spaces: {self.workdir}")
        if isinstance(capabilities, str):
            capabilities = capabilities.split()
        self.capabilities = tuple(capabilities) if capabilities is not None else None
        self.tls = tls
        self.account = _run_as_account(run_as)
        self.host = HOST
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.ca = trustme.CA()
        self.ca_file = self.workdir / "ca.pem"
        self.log_file = self.workdir / "dovecot.log"
        self._passwords: dict[str, str] = {}
        self._proc: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None
        self._write_files()

    # -- lifecycle -------------------------------------------------------------------------

    def _write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        cert = self.ca.issue_cert(HOST, "localhost")
        cert.private_key_pem.write_to_path(str(self.workdir / "server.key"))
        with open(self.workdir / "server.pem", "wb") as out:
            for blob in cert.cert_chain_pems:
                out.write(blob.bytes())
        (self.workdir / "users").mkdir(exist_ok=True)
        capability_line = ""
        if self.capabilities is not None:
            capability_line = "imap_capability = " + " ".join(self.capabilities)
        (self.workdir / "dovecot.conf").write_text(
            _DOVECOT_CONF.format(
                workdir=self.workdir, host=HOST, user=self.account.name,
                group=self.account.group, uid=self.account.uid, gid=self.account.gid,
                ssl="yes" if self.tls else "no", capability_line=capability_line,
                imap_port=self.imap_port, imaps_port=self.imaps_port,
            )
        )
        self._hand_over(self.workdir)

    def _hand_over(self, path: Path) -> None:
        """Give `path` (recursively) to the account Dovecot runs as, when that is not us."""
        if self.account.uid == os.geteuid():
            return
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, self.account.uid, self.account.gid)

    def start(self) -> None:
        if self._proc is not None:
            return
        drop = self.account.uid != os.geteuid()
        with open(self.workdir / "dovecot.out", "ab") as output:
            self._proc = subprocess.Popen(
                [str(self.binary), "-F", "-c", str(self.workdir / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() can end it all
                user=self.account.uid if drop else None,
                group=self.account.gid if drop else None,
                extra_groups=[] if drop else None,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,
            )
        self._finalizer = weakref.finalize(self, _end_process_group, self._proc)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"Dovecot exited at start-up:\n{self.log_text()}")
            try:
                with socket.create_connection((HOST, self.imap_port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"Dovecot did not answer within {timeout} s:\n{self.log_text()}")

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs _end_process_group once
        self._proc = self._finalizer = None

    def restart(self) -> None:
        """Stop and start on the same ports; mail and users are kept."""
        self.stop()
        self.start()

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        parts = []
        for name in ("dovecot.out", "dovecot.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    # -- users and mail --------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Add a passwd-file user (its own INBOX); usable at once, also while running."""
        if not re.fullmatch(r"[A-Za-z0-9._@+-]+", name) or ":" in password or "\n" in password:
            raise ValueError(f"unsupported test user name or password for {name!r}")
        home = self.workdir / "home" / name
        line = f"{name}:{{PLAIN}}{password}:{self.account.uid}:{self.account.gid}::{home}::\n"
        (self.workdir / "users" / name).write_text(line)
        self._passwords[name] = password

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this server's test CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @contextlib.contextmanager
    def client(self, user: str) -> Iterator[IMAPClient]:
        """An IMAPClient logged in as `user` over plain IMAP, logged out afterwards."""
        with IMAPClient(HOST, self.imap_port, ssl=False, timeout=10) as imap:
            imap.login(user, self._passwords[user])
            yield imap

    def append(self, user: str, raw: bytes, folder: str = "INBOX", flags: Sequence = ()) -> int:
        """APPEND `raw` as `user` (creating `folder` if needed) and return its UID."""
        with self.client(user) as imap:
            if not imap.folder_exists(folder):
                imap.create_folder(folder)
            response = imap.append(folder, raw, flags=tuple(flags))
        match = re.search(rb"APPENDUID \d+ (\d+)", response)
        if match is None:
            raise AssertionError(f"APPEND gave no APPENDUID: {response!r}")
        return int(match.group(1))

    def uids(self, user: str, folder: str = "INBOX") -> list[int]:
        """The UIDs in `folder` (an empty list when it does not exist)."""
        with self.client(user) as imap:
            if not imap.folder_exists(folder):
                return []
            imap.select_folder(folder, readonly=True)
            return sorted(imap.search("ALL"))

    def flags(self, user: str, uid: int, folder: str = "INBOX") -> frozenset[str]:
        """The flags of one mail, e.g. {"\\\\Seen", "$MailbotDone"}; KeyError if it is gone."""
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            found = imap.get_flags([uid])
        if uid not in found:
            raise KeyError(f"no UID {uid} in {user}/{folder}")
        flags = (f.decode() if isinstance(f, bytes) else f for f in found[uid])
        return frozenset(flags) - {"\\Recent"}  # a per-session flag, not the mail's

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.client(user) as imap:
            return imap.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"]

    def imap_url(self, user: str, tls: str = "none", folder: str = "INBOX") -> str:
        """mailbot's URL for this user's `folder`: tls is "none", "starttls" or "imaps"."""
        auth = f"{quote(user, safe='')}:{quote(self._passwords[user], safe='')}"
        path = quote(folder, safe="")
        if tls == "none":
            return f"imap://{auth}@{HOST}:{self.imap_port}/{path}"
        if tls == "starttls":
            return f"imap://{auth}@{HOST}:{self.imap_port}/{path}?starttls=true"
        if tls == "imaps":
            return f"imaps://{auth}@{HOST}:{self.imaps_port}/{path}"
        raise ValueError(f"tls must be none, starttls or imaps, not {tls!r}")


# -- SMTP --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    """One message the sink accepted (envelope names as in aiosmtpd's Envelope)."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    login: str | None  # the AUTH identity, None when the client did not authenticate
    tls: bool


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
            message=email.message_from_bytes(raw, policy=email.policy.default),
            login=login,
            tls=session.ssl is not None or self.sink.tls == "implicit",
        )
        with self.sink._arrived:
            self.sink.messages.append(mail)
            self.sink._arrived.notify_all()
        return "250 OK queued"


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
    ):
        if tls not in (None, "starttls", "implicit"):
            raise ValueError(f"tls must be None, 'starttls' or 'implicit', not {tls!r}")
        self.tls = tls
        self.auth = auth
        self.require_starttls = require_starttls
        self.ca = ca or trustme.CA()
        self.host = HOST
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self.connections = 0
        self._faults: list[_Fault] = []
        self._drops = 0
        self._arrived = threading.Condition()
        self._handler = _SinkHandler(self)
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
            auth_data.login.decode(), auth_data.password.decode())
        # handled=False: let aiosmtpd answer 535 itself (its default is to send nothing).
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self) -> None:
        if self._controller is not None:
            return
        kwargs: dict = {"server_hostname": "sink.test", "ready_timeout": 10}
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
        controller = _TrackingController(
            self._handler, hostname=HOST, port=self.port, **kwargs)
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
        self, code: int, text: str, stage: str = "mail",
        recipient: str | None = None, times: int = 1,
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
        with self._handler.lock:
            self._faults.clear()
            self._drops = 0
            self.connections = 0


class SilentServer:
    """A loopback TCP listener that accepts connections and never says a word."""

    def __init__(self) -> None:
        self._listener = socket.create_server((HOST, 0))
        self.host = HOST
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # the listener was closed by stop()
                return
            self._held.append(conn)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._held.clear()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_workdir(prefix: str = "mailbot-dovecot-") -> Path:
    """A fresh directory under the system temp dir, which the `nobody` account can reach
    (pytest's own tmp dirs are private to the user running the tests)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

