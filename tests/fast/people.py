"""The people of the fast tests and the first steps every story takes."""

from __future__ import annotations

from tests.helpers.desks import Delivered, MailDesk, person

MONDAY_10 = "2026-11-23 10:00"  # inside every seed product's business hours

# The cast of the fast tests, on the generic product GEN (no board: its engineers triage).
CARLA = "carla@customer.test"  # GEN customer
CHRIS = "chris@customer.test"  # another GEN customer
ERIN = "erin@desk.test"  # GEN engineer
EDDIE = "eddie@desk.test"  # GEN engineer
VERA = "vera@produsoft.test"  # VISI customer, no access to GEN
VICTOR = "victor@produsoft.test"  # VISI engineer
STRANGER = "someone@elsewhere.test"  # no account


def cast() -> None:
    person(CARLA, "GEN", name="Carla Customer")
    person(CHRIS, "GEN", name="Chris Customer")
    person(ERIN, "GEN", "engineer", name="Erin Engineer")
    person(EDDIE, "GEN", "engineer", name="Eddie Engineer")
    person(VERA, "VISI", name="Vera Visi")
    person(VICTOR, "VISI", "engineer", name="Victor Visi")


def open_ticket(desk: MailDesk, subject: str = "Printer on fire", body: str = "It burns.") -> Delivered:
    """Carla opens a GEN ticket; returns the new-ticket mail Erin got (to answer it)."""
    report = desk.send(f"Carla Customer <{CARLA}>", "GEN", subject, body)
    assert report.outcomes["ticket"] == 1, report
    return desk.last_to(ERIN)
