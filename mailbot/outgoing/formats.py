"""How values read in each language: moments and days written the way the recipient's language
writes them (Babel, from the Unicode CLDR data), and the desk's name as it signs its mail.

Pure functions of plain values. The outbox keeps a moment in its machine form (ISO 8601 with the
offset) in a mail's context; the templates turn it into words when the mail is rendered, through
the `datetime` and `date` filters that `mailbot.outgoing.render` registers. The desk's name is used both
there (the signature) and by `mailbot.outgoing.notify` (the From header), so that both say the same.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date, format_time, get_timezone_name

# The desk's name in each language when the product's name is just the product: "VISI" is
# "VISI Support" in English and "Support VISI" in Dutch and French.
_DESK_NAME = {"en": "{name} Support", "nl": "Support {name}", "fr": "Support {name}"}


def desk_name(product_name: str, language: str) -> str:
    """The name the desk signs with and sends from. A product named with the word already
    ("Generic Support") keeps its name as it is, in every language."""
    if "support" in product_name.lower():
        return product_name
    return _DESK_NAME.get(language, _DESK_NAME["en"]).format(name=product_name)


def machine_moment(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment as a mail's context keeps it: ISO 8601 with its offset and, in brackets, the
    time zone it is read in (RFC 9557): "2026-03-04T10:12:00+01:00[Europe/Brussels]"."""
    if moment is None:
        return ""
    return f"{moment.astimezone(zone).isoformat()}[{zone.key}]"


def format_moment(value: str, language: str) -> str:
    """A moment kept by `machine_moment` as the language writes it, with the time zone:
    "4 maart 2026, 10:12 CET", "March 4, 2026, 10:12 AM +0100". The date is CLDR's long date,
    the time its short time (a deadline has no seconds), joined by the locale's own pattern.
    Text that is not such a moment (a draft queued before moments were kept in machine form) is
    returned as it is."""
    stamp, _, zone = value.partition("[")
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    tz = _zone(zone.rstrip("]"))
    if tz is not None:
        moment = moment.astimezone(tz)
    locale = Locale.parse(language)
    joined = locale.datetime_formats["long"].format(
        format_time(moment, "short", locale=locale), format_date(moment, "long", locale=locale)
    )
    return f"{joined} {get_timezone_name(moment, width='short', locale=locale)}"


def format_day(value: str, language: str) -> str:
    """An ISO 8601 date as the language writes it in full: "31 december 2026"."""
    if not value:
        return ""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return value
    return format_date(day, "long", locale=Locale.parse(language))


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None
