"""IMAP login with an OAuth2 token (SASL XOAUTH2, as Microsoft 365 and Gmail take it).

The token goes over TLS only (plain text to a loopback address alone: the tests). A refused token
may have been revoked before its time (a password change, an admin's sign-out): the login is tried
once more with a new one before the mailbox counts as failing.
"""

from __future__ import annotations

import logging
from typing import Any

from imapclient.exceptions import LoginError

from mailbot.config_values import is_loopback
from mailbot.errors import ConfigError
from mailbot.sources.base import TokenSource

log = logging.getLogger(__name__)


def check_secure(name: str, tls: bool, host: str) -> None:
    """ConfigError for a mailbox that would send its token in plain text off this machine."""
    if not (tls or is_loopback(host)):
        raise ConfigError(f"{name}: an OAuth2 token is only sent over TLS: use imaps:// or ?starttls=true")


def log_in_with_token(client: Any, user: str, token: TokenSource) -> None:
    name = f"{user}@{client.host}"
    try:
        client.oauth2_login(user, token(False))
    except LoginError:
        log.info("%s: the server refused the OAuth2 token; asking for a new one", name)
        client.oauth2_login(user, token(True))
