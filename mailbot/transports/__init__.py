"""Where outgoing mail goes: an SMTP server (`smtp`) or a local Maildir (`maildir`), both behind
the `Transport` protocol (`base`); `transport_from_url` picks one from MAILBOT_SMTP_URL."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from mailbot.errors import ConfigError
from mailbot.transports.base import Delivery, Transport
from mailbot.transports.maildir import MaildirTransport
from mailbot.transports.smtp import SMTP_URL_KEY, SmtpTransport

__all__ = ["Delivery", "MaildirTransport", "SmtpTransport", "Transport", "transport_from_url"]


def transport_from_url(
    url: str | None,
    outbox_dir: Path,
    *,
    ssl_context: ssl.SSLContext,
    timeout: float,
    token: Callable[[bool], str] | None = None,
) -> Transport:
    """The transport MAILBOT_SMTP_URL names; unset or empty means the local Maildir outbox."""
    if not url:
        return MaildirTransport(outbox_dir)
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("smtp", "smtps"):
        return SmtpTransport(url, ssl_context=ssl_context, timeout=timeout, token=token)
    raise ConfigError(
        f"{SMTP_URL_KEY}: unsupported scheme {scheme + '://' if scheme else '(none)'}; "
        "use smtp://host:port, smtp://...?starttls=true or smtps://host:port"
    )
