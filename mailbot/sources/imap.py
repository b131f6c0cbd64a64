"""An IMAP mailbox as a `MailSource`, through imapclient.

UIDs only, never sequence numbers; BODY.PEEK[] so reading never sets \\Seen; acknowledging
(flag, then move to the processed folder) only when mailbot says the mail is committed; IDLE
where the server has it, re-issued at least every few minutes. Certificates and host names are
verified through the given SSL context, STARTTLS never falls back to plain text, and every socket
has a timeout. Connection trouble becomes `SourceUnavailable` (the caller reconnects with
backoff), other server refusals `TransientError`; messages name the mailbox, never its password.
It leaves the cursor to the poller, deduplication to ingest, and OAuth2 logins to `xoauth2`.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from mailbot.errors import ConfigError, MailbotError, SourceUnavailable, TransientError
from mailbot.sources.base import Cursor, FetchedMail, Pending, TokenSource
from mailbot.sources.xoauth2 import check_secure, log_in_with_token

log = logging.getLogger(__name__)

FETCH_BATCH = 50
FETCH_BYTES = 16 * 1024 * 1024  # and at most this much mail in one FETCH answer
# RFC 2177: servers may drop an IDLE after 30 minutes, NAT boxes much sooner; re-issue it well
# before that even when the caller asks for a longer wait.
STOP_CHECK_SECONDS = 1.0
IDLE_REFRESH = 9 * 60
DONE_FLAG = b"$MailbotDone"
SEEN, DELETED = b"\\Seen", b"\\Deleted"


@dataclass(frozen=True)
class ImapTarget:
    """An IMAP URL taken apart. `name` is the URL without the password."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    user: str
    password: str
    folder: str

    @property
    def name(self) -> str:
        scheme = "imaps" if self.implicit_tls else "imap"
        query = "?starttls=true" if self.starttls else ""
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.folder}{query}"


def parse_imap_url(url: str) -> ImapTarget:
    """`imap://user:pass@host:port/FOLDER[?starttls=true]` or `imaps://...`; the user and the
    password are URL-decoded. Errors never repeat the password."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    shown = f"{scheme}://{parts.hostname or ''}{parts.path}"
    if scheme not in ("imap", "imaps"):
        raise ConfigError(f"{shown}: an IMAP mailbox URL starts with imap:// or imaps://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{shown}: the port is not a number") from None
    if not parts.hostname or not parts.username:
        raise ConfigError(f"{shown}: needs user:password@host")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"starttls"})
    if unknown:
        raise ConfigError(f"{shown}: unknown option(s) {', '.join(unknown)}")
    starttls = query.get("starttls", ["false"])[-1].lower()
    if starttls not in ("true", "false") or (starttls == "true" and scheme == "imaps"):
        raise ConfigError(f"{shown}: starttls=true|false, and only with imap://")
    return ImapTarget(
        host=parts.hostname,
        port=port or (993 if scheme == "imaps" else 143),
        implicit_tls=scheme == "imaps",
        starttls=starttls == "true",
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
    )


class ImapSource:
    """One IMAP folder. Not thread-safe: one source, one connection, one thread."""

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        processed_folder: str | None = None,
        token: TokenSource | None = None,
    ):
        self._target = parse_imap_url(url)
        self._token = token
        if token is not None:
            check_secure(
                self._target.name, self._target.implicit_tls or self._target.starttls, self._target.host
            )
        self.name = self._target.name
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._timeout = timeout
        self.processed_folder = processed_folder
        self._client: IMAPClient | None = None
        self._uidvalidity = 0
        self._processed_ready = False
        self._warned_flag_only = False

    # -- connection --------------------------------------------------------------------------

    def open(self) -> None:
        if self._client is not None:
            return
        target = self._target
        with self._errors("cannot open the mailbox", unavailable=True):
            client = IMAPClient(
                target.host,
                target.port,
                ssl=target.implicit_tls,
                ssl_context=self._ssl_context,
                timeout=SocketTimeout(connect=self._timeout, read=self._timeout),
            )
            try:
                self._log_in(client)
                self._client = client
                self._select()
            except BaseException:
                self._client = None
                with contextlib.suppress(Exception):
                    client.shutdown()
                raise
        self._processed_ready = False
        log.info("%s: connected", self.name)

    def _log_in(self, client: IMAPClient) -> None:
        # imapclient sets imaplib's debug level to 5 and sends its messages to a logger. At 5,
        # imaplib formats the repr of every response's data, fetched mails included (twice),
        # whether the logger wants it or not: three times the largest mail in memory, and CPU.
        # Level 4 keeps the protocol log of commands and response lines.
        client._imap.debug = 4
        if self._target.starttls:
            # Never fall back to plain text: a missing STARTTLS may be an attacker stripping it.
            if not client.has_capability("STARTTLS"):
                raise SourceUnavailable(f"{self.name}: STARTTLS required but not offered")
            client.starttls(self._ssl_context)
        if self._token is not None:
            log_in_with_token(client, self._target.user, self._token)
        else:
            client.login(self._target.user, self._target.password)
        client.normalise_times = False  # keep INTERNALDATE's time zone

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except (IMAPClientError, OSError):
                with contextlib.suppress(Exception):
                    client.shutdown()

    def __enter__(self) -> ImapSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connected(self) -> IMAPClient:
        if self._client is None:
            self.open()
        assert self._client is not None
        return self._client

    def _discard(self) -> None:
        """Forget a connection that failed; the next call opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    @contextlib.contextmanager
    def _errors(self, doing: str, *, unavailable: bool = False) -> Iterator[None]:
        """Turn imapclient's and the socket's exceptions into mailbot's, without secrets."""
        try:
            yield
        except MailbotError:
            self._discard()
            raise
        except LoginError as exc:
            self._discard()
            raise SourceUnavailable(f"{self.name}: login failed: {self._safe(exc)}") from None
        except (IMAPClientAbortError, OSError) as exc:  # OSError: refused, timeout, TLS
            self._discard()
            raise SourceUnavailable(f"{self.name}: {doing}: {self._safe(exc)}") from None
        except IMAPClientError as exc:
            if unavailable:
                self._discard()
                raise SourceUnavailable(f"{self.name}: {doing}: {self._safe(exc)}") from None
            raise TransientError(f"{self.name}: {doing}: {self._safe(exc)}") from None

    def _safe(self, exc: BaseException) -> str:
        if isinstance(exc, ssl.SSLCertVerificationError):
            text = f"TLS certificate not trusted: {exc.verify_message}"
        elif isinstance(exc, TimeoutError):
            text = f"no answer within {self._timeout:g} s"
        elif isinstance(exc, OSError) and exc.strerror:
            text = exc.strerror
        else:
            text = str(exc) or type(exc).__name__
            if text.startswith(("b'", 'b"')):  # imapclient shows server text as a bytes repr
                text = text[2:-1]
        if self._target.password:
            text = text.replace(self._target.password, "***")
        return text

    def _select(self) -> int:
        assert self._client is not None
        info = self._client.select_folder(self._target.folder)
        self._uidvalidity = int(info[b"UIDVALIDITY"])
        return self._uidvalidity

    # -- MailSource --------------------------------------------------------------------------

    def pending(self, cursor: Cursor) -> Pending:
        with self._errors("cannot list mail"):
            client = self._connected()
            uidvalidity = self._select()  # a fresh SELECT also shows what arrived meanwhile
            if uidvalidity == cursor.uidvalidity:
                # "UID n:*" always matches the highest UID, even when that is below n.
                found = client.search(["UID", f"{cursor.last_uid + 1}:*"])
                uids = [uid for uid in found if uid > cursor.last_uid]
            else:
                uids = client.search("ALL")
        if uidvalidity != cursor.uidvalidity and cursor.uidvalidity:
            log.warning(
                "%s: UIDVALIDITY changed from %d to %d; all %d mails are looked at again",
                self.name,
                cursor.uidvalidity,
                uidvalidity,
                len(uids),
            )
        return Pending(uidvalidity=uidvalidity, keys=tuple(str(uid) for uid in sorted(uids)))

    def fetch(self, keys: Iterable[str]) -> Iterator[FetchedMail]:
        uids = [int(key) for key in keys]
        for start in range(0, len(uids), FETCH_BATCH):
            for batch in self._by_size(uids[start : start + FETCH_BATCH]):
                yield from self._fetch_batch(batch)

    def _by_size(self, uids: list[int]) -> Iterator[list[int]]:
        """`uids` in runs of at most FETCH_BYTES together (a bigger mail alone): a batch of
        big mails, fetched at once, would be held in memory all together."""
        with self._errors("cannot fetch mail sizes"):
            sizes = self._connected().fetch(uids, [b"RFC822.SIZE"])
        batch: list[int] = []
        total = 0
        for uid in uids:
            size = sizes.get(uid, {}).get(b"RFC822.SIZE", 0)
            if batch and total + size > FETCH_BYTES:
                yield batch
                batch, total = [], 0
            batch.append(uid)
            total += size
        if batch:
            yield batch

    def _fetch_batch(self, batch: list[int]) -> Iterator[FetchedMail]:
        with self._errors("cannot fetch mail"):
            # PEEK: reading must not set \Seen; only acknowledge() marks a mail handled.
            found = self._connected().fetch(batch, [b"BODY.PEEK[]", b"INTERNALDATE"])
        for uid in batch:
            data = found.pop(uid, {})  # popped: the bytes go once the caller is done with them
            # Expunged by another client: either left out of the answer, or (Dovecot,
            # before this session heard of the EXPUNGE) answered with a NIL body.
            body = data.get(b"BODY[]")
            if body is None:
                log.info("%s: UID %d vanished before it was fetched", self.name, uid)
                continue
            yield FetchedMail(
                mailbox=self.name,
                uidvalidity=self._uidvalidity,
                key=str(uid),
                raw=bytes(body),
                internal_date=data.get(b"INTERNALDATE"),
            )

    def acknowledge(self, mail: FetchedMail) -> None:
        self.acknowledge_all([mail])

    def acknowledge_all(self, mails: Sequence[FetchedMail]) -> None:
        """Flag (and move) the mails with one command each for all of them: a round trip per
        mail was the slowest part of a pass over a distant server."""
        if not mails:
            return
        keys = ",".join(mail.key for mail in mails)
        with self._errors(f"cannot mark UID {keys} handled"):
            client = self._connected()
            uids = []
            for mail in mails:
                if mail.uidvalidity != self._uidvalidity and mail.uidvalidity != self._select():
                    # The UID now names another mail, or none; leave it: it is seen again after
                    # the rescan and recognised by its Message-ID and hash.
                    log.warning(
                        "%s: UIDVALIDITY is now %d, not %d; UID %s left as it is",
                        self.name,
                        self._uidvalidity,
                        mail.uidvalidity,
                        mail.key,
                    )
                else:
                    uids.append(mail.uid)
            if not uids:
                return
            client.add_flags(uids, [SEEN, DONE_FLAG], silent=True)
            if self.processed_folder:
                self._move(client, uids)
        log.debug("%s: UID %s acknowledged", self.name, keys)

    def _move(self, client: IMAPClient, uids: list[int]) -> None:
        self._ensure_processed_folder(client)
        if client.has_capability("MOVE"):
            client.move(uids, self.processed_folder)
        elif client.has_capability("UIDPLUS"):
            # Without MOVE: copy, then expunge just these UIDs. A bare EXPUNGE would also purge
            # mail other clients flagged \Deleted (RFC 4315 2.1).
            client.copy(uids, self.processed_folder)
            client.add_flags(uids, [DELETED], silent=True)
            client.uid_expunge(uids)
        elif not self._warned_flag_only:
            self._warned_flag_only = True
            log.warning(
                "%s: server has neither MOVE nor UIDPLUS; handled mail stays here, flagged", self.name
            )

    def _ensure_processed_folder(self, client: IMAPClient) -> None:
        if self._processed_ready:
            return
        if not client.folder_exists(self.processed_folder):
            try:
                client.create_folder(self.processed_folder)
                log.info("%s: created folder %s", self.name, self.processed_folder)
            except IMAPClientError:
                if not client.folder_exists(self.processed_folder):  # lost a race: fine
                    raise
        self._processed_ready = True

    def wait_for_news(self, timeout: float, should_stop: Callable[[], bool] = lambda: False) -> bool:
        with self._errors("connection lost while waiting for mail"):
            client = self._connected()
            if client.has_capability("IDLE"):
                return self._idle(client, timeout, should_stop)
        _nap(timeout, should_stop)
        return True

    def _idle(self, client: IMAPClient, timeout: float, should_stop: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            client.idle()
            news = self._watch_idle(client, min(deadline - time.monotonic(), IDLE_REFRESH), should_stop)
            # DONE needs an answer within the read timeout: a dead socket shows up here.
            client.idle_done()
            if news or time.monotonic() >= deadline or should_stop():
                return news

    def _watch_idle(self, client: IMAPClient, seconds: float, should_stop: Callable[[], bool]) -> bool:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and not should_stop():
            # Short slices so that a stop request ends the wait within a second.
            window = min(left, STOP_CHECK_SECONDS)
            started = time.monotonic()
            responses = client.idle_check(timeout=window)
            for response in responses:
                if response and response[0] == b"BYE":
                    raise SourceUnavailable(f"{self.name}: the server ended the connection")
                if len(response) > 1 and response[1] == b"EXISTS":
                    return True
                if len(response) > 1 and response[1] == b"RECENT" and response[0]:
                    return True
            if not responses and time.monotonic() - started < window - 0.05:
                # Woken early with no whole line: the server hung up, or only TLS housekeeping
                # came. Return so that DONE tells the two apart; the caller re-issues IDLE.
                return False
        return False
        return False


def _nap(seconds: float, should_stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0 and not should_stop():
        time.sleep(min(left, STOP_CHECK_SECONDS))
