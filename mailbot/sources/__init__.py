"""Where mail comes from: IMAP mailboxes, local Maildirs, files or stdin, behind one interface.

`open_source` turns a mailbox URL from the configuration into a `MailSource`; it does not
connect (call `open()`), so building every product's source at start-up is cheap and safe.
"""

from __future__ import annotations

import ssl
from urllib.parse import unquote, urlsplit

from mailbot.errors import ConfigError
from mailbot.sources.base import MailSource, TokenSource


def open_source(
    url: str,
    *,
    ssl_context: ssl.SSLContext,
    timeout: float,
    processed_folder: str | None = None,
    token: TokenSource | None = None,
) -> MailSource:
    """The source for `imap://`, `imaps://` or `maildir:///path` URLs; ConfigError otherwise.
    With `token` an IMAP mailbox logs in with OAuth2 (XOAUTH2) instead of the URL's password."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("imap", "imaps"):
        from mailbot.sources.imap import ImapSource  # imapclient only when IMAP is used

        return ImapSource(
            url, ssl_context=ssl_context, timeout=timeout, processed_folder=processed_folder, token=token
        )
    if scheme == "maildir":
        from mailbot.sources.maildir import MaildirSource

        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ConfigError(f"{url}: a Maildir URL looks like maildir:///absolute/path")
        return MaildirSource(unquote(parts.path))
    shown = f"{scheme}://..." if scheme else repr(url.split("@")[-1])
    raise ConfigError(f"{shown}: unsupported mailbox; use imap://, imaps:// or maildir:///path")
