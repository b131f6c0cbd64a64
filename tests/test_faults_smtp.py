"""Outgoing mail when the SMTP server misbehaves, on a real aiosmtpd server told to fail: down,
silent, greylisting (4xx: retried with a growing delay), refusing (5xx: never retried, recorded
on the ticket, only the refused recipient's mail), cutting the connection after the data, and a
mail that stays undeliverable past the give-up age (dead, with one alert mail to the admin).

The ticket change is always committed whatever the server does; each story counts what reached
the server by Message-ID. Retry timing is checked in process with a clock the test moves
(`drain_outbox` with the desk's clock), the rest through the command line.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from mailbot.config import load_settings
from mailbot.config_files import read_environment
from mailbot.context import Desk, make_desk
from mailbot.errors import ConfigError
from mailbot.outgoing.outbox import drain_outbox
from mailbot.store.db import close_database, open_database
from mailbot.store.models import Event, Outbox
from mailbot.transports import transport_from_url
from tests.helpers.desks import Clock
from tests.helpers.mails import parse, write_mail
from tests.helpers.servers import SilentServer
from tests.helpers.site import Site, make_site

pytestmark = pytest.mark.servers

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ADMIN = "ops@produsoft.test"
ENGINEERS = ("erin@produsoft.test", "fred@produsoft.test", "gina@produsoft.test")


def new_site(tmp_path, smtp_url: str, engineers=(), **settings: str) -> Site:
    site = make_site(
        tmp_path, {"VISI": {"address": VISI}}, smtp_url=smtp_url, alert_address=ADMIN, **settings
    )
    site.add_account(DANA, "VISI", name="Dana Customer")
    for engineer in engineers:
        site.add_account(engineer, "VISI", "engineer")
    return site


def customer_writes(site: Site, subject: str = "Licence server down", sender: str = DANA) -> None:
    """A customer's mail handed to `mailbot ingest` (as an MTA would): the ticket and its
    outbox rows are committed, nothing is sent yet."""
    path = site.root / f"{subject.replace(' ', '-')}.eml"
    path.write_bytes(write_mail(sender, VISI, subject, "Nothing starts since this morning."))
    site.mailbot("ingest", "VISI", str(path))


@contextmanager
def desk_at(site: Site, clock: Clock) -> Iterator[Desk]:
    """The site's database and settings in this process, on the test's clock."""
    settings = load_settings(read_environment(site.env_file))
    open_database(settings.database_url)
    try:
        yield make_desk(settings, clock=clock)
    finally:
        close_database()


def drain(desk: Desk) -> Counter[str]:
    """One outbox round, as `poll --once` or the daemon's outbox worker runs it."""
    transport = transport_from_url(
        desk.settings.smtp_url, desk.store.outbox_dir, ssl_context=ssl.create_default_context(), timeout=5
    )
    try:
        return drain_outbox(desk, transport)
    finally:
        transport.close()


def message_ids(sink) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]).strip("<>") for m in sink.messages)


def now() -> datetime:
    return datetime.now(UTC)


# -- temporary failures --------------------------------------------------------------------------


def test_greylisting_is_retried_with_a_growing_delay_and_delivered_once(tmp_path, smtp_sink):
    site = new_site(tmp_path, smtp_sink.url)
    customer_writes(site)
    smtp_sink.fail_next(451, "4.7.1 Greylisted, try again later", stage="mail", times=3)
    clock = Clock(now())
    delays = []
    with desk_at(site, clock) as desk:
        [row] = Outbox.select()
        for _ in range(3):
            assert drain(desk) == {"retry": 1}
            row = Outbox.get_by_id(row.id)
            assert row.status == "pending" and "451 4.7.1 Greylisted" in row.last_error
            delays.append(row.next_attempt_at - clock.now)
            clock.advance(seconds=delays[-1].total_seconds() - 1)
            assert drain(desk) == {}, "nothing is tried before it is due"
            clock.advance(seconds=1)
        assert drain(desk) == {"sent": 1}
        row = Outbox.get_by_id(row.id)
        assert (row.status, row.attempts) == ("sent", 4)
    assert delays == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert message_ids(smtp_sink) == {row.message_id: 1}
    assert [t["reference"] for t in site.tickets()] == ["VISI-1"]


def test_a_server_that_is_down_fails_the_round_once_and_everything_goes_when_it_is_back(tmp_path, smtp_sink):
    site = new_site(tmp_path, smtp_sink.url, engineers=ENGINEERS[:1])
    smtp_sink.stop()
    customer_writes(site)
    result = site.mailbot("poll", "--once", expect=75)
    [error] = [line for line in result.stderr.splitlines() if line.startswith("mailbot:")]
    assert "outbox not delivered" in error and "cannot connect" in error
    assert [t["reference"] for t in site.tickets()] == ["VISI-1"], "the ticket is there regardless"

    smtp_sink.start()
    clock = Clock(now())
    with desk_at(site, clock) as desk:
        tried, untried = Outbox.select().order_by(Outbox.id)
        assert (tried.attempts, untried.attempts) == (1, 0), "the round stopped at the first failure"
        assert drain(desk) == {"sent": 1}, "the untried mail goes at once"
        clock.advance(minutes=1)
        assert drain(desk) == {"sent": 1}, "the tried one after its delay"
    assert message_ids(smtp_sink) == {tried.message_id: 1, untried.message_id: 1}


def test_a_silent_server_costs_one_timeout_per_round_not_one_per_mail(tmp_path):
    with SilentServer() as silent:
        site = new_site(tmp_path, f"smtp://127.0.0.1:{silent.port}", engineers=ENGINEERS, io_timeout="1")
        customer_writes(site)
        started = time.monotonic()
        site.mailbot("poll", "--once", expect=75)
        assert time.monotonic() - started < 30
    with desk_at(site, Clock(now())):
        attempts = [row.attempts for row in Outbox.select().order_by(Outbox.id)]
    assert attempts == [1, 0, 0, 0], "one row tried, the others left for the next round"


def test_a_connection_lost_after_the_data_is_sent_again_with_the_same_message_id(tmp_path, smtp_sink):
    site = new_site(tmp_path, smtp_sink.url)
    customer_writes(site)
    smtp_sink.drop_after_data()
    clock = Clock(now())
    with desk_at(site, clock) as desk:
        assert drain(desk) == {"retry": 1}
        [row] = Outbox.select()
        assert "may have been delivered" in row.last_error
        clock.advance(minutes=1)
        assert drain(desk) == {"sent": 1}
        assert drain(desk) == {}
    [lost] = smtp_sink.dropped
    copies = message_ids(smtp_sink) + Counter([str(parse(lost)["Message-ID"]).strip("<>")])
    assert copies == {row.message_id: 2}, "at most one duplicate, recognisable by its Message-ID"


class ChokesOn:
    """The real transport, except that a mail to `address` makes it raise something unforeseen."""

    def __init__(self, transport, address: str):
        self.transport, self.address = transport, address

    def send(self, sender, recipients, data):
        if self.address in recipients:
            raise ValueError("unforeseen trouble with this mail")
        return self.transport.send(sender, recipients, data)

    def close(self) -> None:
        self.transport.close()


def test_a_mail_the_transport_chokes_on_waits_its_turn_and_blocks_no_other(tmp_path, smtp_sink):
    site = new_site(tmp_path, smtp_sink.url, engineers=ENGINEERS)
    customer_writes(site)  # Dana's acknowledgement first, then the three engineers' mails
    clock = Clock(now())
    with desk_at(site, clock) as desk:
        real = transport_from_url(
            desk.settings.smtp_url, desk.store.outbox_dir, ssl_context=ssl.create_default_context(), timeout=5
        )
        with contextlib.closing(ChokesOn(real, DANA)) as choking:
            assert drain_outbox(desk, choking) == {"retry": 1, "sent": 3}
        [ack] = Outbox.select().where(Outbox.recipient == DANA)
        assert (ack.status, ack.last_error) == ("pending", "unforeseen trouble with this mail")
        clock.advance(minutes=1)
        assert drain(desk) == {"sent": 1}
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == sorted([DANA, *ENGINEERS])


# -- permanent failures --------------------------------------------------------------------------


def test_a_refused_address_is_not_retried_and_is_recorded_on_the_ticket(tmp_path, smtp_sink):
    site = new_site(tmp_path, smtp_sink.url)
    smtp_sink.fail_next(550, "5.1.1 No such user here", stage="rcpt", recipient=DANA)
    customer_writes(site)
    site.poll()
    site.poll()
    [failed] = [e for e in site.ticket("VISI-1")["events"] if e["kind"] == "delivery_failed"]
    assert failed["new"] == DANA and "550 5.1.1 No such user here" in failed["detail"]
    with desk_at(site, Clock(now() + timedelta(days=1))) as desk:
        [ack] = Outbox.select().where(Outbox.template == "ticket_opened")
        assert (ack.status, ack.attempts) == ("dead", 1), "tried once, never again"
        assert drain(desk) == {}
    [alert] = smtp_sink.wait_for(1)
    assert alert.rcpt_tos == [ADMIN] and "could not be delivered" in str(alert.message["Subject"])
    assert ack.message_id not in message_ids(smtp_sink)


def test_one_of_three_engineers_refused_only_that_mail_is_dead(tmp_path, smtp_sink):
    site = new_site(tmp_path, smtp_sink.url, engineers=ENGINEERS)
    smtp_sink.fail_next(550, "5.2.1 Mailbox disabled", stage="rcpt", recipient=ENGINEERS[1])
    customer_writes(site)
    site.poll()
    with desk_at(site, Clock(now())):
        status = {row.recipient: row.status for row in Outbox.select().where(Outbox.ticket.is_null(False))}
        sent = {row.message_id for row in Outbox.select().where(Outbox.status == "sent")}
    assert status == {DANA: "sent", ENGINEERS[0]: "sent", ENGINEERS[1]: "dead", ENGINEERS[2]: "sent"}
    events = [e for e in site.ticket("VISI-1")["events"] if e["kind"] == "delivery_failed"]
    assert [e["new"] for e in events] == [ENGINEERS[1]]
    assert message_ids(smtp_sink) == Counter(sent), "the others exactly once, the refused never"
    received = sorted(m.rcpt_tos[0] for m in smtp_sink.messages)
    assert received == sorted([DANA, ENGINEERS[0], ENGINEERS[2], ADMIN]), "and one alert"


# -- giving up ----------------------------------------------------------------------------------


def test_a_mail_undeliverable_past_the_give_up_age_is_dead_with_one_alert(tmp_path, smtp_sink, caplog):
    site = new_site(tmp_path, smtp_sink.url, outbox_give_up="2h")
    site.add_account("olaf@customer.test", "VISI")
    customer_writes(site, "Licence server down")
    customer_writes(site, "Export fails", sender="olaf@customer.test")
    for customer in (DANA, "olaf@customer.test"):  # their server keeps deferring
        smtp_sink.fail_next(452, "4.2.2 Mailbox full", stage="rcpt", recipient=customer, times=1000)
    logging.getLogger().addHandler(caplog.handler)  # the CLI's logging set-up replaced it
    caplog.set_level(logging.INFO, logger="mailbot")
    clock = Clock(now())
    rounds = 0
    with desk_at(site, clock) as desk:
        while Outbox.select().where(Outbox.status == "pending").exists() and rounds < 20:
            drain(desk)
            rounds += 1
            clock.advance(hours=1)
        rows = {row.recipient: row for row in Outbox.select()}
        events = list(Event.select().where(Event.kind == "delivery_failed"))
    assert rows[DANA].status == rows["olaf@customer.test"].status == "dead"
    assert "gave up after" in rows[DANA].last_error and "452 4.2.2 Mailbox full" in rows[DANA].last_error
    assert rows[DANA].attempts > 2 and rounds <= 4
    assert sorted(e.new for e in events) == [DANA, "olaf@customer.test"]
    # Both died in the same hour: one alert mail, the second alert only in the log.
    [alert] = [m for m in smtp_sink.messages if m.rcpt_tos == [ADMIN]]
    assert rows[ADMIN].status == "sent" and len(smtp_sink.messages) == 1
    assert alert.mail_from in ("", "<>"), "null envelope sender: a bounce of it cannot come back"
    assert alert.message["Auto-Submitted"] == "auto-generated"
    assert "VISI-1" in str(alert.message["Subject"]) and DANA in str(alert.message["Subject"])
    alerts = [r for r in caplog.records if r.name == "mailbot.outgoing.alerts"]
    assert [r.levelname for r in alerts] == ["ERROR", "ERROR", "INFO"], "each logged, one mailed"
    assert "not mailed: one went to ops@produsoft.test" in alerts[-1].getMessage()


def test_alerts_never_go_to_a_product_address(tmp_path):
    env = {
        "MAILBOT_DATA_DIR": str(tmp_path),
        "MAILBOT_PRODUCTS": "VISI",
        "MAILBOT_PRODUCT_VISI_ADDRESS": VISI,
        "MAILBOT_ALERT_ADDRESS": VISI.upper(),
    }
    with pytest.raises(ConfigError, match="MAILBOT_ALERT_ADDRESS.*product's own address"):
        load_settings(env)
