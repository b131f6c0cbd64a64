"""An outgoing mail as the outbox keeps it until it is sent: what to say (the template, the
language and the context values as they were when the mail was queued) and the header data, as
JSON in the row; and turning that into the mail's bytes when the row is sent (`write_mail`).

Rendering at send time keeps a broken template away from the change that caused the mail: the
ticket is committed whatever the template does, and the mail waits until the template is fixed.
The context is captured at queue time, so the mail tells the state right after the change, not
the state when it happens to be sent. The Message-ID is decided at queue time too: replies thread
on it before the mail has even gone out.

The row also names the stored attachments it encloses (`Outbox.attachments`, ids chosen when it
was queued); they are read from disk when the mail is written. A file that is gone by then (its
row deleted, the file removed) does not stop the mail: it goes out without it, and the template
names it (`missing_attachments`).

It leaves choosing recipients and building the context to `mailbot.outgoing.notify`, rendering to
`mailbot.outgoing.render`, RFC 5322 to `mailbot.outgoing.compose`, and when to send to
`mailbot.outgoing.outbox`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbot.inbound.message import Address
from mailbot.outgoing.compose import OutgoingMail, compose
from mailbot.outgoing.enclosures import Enclosure, enclosure
from mailbot.outgoing.render import Rendered, Renderer
from mailbot.store.models import Attachment, Outbox


@dataclass(frozen=True, kw_only=True)
class Headers:
    """The header data of one queued mail, everything `OutgoingMail` needs besides the text."""

    sender: Address
    to: Address
    loop_marker: str
    reply_to: Address | None = None
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    automatic: str = ""
    extra: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> str:
        return _dumps(
            {
                "from": _pair(self.sender),
                "to": _pair(self.to),
                "loop_marker": self.loop_marker,
                "reply_to": _pair(self.reply_to) if self.reply_to else None,
                "in_reply_to": self.in_reply_to,
                "references": list(self.references),
                "automatic": self.automatic,
                "extra": [list(header) for header in self.extra],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Headers:
        data = json.loads(text)
        return cls(
            sender=Address(*data["from"]),
            to=Address(*data["to"]),
            loop_marker=data["loop_marker"],
            reply_to=Address(*data["reply_to"]) if data["reply_to"] else None,
            in_reply_to=data["in_reply_to"],
            references=tuple(data["references"]),
            automatic=data["automatic"],
            extra=tuple((name, value) for name, value in data["extra"]),
        )


def context_json(context: Mapping[str, Any]) -> str:
    """The template's values as kept in the row; plain JSON values only (a date is text by then),
    so that what a mail says cannot depend on the database at send time."""
    return _dumps(context)


def is_draft(row: Outbox) -> bool:
    """Whether the row still has to be rendered: no bytes yet (alerts and rows queued before
    drafts existed carry their bytes from the start)."""
    return not row.data


def enclosed_ids(row: Outbox) -> list[int]:
    return [int(i) for i in json.loads(row.attachments)] if row.attachments else []


def write_mail(renderer: Renderer, row: Outbox, data_dir: Path) -> tuple[Rendered, bytes]:
    """Render the row's template and compose the mail with the files it encloses, read from
    under `data_dir`. Raises `TemplateError` when the template cannot be rendered."""
    files, missing = _enclosures(enclosed_ids(row), data_dir)
    context = json.loads(row.context)
    # Known only now: what the HTML shows inline, and what could not be enclosed after all.
    context["inline_images"] = [{"cid": f.content_id, "name": f.filename} for f in files if f.inline]
    context["missing_attachments"] = missing
    rendered = renderer.render(row.template, row.language, row.product, context)
    headers = Headers.from_json(row.headers)
    mail = OutgoingMail(
        sender=headers.sender,
        to=(headers.to,),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=row.message_id,
        in_reply_to=headers.in_reply_to,
        references=headers.references,
        automatic=headers.automatic,
        loop_marker=headers.loop_marker,
        reply_to=headers.reply_to,
        extra_headers=headers.extra,
        date=row.created_at,
        enclosures=tuple(files),
    )
    return rendered, compose(mail)


def _enclosures(ids: list[int], data_dir: Path) -> tuple[list[Enclosure], list[str]]:
    """The stored files `ids` names that are on disk, in order, and the names of those that
    are not (or "?" for a file whose row is gone)."""
    if not ids:
        return [], []
    rows = {a.id: a for a in Attachment.select().where(Attachment.id.in_(ids))}
    files, missing = [], []
    for attachment_id in ids:
        row = rows.get(attachment_id)
        path = data_dir / row.stored_path if row is not None else None
        if row is None or path is None or not path.is_file():
            missing.append(row.filename if row is not None else "?")
            continue
        files.append(enclosure(row.filename, row.content_type, path, row.content_id, row.inline))
    return files, missing


def _pair(address: Address) -> list[str]:
    return [address.email, address.name]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
