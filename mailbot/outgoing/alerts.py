"""Alerts for the admin: something needs a person's attention (mail given up as undeliverable,
mail that cannot be rendered, a sender flooding a mailbox). Every alert is a log line at ERROR;
where MAILBOT_ALERT_ADDRESS is set it is also a plain mail, queued in the outbox in the caller's
transaction, at most one per kind an hour (`ALERT_INTERVAL`) so that a dead SMTP relay or a
hundred bounced addresses make one mail, not a flood.

Alert mail can never start a loop: it never goes to a product's own address (the configuration
refuses that, and this module checks again), it goes out with a null envelope sender so that a
bounce of it is thrown away rather than mailed into a polled mailbox, it is marked
`Auto-Submitted: auto-generated`, and an alert mail that itself cannot be delivered is only logged.

Unlike the mails about tickets, an alert is composed here and queued as finished bytes, in plain
text from no template: an alert about a broken template (`mailbot.outgoing.outbox`) always goes out.
It enters the outbox by the same door as every other mail (`mailbot.outgoing.enqueue`).

It leaves delivering the mail to `mailbot.outgoing.outbox`, and deciding what deserves an alert to the
callers.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from mailbot.context import Desk
from mailbot.inbound.message import Address
from mailbot.outgoing.compose import OutgoingMail, compose
from mailbot.outgoing.enqueue import Envelope, enqueue
from mailbot.store.models import Outbox

log = logging.getLogger(__name__)

ALERT_INTERVAL = timedelta(hours=1)
TEMPLATE_PREFIX = "alert-"  # Outbox.template of an alert mail: "alert-<kind>"


def is_alert(template: str) -> bool:
    return template.startswith(TEMPLATE_PREFIX)


def raise_alert(
    desk: Desk, kind: str, summary: str, detail: str = "", level: int = logging.ERROR
) -> Outbox | None:
    """Log the alert (at `level`: INFO for news that a problem ended) and, unless one of the
    same `kind` was queued within the hour, queue a mail to the alert address. Returns the
    outbox row, or None when only logged. Call inside the transaction of the change the alert
    is about."""
    log.log(level, "alert %s: %s%s", kind, summary, f" ({detail})" if detail else "")
    settings = desk.settings
    address = settings.alert_address
    if not address:
        return None
    if address.lower() in settings.own_addresses:  # never mail ourselves: a loop in the making
        log.warning("alert address %s is a product address; alert only logged", address)
        return None
    now = desk.clock()
    template = TEMPLATE_PREFIX + kind
    recent = (
        Outbox.select()
        .where((Outbox.template == template) & (Outbox.created_at > now - ALERT_INTERVAL))
        .exists()
    )
    if recent:
        log.info("alert %s not mailed: one went to %s within the last %s", kind, address, ALERT_INTERVAL)
        return None
    domain = settings.mail_domain
    text = (f"{summary}\n\n{detail}\n\n" if detail else f"{summary}\n\n") + (
        f"Further alerts of this kind within {_hours(ALERT_INTERVAL)} are written to the log only.\n"
        "-- \nmailbot\n"
    )

    def write(message_id: str) -> bytes:
        mail = OutgoingMail(
            sender=Address(f"mailbot@{domain}", "mailbot"),
            to=(Address(address),),
            subject=f"[mailbot alert] {summary}",
            text=text,
            message_id=message_id,
            loop_marker=domain,
            date=now,
            automatic="auto-generated",
        )
        return compose(mail)

    # The null envelope sender: a bounce of an alert is thrown away, never mailed into a mailbox.
    envelope = Envelope(template=template, recipient=address, envelope_from="", automatic=True)
    return enqueue(envelope, domain, now, write)


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return "an hour" if hours == 1 else f"{hours:g} hours"
