"""Real mail servers on loopback for the integration tests and the benchmarks.

`Dovecot` runs the system's /usr/sbin/dovecot with a private configuration under a work
directory (IMAP with STARTTLS, IMAPS, passwd-file users); `SmtpSink` (in tests/helpers/smtp_sink.py,
exported here too) is an aiosmtpd server in a thread that records what it accepts and can be
told to fail; `SilentServer` accepts TCP connections and never answers. Certificates come from
a throw-away `trustme` CA.

Plain Python, no pytest: fixtures live in conftest.py, and a benchmark script can use these
classes directly. Every server stops in `stop()` (also via `with`) and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import trustme
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
    # Killed children vanish a moment later (once reaped); wait for that, so that a restart on
    # the same ports and a check for leftovers both see a clean slate.
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)


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
# Written by tests/helpers/servers.py for one test Dovecot; nothing here is shared with a system one.
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
auth_mechanisms = plain login{oauth_mechanisms}
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
{oauth_passdb}userdb {{
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


# With `oauth2_introspection_url`: XOAUTH2 and OAUTHBEARER logins, whose token Dovecot's oauth2
# passdb checks with the identity provider (tests/helpers/idp.py); passwords still work for the
# helpers below.
_OAUTH2_PASSDB = """\
# No penalty for failed logins from loopback: a token refused on purpose must not slow the next test.
login_trusted_networks = 127.0.0.0/8
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {workdir}/oauth2.conf
}}
"""
_OAUTH2_CONF = """\
introspection_mode = post
introspection_url = {introspection_url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
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
        oauth2_introspection_url: str | None = None,
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
        self.oauth2_introspection_url = oauth2_introspection_url
        self.account = _run_as_account(run_as)
        self._check_reachable()
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
        oauth_passdb = ""
        if self.oauth2_introspection_url:
            (self.workdir / "oauth2.conf").write_text(
                _OAUTH2_CONF.format(introspection_url=self.oauth2_introspection_url)
            )
            oauth_passdb = _OAUTH2_PASSDB.format(workdir=self.workdir)
        (self.workdir / "dovecot.conf").write_text(
            _DOVECOT_CONF.format(
                workdir=self.workdir,
                host=HOST,
                user=self.account.name,
                group=self.account.group,
                uid=self.account.uid,
                gid=self.account.gid,
                ssl="yes" if self.tls else "no",
                capability_line=capability_line,
                oauth_mechanisms=" xoauth2 oauthbearer" if oauth_passdb else "",
                oauth_passdb=oauth_passdb,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
            )
        )
        self._hand_over(self.workdir)

    def _check_reachable(self) -> None:
        """Fail clearly, not with Dovecot's log, when the account cannot reach `workdir`."""
        if self.account.uid == os.geteuid():
            return
        for parent in self.workdir.parents:
            if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
                raise ValueError(
                    f"Dovecot runs as {self.account.name}, which cannot reach {self.workdir} "
                    f"({parent} is closed to others): use tests.helpers.servers.make_workdir()"
                )

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

    @property
    def pid(self) -> int | None:
        """The master's process id (also its process group's), None when stopped."""
        return self._proc.pid if self._proc is not None else None

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
    """A fresh directory right under the system temp dir, so that the account Dovecot drops to
    can reach it (pytest's tmp_path sits in a directory private to the user running pytest)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def __getattr__(name: str):
    """`from tests.helpers.servers import SmtpSink` works; the SMTP half lives in
    tests/helpers/smtp_sink.py (imported on first use, since it builds on this module)."""
    if name in ("SmtpSink", "ReceivedMail"):
        from tests.helpers import smtp_sink

        return getattr(smtp_sink, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
