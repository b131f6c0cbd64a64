"""The promises kept by the clock, as the board, the second line and the customers see them in
their mail: warnings when most of a deadline is used, escalation at breach, reminders, and
tickets closed after a quiet week. The jobs run through the scheduler the daemon builds
(`daemon.build_scheduler`), and the test moves the desk's clock: no sleeping to let business
time pass."""

from __future__ import annotations

import ssl
import threading

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.schedulers.background import BackgroundScheduler

from mailbot.desk import tickets
from mailbot.desk.jobs import JOB_INTERVAL_SECONDS, JOBS, register_jobs, run_due_jobs
from mailbot.service import daemon
from mailbot.store.models import Event, Notice, Ticket
from tests.helpers.desks import Clock, answer, at, change_status, open_desk, open_ticket, outbox, person

MONDAY_10 = at("2027-02-01 10:00")  # Monday 1 February 2027
BOARD = "bob@generic.test"
ENGINEER = "erin@generic.test"
CUSTOMER = "dana@customer.test"
SECOND_LINE = "second-line@generic.test"


SLA_JOB_IDS = {job_id for job_id, _ in JOBS}


def build_scheduler(desk) -> BackgroundScheduler:
    """The daemon's own scheduler, not started, with its service-level jobs only (the mailbox
    and outbox workers have their own tests, with real servers)."""
    scheduler, _workers = daemon.build_scheduler(desk, ssl.create_default_context(), threading.Event())
    for job in scheduler.get_jobs():
        if job.id not in SLA_JOB_IDS:
            scheduler.remove_job(job.id)
    return scheduler


def run_scheduled(scheduler: BackgroundScheduler) -> None:
    """One run of every scheduled job, as the scheduler would start it."""
    for job in scheduler.get_jobs():
        job.func(*job.args, **job.kwargs)


@pytest.fixture
def clock():
    return Clock(MONDAY_10)


@pytest.fixture
def desk(tmp_path, clock):
    with open_desk(tmp_path, clock, GEN_REMINDER_DAYS="3", GEN_AUTO_CLOSE_DAYS="7") as desk:
        person(BOARD, "GEN", "board", name="Bob Board")
        person(ENGINEER, "GEN", "engineer", name="Erin Engineer")
        yield desk


@pytest.fixture
def dana(desk):
    return person(CUSTOMER, "GEN", name="Dana Customer")


def sent(template: str) -> list[tuple[str, str]]:
    return [(m.recipient, m.subject) for m in outbox(template)]


@pytest.mark.parametrize("how", ["daemon", "register_jobs"])
def test_jobs_are_scheduled_the_way_the_daemon_needs_them(desk, how):
    if how == "daemon":
        scheduler = build_scheduler(desk)
    else:
        scheduler = BackgroundScheduler(timezone="UTC")
        register_jobs(scheduler, desk, threading.Event())
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"sla-sweep", "remind-waiting", "auto-close", "raw-retention"}
    for job in jobs.values():
        assert job.max_instances == 1 and job.coalesce is True
        # A late run still runs (after a busy minute, or a suspend), it is not silently dropped.
        assert job.misfire_grace_time == JOB_INTERVAL_SECONDS
        assert job.trigger.interval.total_seconds() == JOB_INTERVAL_SECONDS


def test_board_is_warned_then_escalation_goes_out_once(desk, clock, dana):
    scheduler = build_scheduler(desk)
    ticket = open_ticket(desk, "GEN", dana, MONDAY_10, "critical", "Server down")
    run_scheduled(scheduler)
    assert outbox() == []

    # 10:48: 48 of the 60 minutes for a first response are used (80 %): the board hears of it.
    clock.set(at("2027-02-01 10:48"))
    run_scheduled(scheduler)
    clock.advance(minutes=1)
    run_scheduled(scheduler)
    [warning] = outbox("sla_warning")
    assert warning.recipient == BOARD and "[GEN-1] Server down" in warning.subject
    assert "80% of the first response time" in warning.text
    assert "due February 1, 2027, 11:00\u202fAM UTC" in warning.text, "the date as English writes it"

    # The engineer answers; at 13:12, 3.2 of the 4 hours to resolve are used.
    answer(desk, ticket, at("2027-02-01 10:50"), engineer=ENGINEER)
    clock.set(at("2027-02-01 13:12"))
    run_scheduled(scheduler)
    assert [m.text for m in outbox("sla_warning")][1].count("80% of the resolution time") == 1

    # 14:00: the deadline passes unresolved: the board and the second line are mailed, once.
    for moment in ("2027-02-01 14:00", "2027-02-01 14:01", "2027-02-01 17:00"):
        clock.set(at(moment))
        run_scheduled(scheduler)
    breaches = outbox("sla_breach")
    assert sorted(m.recipient for m in breaches) == [BOARD, SECOND_LINE]
    assert all("SLA breached: the resolution target for ticket GEN-1 was missed" in m.text for m in breaches)
    assert len(outbox("sla_warning")) == 2
    history = [e.kind for e in Event.select().where(Event.ticket == ticket).order_by(Event.id)]
    assert history.count("sla_warning") == 2 and history.count("sla_breach") == 1


def test_after_downtime_one_run_catches_up_and_a_restart_repeats_nothing(tmp_path, clock, desk, dana):
    open_ticket(desk, "GEN", dana, MONDAY_10, "critical")
    # The daemon was down from Monday 10:00 to Wednesday: both deadlines passed meanwhile.
    clock.set(at("2027-02-03 09:30"))
    run_scheduled(build_scheduler(desk))
    # Escalations for both; no warnings after the fact.
    assert len(outbox("sla_breach")) == 4  # (first response, resolution) x (board, second line)
    assert outbox("sla_warning") == []
    texts = [m.text for m in outbox("sla_breach")]
    assert sum("first response target" in t for t in texts) == 2

    # The daemon restarts: a new desk and scheduler on the same database, a while later.
    clock.advance(hours=2)
    with open_desk(tmp_path, clock, GEN_REMINDER_DAYS="3") as restarted:
        run_scheduled(build_scheduler(restarted))
        assert run_due_jobs(restarted) == {
            "sla-sweep": 0,
            "remind-waiting": 0,
            "auto-close": 0,
            "raw-retention": 0,
        }
        assert len(outbox("sla_breach")) == 4


def test_raising_the_priority_brings_the_deadline_closer(desk, clock, dana):
    scheduler = build_scheduler(desk)
    ticket = open_ticket(desk, "GEN", dana, MONDAY_10, "medium")
    answer(desk, ticket, at("2027-02-01 10:15"), engineer=ENGINEER)
    clock.set(at("2027-02-01 13:00"))
    run_scheduled(scheduler)
    assert outbox("sla_breach") == []  # medium: due next Monday
    # The engineer finds it critical: 4 h from the opening, so 14:00 today.
    tickets.set_field(ticket, "priority", "critical", ENGINEER, clock.now)
    clock.set(at("2027-02-01 14:00"))
    run_scheduled(scheduler)
    assert Ticket.get_by_id(ticket.id).due_resolution == at("2027-02-01 14:00")
    assert len(outbox("sla_breach")) == 2


def test_no_warning_while_the_customer_keeps_the_ticket_waiting(desk, clock, dana):
    scheduler = build_scheduler(desk)
    ticket = open_ticket(desk, "GEN", dana, MONDAY_10, "critical")
    answer(desk, ticket, at("2027-02-01 11:00"), status="waiting", engineer=ENGINEER)
    for moment in ("2027-02-01 17:00", "2027-02-02 12:00"):
        clock.set(at(moment))
        run_scheduled(scheduler)
    assert outbox("sla_warning") == [] and outbox("sla_breach") == []
    # Dana answers on Wednesday at 09:00: 1 h was used, 3 h remain -> due 12:00.
    change_status(desk, ticket, "open", at("2027-02-03 09:00"), CUSTOMER)
    clock.set(at("2027-02-03 11:24"))  # 1 h + 2.4 h = 3.4 h of 4: 85 %
    run_scheduled(scheduler)
    [warning] = outbox("sla_warning")
    assert "85% of the resolution time" in warning.text
    assert "due February 3, 2027, 12:00\u202fPM" in warning.text


def test_customer_is_reminded_once_per_wait(desk, clock, dana):
    scheduler = build_scheduler(desk)
    ticket = open_ticket(desk, "GEN", dana, MONDAY_10, "low")
    answer(desk, ticket, at("2027-02-01 11:00"), status="waiting", engineer=ENGINEER)
    clock.set(at("2027-02-04 10:59"))
    run_scheduled(scheduler)
    assert outbox("reminder") == []
    for moment in ("2027-02-04 11:00", "2027-02-05 11:00", "2027-02-08 11:00"):
        clock.set(at(moment))
        run_scheduled(scheduler)
    [reminder] = outbox("reminder")
    assert reminder.recipient == CUSTOMER and "[GEN-1]" in reminder.subject
    assert "waiting for your answer for 3 days" in reminder.text
    # Dana answers, the engineer asks again: a new wait, a new reminder three days later.
    change_status(desk, ticket, "open", at("2027-02-08 12:00"), CUSTOMER)
    change_status(desk, ticket, "waiting", at("2027-02-08 14:00"), ENGINEER)
    clock.set(at("2027-02-11 14:00"))
    run_scheduled(scheduler)
    assert len(outbox("reminder")) == 2


def test_resolved_ticket_is_closed_after_a_quiet_week_and_the_customer_told(desk, clock, dana):
    scheduler = build_scheduler(desk)
    quiet = open_ticket(desk, "GEN", dana, MONDAY_10, "medium", "Quiet one")
    answer(desk, quiet, at("2027-02-01 11:00"), status="resolved", engineer=ENGINEER)
    reopened = open_ticket(desk, "GEN", dana, MONDAY_10, "medium", "Not solved")
    answer(desk, reopened, at("2027-02-01 11:00"), status="resolved", engineer=ENGINEER)
    change_status(desk, reopened, "open", at("2027-02-03 09:00"), CUSTOMER)
    clock.set(at("2027-02-08 10:59"))
    run_scheduled(scheduler)
    assert Ticket.get_by_id(quiet.id).status == "resolved"
    clock.set(at("2027-02-08 11:00"))
    run_scheduled(scheduler)
    run_scheduled(scheduler)
    assert Ticket.get_by_id(quiet.id).status == "closed"
    assert Ticket.get_by_id(reopened.id).status == "open"
    [mail] = outbox("auto_closed")
    assert mail.recipient == CUSTOMER and "[GEN-1] Quiet one" in mail.subject
    assert "was resolved 7 days ago" in mail.text and "we have now closed it" in mail.text


def test_reminders_and_automatic_closing_can_be_switched_off(tmp_path, clock):
    with open_desk(tmp_path, clock, GEN_REMINDER_DAYS="0", GEN_AUTO_CLOSE_DAYS="0") as desk:
        customer = person(CUSTOMER, "GEN")
        waiting = open_ticket(desk, "GEN", customer, MONDAY_10, "low")
        answer(desk, waiting, at("2027-02-01 11:00"), status="waiting")
        resolved = open_ticket(desk, "GEN", customer, MONDAY_10, "low")
        answer(desk, resolved, at("2027-02-01 11:00"), status="resolved")
        clock.set(at("2027-03-01 12:00"))
        assert run_due_jobs(desk)["remind-waiting"] == 0
        assert outbox("reminder") == [] and outbox("auto_closed") == []
        assert Ticket.get_by_id(resolved.id).status == "resolved"


def test_bas_ip_escalates_to_the_developers(desk, clock):
    partner = person("install@partner.test", "BASIP", name="Partner")
    person("tech@bas-ip.test", "BASIP", "engineer", name="Technician")
    open_ticket(desk, "BASIP", partner, at("2027-02-01 08:00"), "high", "Intercom offline")
    clock.set(at("2027-02-01 08:04"))  # 4 of the 5 minutes
    run_due_jobs(desk)
    # No board on this product: its engineers get the warning.
    assert sent("sla_warning") == [("tech@bas-ip.test", "[BASIP-1] Intercom offline")]
    clock.set(at("2027-02-01 08:05"))
    run_due_jobs(desk)
    assert sorted(r for r, _ in sent("sla_breach")) == ["developers@bas-ip.test", "tech@bas-ip.test"]


def test_the_started_scheduler_runs_the_jobs_in_its_own_threads(desk, clock, dana):
    """The real thing: the scheduler started, each job run once by its own thread pool."""
    open_ticket(desk, "GEN", dana, MONDAY_10, "critical")
    clock.set(at("2027-02-01 14:30"))
    scheduler = build_scheduler(desk)
    done: set[str] = set()
    all_ran = threading.Event()

    def listen(event) -> None:
        done.add(event.job_id if event.exception is None else f"failed {event.job_id}")
        if len(done) >= len(JOBS):
            all_ran.set()

    scheduler.add_listener(listen, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start()
    try:
        assert all_ran.wait(10), f"jobs run: {done}"
    finally:
        scheduler.shutdown(wait=True)
    assert done == {"sla-sweep", "remind-waiting", "auto-close", "raw-retention"}
    assert len(outbox("sla_breach")) == 4
    assert Notice.select().where(Notice.kind == "sla_breach").count() == 2
