"""Mails as people and machines write them, built for tests."""

from __future__ import annotations

import email
import email.policy
import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

_counter = itertools.count(1)


def write_mail(
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    cc: str = "",
    in_reply_to: str = "",
    references: str = "",
    headers: dict[str, str] | None = None,
    message_id: str = "",
    html: str = "",
    attachments: list[tuple[str, bytes, str]] = (),
    inline: list[tuple[str, bytes, str]] = (),
) -> bytes:
    """A mail as a mail client sends it. Message-IDs are given with or without brackets.
    `attachments`: (file name, bytes, type); `inline`: (Content-ID, bytes, type) of images the
    HTML shows (`<img src="cid:...">`), in a multipart/related beside it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = (
        _bracket(message_id) if message_id else make_msgid(f"t{next(_counter)}", "client.test")
    )
    if in_reply_to:
        msg["In-Reply-To"] = _bracket(in_reply_to)
        msg["References"] = " ".join(_bracket(r) for r in (references or in_reply_to).split())
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    for cid, payload, ctype in inline:
        maintype, subtype = ctype.split("/", 1)
        html_part = msg.get_body(("html",))
        assert html_part is not None, "inline images need html"
        html_part.add_related(payload, maintype=maintype, subtype=subtype, cid=_bracket(cid))
    for filename, payload, ctype in attachments:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=email.policy.SMTP)


def quote(text: str, who: str = "Support") -> str:
    """The quoted history a mail client puts under a reply."""
    lines = "\n".join(f"> {line}" for line in text.splitlines())
    return f"On Mon, 23 Nov 2026 at 10:00, {who} wrote:\n{lines}\n"


def message_id_of(parsed: EmailMessage) -> str:
    return str(parsed["Message-ID"]).strip().strip("<>")


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _bracket(mid: str) -> str:
    mid = mid.strip()
    return mid if mid.startswith("<") else f"<{mid}>"
