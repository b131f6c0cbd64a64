"""Tickets and accounts as plain dicts, for `--json` output and the CLI's tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailbot.desk import links, tickets
from mailbot.store.models import Account, Event, Grant, Message, Ticket


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    return {
        "reference": ticket.reference,
        "product": ticket.product,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "category": ticket.category,
        "requester": ticket.requester.email,
        "assignee": ticket.assignee.email if ticket.assignee is not None else None,
        "flags": tickets.flags_of(ticket),
        "created_at": _iso(ticket.created_at),
        "due_first_response": _iso(ticket.due_first_response),
        "due_resolution": _iso(ticket.due_resolution),
        "time_spent_minutes": ticket.time_spent,
    }


def ticket_detail(ticket: Ticket) -> dict[str, Any]:
    data = ticket_summary(ticket)
    data.update(
        first_response_at=_iso(ticket.first_response_at),
        resolved_at=_iso(ticket.resolved_at),
        closed_at=_iso(ticket.closed_at),
        linked_to=ticket.linked_to.reference if ticket.linked_to_id else None,
        related=links.related_references(ticket),
        merged_into=_merged_into(ticket),
        watchers=[a.email for a in tickets.watchers_of(ticket)],
        messages=[message_dict(m) for m in ticket.messages.order_by(Message.id)],
        events=[event_dict(e) for e in ticket.events.order_by(Event.id)],
    )
    return data


def _merged_into(ticket: Ticket) -> str | None:
    target = links.merged_target(ticket)
    return target.reference if target.id != ticket.id else None


def message_dict(message: Message) -> dict[str, Any]:
    return {
        "direction": message.direction,
        "message_id": message.message_id,
        "author": message.author_email,
        "visibility": message.visibility,
        "kind": message.kind,
        "subject": message.subject,
        "text": message.text,
        "created_at": _iso(message.created_at),
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size, "path": a.stored_path}
            for a in message.attachments
        ],
    }


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "actor": event.actor_email,
        "old": event.old,
        "new": event.new,
        "detail": event.detail,
        "at": _iso(event.at),
    }


def account_dict(account: Account) -> dict[str, Any]:
    return {
        "email": account.email,
        "name": account.name,
        "organisation": account.organisation,
        "language": account.language,
        "notify": account.notify,
        "contract_until": account.contract_until.isoformat() if account.contract_until else None,
        "credit_minutes": account.credit_minutes,
        "grants": {g.product: g.role for g in account.grants.order_by(Grant.product)},
    }
