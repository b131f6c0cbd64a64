"""Public holidays by country and region, from the `holidays` library (vacanza/holidays), behind
two functions: `check_region` reads a code such as `NL` or `DE-BY`, `holidays_in` gives one year's
public holidays with their names. Nothing else in mailbot imports the library.

Only the library's PUBLIC category is used (the default): days the law closes, not optional or
school holidays. Its Dutch list, for example, has Good Friday, and Liberation Day (5 May) only in
the years the law closes it (every fifth year, 2025 and 2030).
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from types import MappingProxyType

Region = tuple[str, str | None]
"""(country, subdivision): ("NL", None), ("DE", "BY")."""

_CODE_RE = re.compile(r"([A-Za-z]{2})(?:-([A-Za-z0-9]{1,3}))?")


def looks_like_region(text: str) -> bool:
    """Whether `text` is written as a country or region code (not whether the library knows it)."""
    return _CODE_RE.fullmatch(text) is not None


def check_region(text: str) -> Region:
    """Read `NL`, `nl` or `DE-BY` into a Region the library knows; ValueError otherwise."""
    match = _CODE_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a country code; expected e.g. NL, BE, FR or DE-BY")
    country, subdivision = match[1].upper(), match[2].upper() if match[2] else None
    try:
        # Not list_supported_countries(), which imports every country's module (a tenth of a second).
        import holidays  # here: the library costs every start, and most calendars use none

        known = holidays.country_holidays(country)
    except NotImplementedError:
        raise ValueError(
            f"{text!r}: no public holidays are known for country {country}; expected an ISO 3166 code "
            "such as NL, BE, FR or DE-BY"
        ) from None
    regions = tuple(known.subdivisions)
    if subdivision is not None and subdivision not in regions:
        listed = ", ".join(f"{country}-{code}" for code in regions[:12]) or "none"
        raise ValueError(f"{text!r}: {country} has no region {subdivision}; expected one of {listed}")
    return country, subdivision


@lru_cache(maxsize=256)
def holidays_in(region: Region, year: int) -> MappingProxyType[date, str]:
    """The public holidays of `region` in `year`: date -> name (names joined by '; ' where two
    fall on one day). Cached: a deadline computation asks for the same year many times."""
    country, subdivision = region
    import holidays

    found = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return MappingProxyType(dict(found.items()))
