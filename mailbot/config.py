"""Configuration: `MAILBOT_*` keys read once into frozen settings, validated with messages that
name the key and what is wrong.

Every key mailbot reads is declared in `GLOBAL_KEYS` or `PRODUCT_KEYS` below and documented in
`config.example.env` (a test holds the two together). Values come from the `.env` file given with
`--env-file` (else `./.env`), with the process environment taking precedence. Nothing here opens
a connection; `mailbot check` does that.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from mailbot.config_values import (
    OAUTH_SUFFIXES,
    OAuthSettings,
    address,
    alert_address,
    authserv_id,
    choice,
    database_url,
    domain,
    is_loopback,
    listen_address,
    load_oauth,
    parse_bool,
    parse_count,
    parse_moment,
    parse_seconds,
    parse_share,
    parse_size,
    server_url,
)
from mailbot.errors import ConfigError
from mailbot.sla import notation
from mailbot.sla.calendar import Calendar
from mailbot.vocabulary import Language, values

# key -> default ("" = unset). Product keys are MAILBOT_PRODUCT_<KEY>_<SUFFIX>.
GLOBAL_KEYS: dict[str, str] = {
    "MAILBOT_PRODUCTS": "",
    "MAILBOT_DATA_DIR": "./var",
    "MAILBOT_DATABASE_URL": "",
    "MAILBOT_RETENTION_RAW": "",
    "MAILBOT_SMTP_URL": "",
    "MAILBOT_SMTP_AUTH": "password",
    **{f"MAILBOT_SMTP_OAUTH_{suffix}": "" for suffix in OAUTH_SUFFIXES},
    "MAILBOT_MAIL_DOMAIN": "",
    "MAILBOT_CA_FILE": "",
    "MAILBOT_TRUSTED_AUTHSERV_ID": "",
    "MAILBOT_LOG_LEVEL": "INFO",
    "MAILBOT_LOG_FORMAT": "text",
    "MAILBOT_METRICS": "",
    "MAILBOT_METRICS_ALLOW_REMOTE": "false",
    "MAILBOT_UNREACHABLE_ALERT": "30m",
    "MAILBOT_POLL_INTERVAL": "60",
    "MAILBOT_OUTBOX_INTERVAL": "15",
    "MAILBOT_IO_TIMEOUT": "60",
    "MAILBOT_MAX_MESSAGE_SIZE": "25M",
    "MAILBOT_FORWARD_ATTACHMENTS_MAX": "10M",
    "MAILBOT_OUTBOX_GIVE_UP": "48h",
    "MAILBOT_ALERT_ADDRESS": "",
    # Loop and flood limits (mailbot.desk.caps): see config.example.env for where the defaults come from.
    "MAILBOT_ACK_LIMIT": "3",
    "MAILBOT_AUTOMATIC_LIMIT": "40",
    "MAILBOT_FLOOD_LIMIT": "20",
    "MAILBOT_FLOOD_WINDOW": "2h",
    "MAILBOT_ACK_CUTOVER": "",
    "MAILBOT_DB_BUSY_TIMEOUT": "10",
    # Several daemons on PostgreSQL: a mailbox whose daemon stopped renewing is taken over after this.
    "MAILBOT_LEASE_TIME": "60",
}
PRODUCT_KEYS: dict[str, str] = {
    "ADDRESS": "",
    "NAME": "",
    "MAILBOX": "",
    "PREFIX": "",
    "UNKNOWN_SENDERS": "reject",
    "CONTRACT_REQUIRED": "false",
    "CONTRACT_POLICY": "refuse",
    "LANGUAGE": "en",
    "TEMPLATES": "",
    "PROCESSED_FOLDER": "",
    "TIMEZONE": "UTC",
    "HOURS": "mon-fri 09:00-18:00",
    "HOLIDAYS": "",
    "SLA": "critical=4h,high=24h,medium=48h,low=72h",
    "FIRST_RESPONSE": "1h",
    "SLA_WARNING": "0.8",
    "REMINDER_DAYS": "3",
    "AUTO_CLOSE_DAYS": "7",
    "ESCALATION_ADDRESS": "",
    "CREDIT_LOW": "60",
    "SILENCE_ALERT": "",
    "AUTH": "password",
    **{f"OAUTH_{suffix}": "" for suffix in OAUTH_SUFFIXES},
}

LANGUAGES = values(Language)
_PRODUCT_KEY_RE = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")


@dataclass(frozen=True)
class ProductSettings:
    key: str
    name: str
    address: str
    mailbox: str
    prefix: str
    unknown_senders: str
    contract_required: bool
    contract_policy: str
    language: str
    templates: Path | None
    processed_folder: str
    calendar: Calendar
    sla: Mapping[str, timedelta]
    first_response: timedelta
    # The scheduler's promises (mailbot.desk.jobs) and the credit warning (mailbot.desk.credit). Defaults
    # here too, so code that builds a ProductSettings by hand keeps working.
    sla_warning: float = 0.8
    reminder_days: int = 3
    auto_close_days: int = 7
    escalation_address: str = ""
    credit_low: int = 60
    silence_alert: timedelta | None = None  # alert when no mail came for this long; None: never
    oauth: OAuthSettings | None = None  # None: the mailbox URL's password logs in


@dataclass(frozen=True)
class MailLimits:
    """How much automatic mail mailbot sends, and when it folds a flood (`mailbot.desk.caps`)."""

    ack_limit: int = 3  # acknowledgements per sender and product in 24 h
    automatic_limit: int = 40  # automatic mails per recipient in 24 h (the product's staff excepted)
    flood_limit: int = 20  # new tickets per sender and product within flood_window; more are folded
    flood_window: timedelta = timedelta(hours=2)
    cutover: datetime | None = None  # mail that arrived earlier answers nothing; None: database birth


@dataclass(frozen=True)
class Settings:
    products: tuple[ProductSettings, ...]
    data_dir: Path
    database_url: str
    smtp_url: str
    mail_domain: str
    ca_file: Path | None
    log_level: str
    poll_interval: float
    outbox_interval: float
    io_timeout: float
    max_message_size: int
    outbox_give_up: timedelta
    alert_address: str
    db_busy_timeout: float = 10.0
    trusted_authserv_id: str = ""  # "" = engineers' commands are trusted without checking
    limits: MailLimits = field(default_factory=MailLimits)
    log_format: str = "text"  # or "json": one JSON object per line
    forward_attachments_max: int = 10 * 1024 * 1024  # bytes of attachments one mail carries on
    metrics: tuple[str, int] | None = None  # where Prometheus metrics are served; None: nowhere
    unreachable_alert: timedelta | None = timedelta(minutes=30)  # None: never
    # One line per MAILBOT_ key that is set but read by nothing (a typo, most often): the daemon
    # logs them as warnings when it starts, `mailbot check` fails on them.
    unknown_keys: tuple[str, ...] = ()
    retention_raw: timedelta | None = None  # raw mails of tickets closed this long ago go; None: kept
    smtp_oauth: OAuthSettings | None = None  # None: the SMTP URL's password (if any) logs in
    lease_time: float = 60.0  # seconds; a mailbox lease on a server database (mailbot.service.leases)
    product_by_key: Mapping[str, ProductSettings] = field(repr=False, default_factory=dict)

    def product(self, key: str) -> ProductSettings:
        try:
            return self.product_by_key[key.upper()]
        except KeyError:
            known = ", ".join(self.product_by_key) or "none"
            raise ConfigError(f"unknown product {key!r} (configured: {known})") from None

    @property
    def own_addresses(self) -> frozenset[str]:
        return frozenset(p.address.lower() for p in self.products)


class _Reader:
    """Reads declared keys only, so that every key the code uses is documented."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def get(self, key: str) -> str:
        if key in GLOBAL_KEYS:
            default = GLOBAL_KEYS[key]
        else:
            suffix = key.split("_", 3)[-1]
            if not key.startswith("MAILBOT_PRODUCT_") or suffix not in PRODUCT_KEYS:
                raise KeyError(f"undeclared configuration key {key}")
            default = PRODUCT_KEYS[suffix]
        return self.env.get(key, "").strip() or default

    def parse(self, key: str, convert: Callable[[str], object], *, secret: bool = False) -> object:
        """`convert` applied to the key's value; its ValueError becomes a ConfigError naming the
        key and the value (not the value of a key that may hold a password)."""
        value = self.get(key)
        try:
            return convert(value)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{key}: {exc}" if secret else f"{key}={value!r}: {exc}") from None


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate `env` into Settings; raises ConfigError naming the first wrong key."""
    read = _Reader(env)
    keys = [k.strip().upper() for k in read.get("MAILBOT_PRODUCTS").split(",") if k.strip()]
    if not keys:
        raise ConfigError("MAILBOT_PRODUCTS is not set: name at least one product, e.g. VISI")
    for key in keys:
        if not _PRODUCT_KEY_RE.match(key):
            raise ConfigError(f"MAILBOT_PRODUCTS: {key!r} is not a product key (A-Z, 0-9)")
    data_dir = Path(read.get("MAILBOT_DATA_DIR")).expanduser().resolve()
    products = tuple(_load_product(read, key, data_dir) for key in keys)
    _check_unique(products)
    ca_file = read.get("MAILBOT_CA_FILE")
    if ca_file and not Path(ca_file).is_file():
        raise ConfigError(f"MAILBOT_CA_FILE={ca_file!r}: no such file")
    mail_domain = str(read.parse("MAILBOT_MAIL_DOMAIN", lambda v: v and domain(v)))
    mail_domain = mail_domain or products[0].address.rsplit("@", 1)[1]
    return Settings(
        products=products,
        data_dir=data_dir,
        database_url=str(read.parse("MAILBOT_DATABASE_URL", database_url, secret=True))
        or f"sqlite:///{data_dir}/mailbot.db",
        smtp_url=str(read.parse("MAILBOT_SMTP_URL", server_url("smtp", "smtps"), secret=True)),
        mail_domain=mail_domain.lower(),
        ca_file=Path(ca_file) if ca_file else None,
        log_level=str(read.parse("MAILBOT_LOG_LEVEL", choice("debug", "info", "warning", "error"))).upper(),
        poll_interval=float(read.parse("MAILBOT_POLL_INTERVAL", parse_seconds)),  # type: ignore[arg-type]
        outbox_interval=float(read.parse("MAILBOT_OUTBOX_INTERVAL", parse_seconds)),  # type: ignore[arg-type]
        io_timeout=float(read.parse("MAILBOT_IO_TIMEOUT", parse_seconds)),  # type: ignore[arg-type]
        max_message_size=int(read.parse("MAILBOT_MAX_MESSAGE_SIZE", parse_size)),  # type: ignore[call-overload]
        forward_attachments_max=int(read.parse("MAILBOT_FORWARD_ATTACHMENTS_MAX", parse_size)),  # type: ignore[call-overload]
        outbox_give_up=read.parse("MAILBOT_OUTBOX_GIVE_UP", notation.parse_duration),  # type: ignore[arg-type]
        alert_address=str(read.parse("MAILBOT_ALERT_ADDRESS", lambda v: v and _alert(v, products))),
        db_busy_timeout=float(read.parse("MAILBOT_DB_BUSY_TIMEOUT", parse_seconds)),  # type: ignore[arg-type]
        trusted_authserv_id=str(read.parse("MAILBOT_TRUSTED_AUTHSERV_ID", authserv_id)),
        limits=_load_limits(read),
        log_format=str(read.parse("MAILBOT_LOG_FORMAT", choice("text", "json"))),
        metrics=_load_metrics(read),
        unreachable_alert=read.parse("MAILBOT_UNREACHABLE_ALERT", _optional_duration),  # type: ignore[arg-type]
        unknown_keys=find_unknown_keys(env, keys),
        retention_raw=read.parse("MAILBOT_RETENTION_RAW", _optional_duration),  # type: ignore[arg-type]
        smtp_oauth=_oauth(read, "SMTP", "MAILBOT_SMTP_"),
        lease_time=float(read.parse("MAILBOT_LEASE_TIME", parse_seconds)),  # type: ignore[arg-type]
        product_by_key={p.key: p for p in products},
    )


def find_unknown_keys(env: Mapping[str, str], products: list[str]) -> tuple[str, ...]:
    """A line for each MAILBOT_ key in `env` that no setting reads, naming the closest known key
    of the configured products (difflib's ratio, as `git` suggests a misspelt command)."""
    known = [*GLOBAL_KEYS, *(f"MAILBOT_PRODUCT_{p}_{suffix}" for p in products for suffix in PRODUCT_KEYS)]
    lines = []
    for key in sorted(k for k in env if k.startswith("MAILBOT_") and k not in known):
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "see config.example.env for the settings"
        product, _, suffix = key.removeprefix("MAILBOT_PRODUCT_").partition("_")
        if key.startswith("MAILBOT_PRODUCT_") and suffix in PRODUCT_KEYS:
            hint = f"product {product} is not in MAILBOT_PRODUCTS ({', '.join(products)})"
        lines.append(f"{key} is not a setting mailbot knows; {hint}")
    return tuple(lines)


def _oauth(read: _Reader, name: str, prefix: str) -> OAuthSettings | None:
    try:
        return load_oauth(read.get, name, prefix)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _optional_duration(value: str) -> timedelta | None:
    return None if value in ("", "never") else notation.parse_duration(value)


def _load_metrics(read: _Reader) -> tuple[str, int] | None:
    where: tuple[str, int] | None = read.parse("MAILBOT_METRICS", listen_address)  # type: ignore[assignment]
    allow_remote = read.parse("MAILBOT_METRICS_ALLOW_REMOTE", parse_bool)
    if where is not None and not is_loopback(where[0]) and not allow_remote:
        raise ConfigError(
            f"MAILBOT_METRICS={read.get('MAILBOT_METRICS')!r}: {where[0]} is not a loopback address, so "
            "anyone on the network could read the metrics; bind 127.0.0.1 and scrape through a proxy "
            "or SSH tunnel, or set MAILBOT_METRICS_ALLOW_REMOTE=true"
        )
    return where


def _alert(value: str, products: tuple[ProductSettings, ...]) -> str:
    return alert_address(value, {p.address for p in products})


def _load_product(read: _Reader, key: str, data_dir: Path) -> ProductSettings:
    def name(suffix: str) -> str:
        return f"MAILBOT_PRODUCT_{key}_{suffix}"

    if not read.get(name("ADDRESS")):
        raise ConfigError(f"{name('ADDRESS')} is not set: the product's support address")
    calendar = _load_calendar(read, name)
    templates = read.get(name("TEMPLATES"))
    if templates and not Path(templates).is_dir():
        raise ConfigError(f"{name('TEMPLATES')}={templates!r}: no such folder")
    prefix = read.get(name("PREFIX")) or key
    if not _PRODUCT_KEY_RE.match(prefix.upper()):
        raise ConfigError(f"{name('PREFIX')}={prefix!r}: expected letters and digits, e.g. {key}")
    return ProductSettings(
        key=key,
        name=read.get(name("NAME")) or key,
        address=str(read.parse(name("ADDRESS"), address)),
        mailbox=_mailbox_url(read.get(name("MAILBOX")), name("MAILBOX"), data_dir / "maildirs" / key),
        prefix=prefix.upper(),
        unknown_senders=str(read.parse(name("UNKNOWN_SENDERS"), choice("reject", "open"))),
        contract_required=bool(read.parse(name("CONTRACT_REQUIRED"), parse_bool)),
        contract_policy=str(read.parse(name("CONTRACT_POLICY"), choice("refuse", "flag"))),
        language=str(read.parse(name("LANGUAGE"), choice(*LANGUAGES))),
        templates=Path(templates) if templates else None,
        processed_folder=read.get(name("PROCESSED_FOLDER")),
        calendar=calendar,
        sla=read.parse(name("SLA"), notation.parse_sla),  # type: ignore[arg-type]
        first_response=read.parse(name("FIRST_RESPONSE"), notation.parse_duration),  # type: ignore[arg-type]
        sla_warning=float(read.parse(name("SLA_WARNING"), parse_share)),  # type: ignore[arg-type]
        reminder_days=int(read.parse(name("REMINDER_DAYS"), parse_count)),  # type: ignore[call-overload]
        auto_close_days=int(read.parse(name("AUTO_CLOSE_DAYS"), parse_count)),  # type: ignore[call-overload]
        escalation_address=str(read.parse(name("ESCALATION_ADDRESS"), lambda v: v and address(v))),
        credit_low=int(read.parse(name("CREDIT_LOW"), parse_count)),  # type: ignore[call-overload]
        silence_alert=read.parse(name("SILENCE_ALERT"), _optional_duration),  # type: ignore[arg-type]
        oauth=_oauth(read, key, f"MAILBOT_PRODUCT_{key}_"),
    )


def _load_calendar(read: _Reader, name: Callable[[str], str]) -> Calendar:
    # Parse hours and holidays on their own first, so an error names the key that is wrong.
    read.parse(name("HOURS"), notation.parse_hours)
    read.parse(name("HOLIDAYS"), notation.parse_holidays)
    hours, holidays = read.get(name("HOURS")), read.get(name("HOLIDAYS"))
    return read.parse(  # type: ignore[return-value]
        name("TIMEZONE"), lambda tz: notation.make_calendar(tz, hours, holidays)
    )


def _mailbox_url(value: str, key: str, default_dir: Path) -> str:
    if not value:
        return f"maildir://{default_dir}"
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in ("imap", "imaps", "maildir"):
        raise ConfigError(f"{key}: expected imap://, imaps:// or maildir:// (got {scheme or 'no scheme'})")
    if scheme != "maildir":
        try:
            server_url("imap", "imaps")(value)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None  # never the URL: it may hold the password
    return value


def _check_unique(products: tuple[ProductSettings, ...]) -> None:
    seen: dict[str, str] = {}
    for product in products:
        for what, value in (("ADDRESS", product.address.lower()), ("PREFIX", product.prefix)):
            other = seen.get(f"{what}:{value}")
            if other:
                raise ConfigError(
                    f"MAILBOT_PRODUCT_{product.key}_{what} is the same as {other}'s; "
                    "each product needs its own"
                )
            seen[f"{what}:{value}"] = product.key


def _load_limits(read: _Reader) -> MailLimits:
    return MailLimits(
        ack_limit=int(read.parse("MAILBOT_ACK_LIMIT", parse_count)),  # type: ignore[call-overload]
        automatic_limit=int(read.parse("MAILBOT_AUTOMATIC_LIMIT", parse_count)),  # type: ignore[call-overload]
        flood_limit=int(read.parse("MAILBOT_FLOOD_LIMIT", parse_count)),  # type: ignore[call-overload]
        flood_window=read.parse("MAILBOT_FLOOD_WINDOW", notation.parse_duration),  # type: ignore[arg-type]
        cutover=read.parse("MAILBOT_ACK_CUTOVER", parse_moment),  # type: ignore[arg-type]
    )
