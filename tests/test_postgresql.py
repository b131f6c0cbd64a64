"""PostgreSQL as an operator meets it: the database stopped under a running installation is a
fault like an IMAP outage (one clear line, exit 75, nothing lost, the next pass takes every mail
once); an installation at schema 6 gains the leases (step 9) and keeps its data, on both
engines; a mailbox lease is held by one daemon at a time and taken over once it expires."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from mailbot.desk.jobs import run_due_jobs
from mailbot.service.leases import fleet, take
from mailbot.store import migrations
from mailbot.store.db import close_database, open_database
from mailbot.store.models import Notice, database
from tests.helpers.desks import Clock, at, open_desk, open_ticket, outbox, person
from tests.helpers.mails import write_mail
from tests.helpers.postgres import Cluster
from tests.helpers.site import Site, make_site

VISI = "visi.support@produsoft.test"
DANA = "dana@customer.test"
ERIN = "erin@produsoft.test"


@pytest.fixture
def own_cluster(postgres):  # `postgres` first: it fails the test, saying what to install, when missing
    cluster = Cluster()
    cluster.start()
    yield cluster
    cluster.close()


def sent_once(site: Site, sink) -> None:
    outbox = [mid for (mid,) in site.query("SELECT message_id FROM outbox WHERE status = 'sent'")]
    assert site.query("SELECT count(*) FROM outbox WHERE status != 'sent'") == [(0,)]
    assert Counter(str(m.message["Message-ID"]).strip("<>") for m in sink.messages) == Counter(outbox)


@pytest.mark.servers
def test_a_stopped_database_is_one_line_and_exit_75_and_after_the_restart_each_mail_counts_once(
    tmp_path, own_cluster, dovecot, mail_user, smtp_sink
):
    product = {"address": VISI, "mailbox": mail_user.url()}
    url = own_cluster.new_database()
    site = make_site(tmp_path, {"VISI": product}, smtp_url=smtp_sink.url, database_url=url)
    site.add_account(DANA, "VISI")
    site.add_account(ERIN, "VISI", "engineer")
    uid = dovecot.append(mail_user.name, write_mail(DANA, VISI, "Export fails", "At 80 %."))

    own_cluster.stop()
    for command in (("poll", "--once"), ("ticket", "list"), ("status",)):
        result = site.mailbot(*command, expect=75)
        errors = [line for line in result.stderr.splitlines() if line.startswith("mailbot:")]
        assert errors and all("database unavailable" in line for line in errors), result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == len(errors)
    assert dovecot.flags(mail_user.name, uid) == frozenset(), "left on the server untouched"
    assert smtp_sink.messages == []

    own_cluster.start()
    site.poll()
    site.poll()
    assert [t["reference"] for t in site.tickets()] == ["VISI-1"]
    assert dovecot.flags(mail_user.name, uid) == {"\\Seen", "$MailbotDone"}
    smtp_sink.wait_for(2)  # Dana's acknowledgement and Erin's new-ticket mail
    sent_once(site, smtp_sink)


def test_an_installation_at_schema_6_gains_the_leases_and_keeps_its_data(tmp_path, database_url, engine):
    site = make_site(tmp_path, {"VISI": {"address": VISI}}, database_url=database_url)
    site.add_account(DANA, "VISI", name="Dana")
    site.mailbot("ingest", "VISI", input=write_mail(DANA, VISI, "Licence", "Key lost."))
    db = open_database(database_url)  # back to version 6: step 9 undone
    db.execute_sql('DROP TABLE "mailbox_lease"')
    if engine == "postgresql":
        db.execute_sql("DROP INDEX message_text_fts")
    db.execute_sql("DELETE FROM schema_version WHERE version = 9")
    close_database()

    result = site.mailbot("db", "init")
    complete_up_to = max(v for v in migrations.STEPS if v < 9)  # step 9 undone, the later ones kept
    assert f"schema version {migrations.LATEST} (was {complete_up_to})" in result.stdout
    assert [t["reference"] for t in site.tickets()] == ["VISI-1"]
    assert [t["reference"] for t in site.json("ticket", "search", "lost")] == ["VISI-1"]
    assert site.query("SELECT count(*) FROM mailbox_lease") == [(0,)]
    if engine == "postgresql":
        assert site.query("SELECT count(*) FROM pg_indexes WHERE indexname = 'message_text_fts'") == [(1,)]


def test_a_mailbox_lease_has_one_holder_until_it_expires(database_url):
    migrations.migrate(open_database(database_url))
    now, lease = datetime(2026, 12, 4, 10, 0, tzinfo=UTC), timedelta(seconds=60)
    try:
        assert take("VISI", "a", now, lease)
        assert not take("VISI", "b", now + timedelta(seconds=59), lease), "a's lease still runs"
        assert take("VISI", "a", now + timedelta(seconds=50), lease), "renewed by its holder"
        assert not take("VISI", "b", now + timedelta(seconds=100), lease), "the renewal counts"
        assert take("VISI", "b", now + timedelta(seconds=111), lease), "expired: taken over"
        assert not take("VISI", "a", now + timedelta(seconds=112), lease), "a lost it"
        assert fleet(now + timedelta(seconds=112)) == (0, {"VISI": "b"})
    finally:
        close_database()


def test_each_sla_mail_goes_out_once_when_three_daemons_sweep_at_the_same_moment(tmp_path, postgres):
    """Three daemons' SLA jobs (three threads, three connections) at one moment over ten
    breached tickets: each warning and each breach mail is queued once."""
    clock = Clock(at("2027-02-01 10:00"))  # a Monday
    url = postgres.new_database("mailbot_template")
    with open_desk(tmp_path, clock, url) as desk:
        person("bob@generic.test", "GEN", "board", name="Bob Board")
        dana = person("dana@customer.test", "GEN", name="Dana Customer")
        for n in range(10):
            open_ticket(desk, "GEN", dana, clock(), "critical", f"Server {n} down")
        clock.set(at("2027-02-01 14:01"))  # every first response and resolution deadline passed
        start = threading.Barrier(3)
        failures: list[BaseException] = []

        def sweep() -> None:
            try:
                start.wait()
                run_due_jobs(desk)
            except BaseException as exc:  # reported by the test, not lost in the thread
                failures.append(exc)
            finally:
                database.close()

        threads = [threading.Thread(target=sweep) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert failures == []
        # Each ticket breached two deadlines (first response, resolution); each breach is mailed
        # to the board and to the second line: 40 mails, not 80 or 120.
        assert Notice.select().where(Notice.kind == "sla_breach").count() == 10 * 2
        breaches = Counter(m.recipient for m in outbox("sla_breach"))
        assert breaches == {"bob@generic.test": 20, "second-line@generic.test": 20}
