"""Failure reports about mail we sent: recorded on the ticket of the mail that bounced, and
automatic mail to a dead address stopped, but only when the report names a mail of ours sent to
that address. Anyone can write a bounce; one that proves nothing changes nothing.

Runs inside the ingest transaction, called by `mailbot.desk.intake` for mail that
`mailbot.inbound.automail` read as a bounce."""

from __future__ import annotations

import logging
from datetime import datetime

from mailbot.context import Desk
from mailbot.desk import accounts, recipients, tickets
from mailbot.desk.inmail import Outcome, RoutedMail, store_inbound
from mailbot.outgoing import notify
from mailbot.store import statements
from mailbot.store.models import Outbox
from mailbot.vocabulary import Template

log = logging.getLogger(__name__)


def handle_bounce(desk: Desk, mail: RoutedMail) -> Outcome:
    """A bounce goes on the ticket whose mail bounced and stops automatic mail to the address;
    the ticket's engineers are told once per address that went dead. Only a failure report
    that names a mail of ours (its Message-ID, in this product's outbox) changes anything, and
    only for the address that mail went to: anyone can write a report, so one that names no
    such mail, or another address, is recorded as ignored with the reason and silences nobody.
    (We send with the product address as return path, not VERP, so the Message-ID is the only
    proof that a report answers a mail of ours.)"""
    msg = mail.msg
    original = _bounced_mail(mail)
    if original is None:
        return Outcome("ignored", "bounce: original mail unknown")  # names no mail we sent: nothing changes
    failed = _failed_address(mail, original)
    if msg.automatic == "bounce:failed" and failed is None:
        return Outcome(
            "ignored",
            f"bounce: names addresses <{original.message_id}> was not sent to; delivery state unchanged",
        )
    newly_dead = failed is not None and _mark_undeliverable(failed, mail.now)
    ticket = original.ticket
    if ticket is None:
        return Outcome("ignored", "bounce: of a mail that belongs to no ticket")
    store_inbound(desk, mail, ticket, msg.text, visibility="internal", kind="bounce")
    if failed is not None:
        tickets.record_event(ticket, "delivery_failed", "", new=failed, at=mail.now)
    if newly_dead:
        notify.queue_mail(
            desk,
            Template.DELIVERY_FAILED,
            mail.product,
            ticket,
            recipients.team(mail.product, ticket),
            context={"failed_address": failed},
        )
    return Outcome("message", "bounce", ticket)


def _bounced_mail(mail: RoutedMail) -> Outbox | None:
    """The mail of this product the report names by its Message-ID, if we sent one."""
    mid = mail.msg.bounced_message_id
    if not mid:
        return None
    return statements.outbox_by_message_id(mid, mail.product.key)


def _failed_address(mail: RoutedMail, original: Outbox) -> str | None:
    """The address a failure report shows dead: the recipient of our mail that bounced, when
    the report names it among its failed recipients or names none; else None (a delay notice,
    or a report about addresses we did not send that mail to)."""
    if mail.msg.automatic != "bounce:failed":
        return None
    named = {address.lower() for address in mail.msg.bounced_recipients}
    recipient = original.recipient.lower()
    return recipient if not named or recipient in named else None


def _mark_undeliverable(address: str, now: datetime) -> bool:
    """Stop automatic mail to `address`; True when it was not stopped already (or has no
    account, so cannot be remembered)."""
    account = accounts.find_account(address)
    if account is None:
        return True
    if account.undeliverable_since is not None:
        return False
    account.undeliverable_since = now
    statements.save(account)
    log.warning("mail to %s bounced: no more automatic mail to it until it writes again", address)
    return True
