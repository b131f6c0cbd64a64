"""The OAuth2 wiring: a `TokenKeeper` (mailbot.oauth.keeper) per mailbox that logs in with
OAuth2, and one for the SMTP login, with their token files under `$MAILBOT_DATA_DIR/oauth`. The
sources and the transport are handed the keeper's `access_token`; `mailbot oauth` lists them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from mailbot.config import OAuthSettings, ProductSettings, Settings
from mailbot.errors import ConfigError
from mailbot.sources.base import TokenSource

if TYPE_CHECKING:
    from mailbot.oauth.keeper import TokenKeeper

SMTP = "SMTP"


def keeper_for(settings: Settings, oauth: OAuthSettings, url: str) -> TokenKeeper:
    """The keeper for the account the URL names (`imaps://user%40example.com@host/INBOX`)."""
    account = unquote(urlsplit(url).username or "")
    if not account:
        where = "MAILBOT_SMTP_URL" if oauth.name == SMTP else f"MAILBOT_PRODUCT_{oauth.name}_MAILBOX"
        raise ConfigError(f"{where}: OAuth2 needs the account as the URL's user (user%40domain@host)")
    # Imported here: the OAuth2 libraries cost every start, and most sites log in with passwords.
    from mailbot.oauth.keeper import TokenKeeper

    return TokenKeeper(oauth, settings.data_dir / "oauth", account)


def product_token(settings: Settings, product: ProductSettings) -> TokenSource | None:
    if product.oauth is None:
        return None
    return keeper_for(settings, product.oauth, product.mailbox).access_token


def smtp_token(settings: Settings) -> TokenSource | None:
    if settings.smtp_oauth is None:
        return None
    return keeper_for(settings, settings.smtp_oauth, settings.smtp_url).access_token


def keepers(settings: Settings) -> dict[str, TokenKeeper]:
    """Every keeper by name (the product keys, and SMTP), in the configuration's order."""
    found = {p.key: keeper_for(settings, p.oauth, p.mailbox) for p in settings.products if p.oauth}
    if settings.smtp_oauth is not None:
        found[SMTP] = keeper_for(settings, settings.smtp_oauth, settings.smtp_url)
    return found
