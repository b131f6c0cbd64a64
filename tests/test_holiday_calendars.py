"""Holidays that move every year (Easter, Ascension, Whit Monday) followed without an edit:
`MAILBOT_PRODUCT_<KEY>_HOLIDAYS=NL` closes the desk on the Dutch public holidays, here checked
against a list written by hand for 2026 and 2027, and the SLA clock stands still on them."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from mailbot.config import load_settings
from mailbot.errors import ConfigError
from mailbot.sla.calendar import add_business_time, is_open, upcoming_holidays
from mailbot.sla.notation import make_calendar
from tests.helpers.desks import Clock, at, open_desk, open_ticket, person
from tests.helpers.site import make_site

HOUR = timedelta(hours=1)
PRODUSOFT_HOURS = "mon-thu 08:30-12:30,13:00-17:00; fri 08:30-12:30,13:00-16:00"

# The Dutch public holidays, from the calendar on the wall (Easter: 5 April 2026, 28 March
# 2027). The holidays library counts Good Friday among them; Liberation Day (5 May) is a public
# holiday only every fifth year (2025, 2030), so it is in neither year.
DUTCH_HOLIDAYS = {
    2026: [
        date(2026, 1, 1),  # Nieuwjaarsdag
        date(2026, 4, 3),  # Goede Vrijdag
        date(2026, 4, 5),  # Eerste Paasdag
        date(2026, 4, 6),  # Tweede Paasdag
        date(2026, 4, 27),  # Koningsdag (a Monday)
        date(2026, 5, 14),  # Hemelvaartsdag: Easter + 39 days
        date(2026, 5, 24),  # Eerste Pinksterdag: Easter + 49 days
        date(2026, 5, 25),  # Tweede Pinksterdag
        date(2026, 12, 25),  # Eerste Kerstdag
        date(2026, 12, 26),  # Tweede Kerstdag
    ],
    2027: [
        date(2027, 1, 1),
        date(2027, 3, 26),  # Goede Vrijdag
        date(2027, 3, 28),
        date(2027, 3, 29),  # Tweede Paasdag
        date(2027, 4, 27),  # Koningsdag (a Tuesday)
        date(2027, 5, 6),  # Hemelvaartsdag
        date(2027, 5, 16),
        date(2027, 5, 17),  # Tweede Pinksterdag
        date(2027, 12, 25),
        date(2027, 12, 26),
    ],
}


def dutch_calendar(holidays: str = "NL"):
    return make_calendar("Europe/Amsterdam", PRODUSOFT_HOURS, holidays)


@pytest.mark.parametrize("year", sorted(DUTCH_HOLIDAYS))
def test_the_dutch_calendar_closes_exactly_the_dutch_public_holidays(year):
    calendar = dutch_calendar()
    days = [date(year, 1, 1) + timedelta(days=n) for n in range(366)]
    closed = [day for day in days if day.year == year and day in calendar.holidays]
    assert closed == DUTCH_HOLIDAYS[year]


def test_country_codes_combine_with_dates_and_yearly_days():
    calendar = dutch_calendar("NL,12-24,2026-12-31")
    listed = upcoming_holidays(calendar, date(2026, 12, 20), 6)
    assert [day for day, _ in listed] == [
        date(2026, 12, 24),  # every year, from the setting
        date(2026, 12, 25),
        date(2026, 12, 26),
        date(2026, 12, 31),  # that date, from the setting
        date(2027, 1, 1),
        date(2027, 3, 26),
    ]
    assert dict(listed)[date(2026, 12, 25)] == "Christmas Day (NL)"
    assert date(2027, 12, 24) in calendar.holidays and date(2027, 12, 31) not in calendar.holidays


def test_a_region_has_its_own_holidays():
    # Epiphany (6 January) is a holiday in Bavaria, not in Berlin; neither is one in the Netherlands.
    assert date(2027, 1, 6) in make_calendar("Europe/Berlin", "mon-fri 09:00-17:00", "DE-BY").holidays
    assert date(2027, 1, 6) not in make_calendar("Europe/Berlin", "mon-fri 09:00-17:00", "DE-BE").holidays
    assert date(2027, 1, 6) not in dutch_calendar().holidays


def test_the_desk_is_shut_on_easter_monday_and_open_the_day_after():
    calendar = dutch_calendar()
    assert not is_open(calendar, at("2026-04-06 10:00", "Europe/Amsterdam"))
    assert is_open(calendar, at("2026-04-07 10:00", "Europe/Amsterdam"))


def test_an_sla_deadline_skips_good_friday_and_easter_monday(tmp_path):
    # High (24 h of business time) from Thursday 2 April 2026 16:00 Amsterdam: Thursday 1 h;
    # Friday 3 April (Good Friday) and Monday 6 April (Easter Monday) closed; Tuesday 8 h (9 h),
    # Wednesday 8 h (17 h), Thursday 9 April 08:30-12:30 (21 h) and 13:00-16:00 (24 h).
    with open_desk(tmp_path, Clock(at("2026-04-02 14:00")), VISI_HOLIDAYS="NL") as desk:
        customer = person("jan@klant.test", "VISI")
        ticket = open_ticket(desk, "VISI", customer, at("2026-04-02 16:00", "Europe/Amsterdam"), "high")
        assert ticket.due_resolution == at("2026-04-09 16:00", "Europe/Amsterdam")
        # The first answer (1 h) is due by Thursday's closing time, before the long weekend.
        assert ticket.due_first_response == at("2026-04-02 17:00", "Europe/Amsterdam")
    # Without the Dutch holidays: Thursday 1 h, Friday 7 h (8 h), Monday 8 h (16 h), Tuesday 8 h.
    without = add_business_time(dutch_calendar(""), at("2026-04-02 16:00", "Europe/Amsterdam"), 24 * HOUR)
    assert without == at("2026-04-07 17:00", "Europe/Amsterdam")


def test_whit_monday_and_ascension_move_with_easter_in_2027(tmp_path):
    # Medium (48 h) from Wednesday 5 May 2027 09:00: Wednesday 3.5 h + 4 h; Ascension Thursday
    # closed; Friday 7 h (14.5 h); Monday-Thursday 10-13 May 32 h (46.5 h); Friday 14 May
    # 08:30-10:00 (48 h).
    calendar = dutch_calendar()
    due = add_business_time(calendar, at("2027-05-05 09:00", "Europe/Amsterdam"), 48 * HOUR)
    assert due == at("2027-05-14 10:00", "Europe/Amsterdam")
    # From Friday 14 May 15:00, 2 h: Friday 1 h, Whit Monday closed, Tuesday 08:30 + 1 h.
    due = add_business_time(calendar, at("2027-05-14 15:00", "Europe/Amsterdam"), 2 * HOUR)
    assert due == at("2027-05-18 09:30", "Europe/Amsterdam")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("XX", "'XX': no public holidays are known for country XX"),
        ("NL,12-24,DE-ZZ", "'DE-ZZ': DE has no region ZZ"),
        ("NL;BE", "'NL;BE' is not a holiday"),
    ],
)
def test_a_bad_code_is_one_line_naming_the_value(tmp_path, value, says):
    env = {
        "MAILBOT_DATA_DIR": str(tmp_path),
        "MAILBOT_PRODUCTS": "VISI",
        "MAILBOT_PRODUCT_VISI_ADDRESS": "visi.support@produsoft.test",
        "MAILBOT_PRODUCT_VISI_HOLIDAYS": value,
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith(f"MAILBOT_PRODUCT_VISI_HOLIDAYS={value!r}: ") and says in message
    assert "\n" not in message


def test_an_admin_checks_the_calendar_with_product_show(tmp_path):
    site = make_site(
        tmp_path,
        {
            "VISI": {
                "address": "visi.support@produsoft.test",
                "timezone": "Europe/Amsterdam",
                "hours": PRODUSOFT_HOURS,
                "holidays": "NL,12-24,2026-12-31",
                "mailbox": "imaps://visi:s3cret@mail.produsoft.test/INBOX",
            }
        },
    )
    shown = json.loads(site.mailbot("product", "show", "visi", "--from", "2026-12-23", "--json").stdout)
    assert [h["date"] for h in shown["next_holidays"][:5]] == [
        "2026-12-24",
        "2026-12-25",
        "2026-12-26",
        "2026-12-31",
        "2027-01-01",
    ]
    assert shown["holidays"] == "NL,12-24,2026-12-31" and shown["timezone"] == "Europe/Amsterdam"
    # Wednesday 23rd, then closed from Christmas Eve to Sunday; open again on Monday 28th.
    assert [(p["from"], p["until"]) for p in shown["next_openings"][:3]] == [
        ("2026-12-23T08:30:00+01:00", "2026-12-23T12:30:00+01:00"),
        ("2026-12-23T13:00:00+01:00", "2026-12-23T17:00:00+01:00"),
        ("2026-12-28T08:30:00+01:00", "2026-12-28T12:30:00+01:00"),
    ]
    text = site.mailbot("product", "show", "VISI", "--from", "2026-12-23").stdout
    assert "2026-12-25  Christmas Day (NL)" in text and "Mon 2026-12-28 08:30 - 12:30" in text
    assert "s3cret" not in text and "imaps://mail.produsoft.test/INBOX" in text
