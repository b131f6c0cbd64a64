"""The values a `MAILBOT_*` key may hold: each function takes the text of the setting and returns
its value or raises ValueError saying what was expected (the caller names the key)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

_ADDRESS_RE = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$|^[^@\s<>,;\"]+@localhost$")


def parse_bool(value: str) -> bool:
    if value.lower() in ("true", "yes", "1"):
        return True
    if value.lower() in ("false", "no", "0"):
        return False
    raise ValueError("expected true or false")


def parse_size(value: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([kKmMgG]?)[bB]?", value)
    if not match:
        raise ValueError("expected a size such as 25M, 512K or 1048576")
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * factor


MAX_SECONDS = 7 * 24 * 3600  # a week: past it a timer or socket timeout overflows, or means a typo


def parse_seconds(value: str) -> float:
    expected = f"expected a number of seconds above 0 and at most {MAX_SECONDS} (a week)"
    seconds = _number(value, expected)
    # Written this way round so that nan, which compares false with everything, fails it too.
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(expected)
    return seconds


def parse_share(value: str) -> float:
    expected = "expected a share of the target between 0 and 1, e.g. 0.8 (not a percentage)"
    share = _number(value, expected)
    if not 0 < share < 1:
        raise ValueError(expected)
    return share


def _number(value: str, expected: str) -> float:
    """float() with our message: Python's own ("could not convert string to float") names no unit."""
    try:
        return float(value)
    except ValueError:
        raise ValueError(expected) from None


def parse_count(value: str) -> int:
    if not value.isdigit():
        raise ValueError("expected a whole number, 0 or more")
    return int(value)


def choice(*allowed: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.lower() not in allowed:
            raise ValueError("expected one of " + ", ".join(allowed))
        return value.lower()

    return check


def address(value: str) -> str:
    if not _ADDRESS_RE.match(value):
        raise ValueError("expected one mail address such as support@example.com")
    return value


def alert_address(value: str, product_addresses: set[str]) -> str:
    if value.lower() in {a.lower() for a in product_addresses}:
        raise ValueError("alerts must not go to a product's own address (that would start a loop)")
    return address(value)


def authserv_id(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
        raise ValueError(
            "expected the name your mail server writes first in its Authentication-Results"
            " header, e.g. mx.example.com"
        )
    return value.lower()


def parse_moment(value: str) -> datetime | None:
    """An ISO 8601 date or date-time (UTC unless it names an offset); "" for none."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO date-time, e.g. 2026-11-01T00:00:00+01:00 or 2026-11-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def listen_address(value: str) -> tuple[str, int] | None:
    """`HOST:PORT`, `[IPv6]:PORT` or a bare `PORT` (on 127.0.0.1); "" for none."""
    if not value:
        return None
    host, colon, port = value.rpartition(":")
    if not colon:
        host = "127.0.0.1"
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536 or (colon and not host):
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9464")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def domain(value: str) -> str:
    if not re.fullmatch(
        r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*", value
    ):
        raise ValueError("expected a domain name such as support.example.com")
    return value


def server_url(*schemes: str) -> Callable[[str], str]:
    """A URL of one of `schemes` naming a host (and a numeric port if any); "" for none. Only the
    shape is checked here; the transport or source reads the rest when it connects. A message
    never repeats the URL, which may hold a password."""

    def check(value: str) -> str:
        if not value:
            return value
        expected = f"expected {' or '.join(f'{s}://' for s in schemes)}HOST[:PORT]"
        parts = urlsplit(value)
        if parts.scheme.lower() not in schemes or not parts.hostname:
            raise ValueError(expected)
        try:
            parts.port  # noqa: B018 - read for its ValueError on a port that is not a number
        except ValueError:
            raise ValueError(f"the port is not a number; {expected}") from None
        return value

    return check


def database_url(value: str) -> str:
    if value and not value.startswith("sqlite:///") and not re.match(r"^[A-Za-z][A-Za-z0-9+]*://[^/]", value):
        raise ValueError("expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST/NAME")
    return value


# --- OAuth2 (mailbot.oauth) -------------------------------------------------------------------

# Per product (MAILBOT_PRODUCT_<KEY>_OAUTH_<SUFFIX>) and for sending (MAILBOT_SMTP_OAUTH_<SUFFIX>).
OAUTH_SUFFIXES = (
    "PROVIDER",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "TENANT",
    "FLOW",
    "TOKEN_URL",
    "DEVICE_URL",
    "AUTH_URL",
    "SCOPE",
    "SERVICE_ACCOUNT",
)
_FLOWS = {
    "microsoft": ("client_credentials", "device_code"),
    "google": ("service_account", "installed_app"),
    "generic": ("client_credentials", "device_code", "installed_app"),
}
# The flows in which a person signs in once (`mailbot oauth login NAME`) and mailbot then lives on
# the refresh token.
SIGN_IN_FLOWS = ("device_code", "installed_app")


@dataclass(frozen=True)
class OAuthSettings:
    """How one mailbox (or the SMTP login) gets its OAuth2 tokens (mailbot.oauth). `name` is the
    product key, or SMTP; it names the token file and `mailbot oauth login NAME`."""

    name: str
    provider: str  # microsoft | google | generic
    flow: str  # client_credentials | device_code | installed_app | service_account (google)
    client_id: str
    client_secret: str = field(default="", repr=False)
    tenant: str = ""
    token_url: str = ""
    device_url: str = ""
    auth_url: str = ""  # generic installed_app: the authorization endpoint
    scope: str = ""
    service_account: Path | None = None


def load_oauth(get: Callable[[str], str], name: str, prefix: str) -> OAuthSettings | None:
    """The OAuth2 settings behind `<prefix>AUTH=oauth2`, None for `password`; ValueError names
    the key that is wrong."""
    auth = get(prefix + "AUTH").lower()
    if auth not in ("password", "oauth2"):
        raise ValueError(f"{prefix}AUTH={auth!r}: expected password or oauth2")
    if auth == "password":
        return None
    key = prefix + "OAUTH_"
    provider = get(key + "PROVIDER").lower()
    if provider not in _FLOWS:
        raise ValueError(f"{key}PROVIDER={provider!r}: expected microsoft, google or generic")
    flow = get(key + "FLOW").lower() or _FLOWS[provider][0]
    if flow not in _FLOWS[provider]:
        raise ValueError(f"{key}FLOW={flow!r}: {provider} takes {' or '.join(_FLOWS[provider])}")
    settings = OAuthSettings(
        name=name,
        provider=provider,
        flow=flow,
        client_id=get(key + "CLIENT_ID"),
        client_secret=get(key + "CLIENT_SECRET"),
        tenant=get(key + "TENANT"),
        token_url=get(key + "TOKEN_URL"),
        device_url=get(key + "DEVICE_URL"),
        auth_url=get(key + "AUTH_URL"),
        scope=get(key + "SCOPE"),
        service_account=Path(get(key + "SERVICE_ACCOUNT")) if get(key + "SERVICE_ACCOUNT") else None,
    )
    _check_oauth(settings, key)
    return settings


def _check_oauth(settings: OAuthSettings, key: str) -> None:
    if settings.flow == "service_account":
        if settings.service_account is None or not settings.service_account.is_file():
            raise ValueError(f"{key}SERVICE_ACCOUNT: the service account's JSON key file is needed")
        return
    if not settings.client_id:
        raise ValueError(f"{key}CLIENT_ID is not set: the application (client) id of the app registration")
    if settings.flow == "client_credentials" and not settings.client_secret:
        raise ValueError(f"{key}CLIENT_SECRET is not set: client_credentials needs the app's secret")
    if settings.provider == "google" and settings.flow == "installed_app" and not settings.client_secret:
        raise ValueError(
            f"{key}CLIENT_SECRET is not set: Google's desktop-app client has one (it is not secret there)"
        )
    if settings.provider == "microsoft" and not settings.tenant:
        raise ValueError(f"{key}TENANT is not set: the Microsoft 365 tenant id or domain")
    if settings.provider != "generic":
        return
    endpoint = {"device_code": ["DEVICE_URL"], "installed_app": ["AUTH_URL"]}.get(settings.flow, [])
    needed = ["TOKEN_URL", *endpoint]
    for suffix in needed:
        url = getattr(settings, suffix.lower())
        parts = urlsplit(url)
        if not url or parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{key}{suffix}={url!r}: expected an https:// URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError(f"{key}{suffix}={url!r}: tokens travel only over https:// (http on loopback)")
