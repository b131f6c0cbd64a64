"""`mailbot account export EMAIL`: what the desk holds on a person (GDPR art. 15 and 20), as one
JSON file with their files beside it, in a folder or a .zip / .tar.gz archive.

In the export: their account and grants; each ticket they asked (its public messages and its
history); each message they wrote on another ticket; the attachments of those messages and the
raw mails they sent, as files named in the JSON. Not in it: the engineers' internal notes (the
desk's own deliberations; an admin who must hand them over finds them with `ticket show`).
Sending the export to the person is the admin's business.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbot.context import Desk
from mailbot.desk import accounts, views
from mailbot.errors import CannotCreate, NoSuchAccount
from mailbot.store.models import Account, Event, Message, Ticket

ARCHIVES = {".zip": "zip", ".tar.gz": "gztar", ".tgz": "gztar"}


@dataclass(frozen=True)
class Exported:
    path: Path
    tickets: int
    messages: int
    files: int


def export_person(desk: Desk, email: str, target: Path) -> Exported:
    """Write everything the desk holds on `email` to `target`: a new folder, or an archive when
    its name ends in .zip, .tar.gz or .tgz."""
    account = accounts.find_account(email)
    if account is None:
        raise NoSuchAccount(f"no account {accounts.normalise(email)!r}: nothing to export")
    kind = next((k for suffix, k in ARCHIVES.items() if target.name.endswith(suffix)), None)
    if target.exists() and (kind is not None or not target.is_dir() or any(target.iterdir())):
        raise CannotCreate(f"{target} exists: give a new path for the export")
    if kind is None:
        return _write(desk, account, _new_folder(target))
    with tempfile.TemporaryDirectory(prefix="mailbot-export-") as scratch:
        done = _write(desk, account, Path(scratch) / "export")
        base = str(target)[: -len(next(s for s in ARCHIVES if target.name.endswith(s)))]
        try:
            made = shutil.make_archive(base, kind, root_dir=done.path)
            if Path(made) != target:
                Path(made).rename(target)
            target.chmod(0o600)
        except OSError as exc:
            raise CannotCreate(f"cannot write {target}: {exc.strerror or exc}") from None
    return Exported(target, done.tickets, done.messages, done.files)


def _new_folder(target: Path) -> Path:
    try:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotCreate(f"cannot create {target}: {exc.strerror}") from None
    return target


def _write(desk: Desk, account: Account, folder: Path) -> Exported:
    files = _Files(desk, folder)
    own = list(Ticket.select().where(Ticket.requester == account).order_by(Ticket.id))
    written = Message.select().where(
        ((Message.author == account) | (Message.author_email == account.email))
        & Message.ticket.not_in([t.id for t in own])
    )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tickets = [_ticket(ticket, account, files) for ticket in own]
    elsewhere = [
        {"ticket": m.ticket.reference, **_message(m, account, files)} for m in written.order_by(Message.id)
    ]
    data = {
        "account": {**views.account_dict(account), "created_at": account.created_at.isoformat()},
        "tickets": tickets,
        "messages_on_other_tickets": elsewhere,
    }
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    (folder / "export.json").write_text(text, encoding="utf-8")
    messages = sum(len(t["messages"]) for t in tickets) + len(elsewhere)
    return Exported(folder, len(own), messages, files.count)


def _ticket(ticket: Ticket, account: Account, files: _Files) -> dict[str, Any]:
    data = views.ticket_summary(ticket)
    public = ticket.messages.where(Message.visibility == "public").order_by(Message.id)
    data["messages"] = [_message(m, account, files) for m in public]
    data["events"] = [views.event_dict(e) for e in ticket.events.order_by(Event.id)]
    return data


def _message(message: Message, account: Account, files: _Files) -> dict[str, Any]:
    data = views.message_dict(message)
    data["attachments"] = [
        {**item, "path": files.attachment(message.id, item["filename"], item["path"])}
        for item in data["attachments"]
    ]
    theirs = message.author_id == account.id or message.author_email == account.email
    data["raw_mail"] = files.raw(message.raw_path) if theirs and message.direction == "in" else None
    return data


class _Files:
    """Copies files into the export under names of its own; a sender's file name is kept only
    as the tail of a generated one, made safe."""

    def __init__(self, desk: Desk, folder: Path):
        self.desk, self.folder, self.count = desk, folder, 0

    def attachment(self, message_id: int, filename: str, stored_path: str) -> str | None:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename).lstrip(".") or "file"
        return self._copy(self.desk.store.attachment_file(stored_path), f"attachments/{message_id}-{safe}")

    def raw(self, raw_path: str) -> str | None:
        source = self.desk.store.raw_file(raw_path)
        return self._copy(source, f"mails/{source.name}") if source is not None else None

    def _copy(self, source: Path | None, name: str) -> str | None:
        if source is None or not source.is_file():
            return None
        destination = self.folder / name
        destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        self.count += 1
        return name
