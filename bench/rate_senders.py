"""How often a person's mail from the real-world corpus becomes a ticket with the right
requester and subject: zammad's sample mails (`zammad/test/data/mail/mailNNN.box`) that have
expectations (`mailNNN.yml`: `from_email`, `subject`) and that mailbot does not read as
automatic (bounces, auto-replies, lists, no-reply senders are another rate's business).

Each mail goes through mailbot's ingest into a fresh installation whose product is open to
unknown senders. Addresses are compared case-insensitively and with a quoted local part
unquoted (`"fax 42"@gw` is how `fax 42@gw` is written); subjects after folding white space,
as the ticket title mailbot makes of them.

    python -m bench.rate_senders [CORPUS]     (default: ../shared/corpus)
"""

from __future__ import annotations

import base64
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ZAMMAD_MAIL = Path("zammad") / "test" / "data" / "mail"


@dataclass(frozen=True)
class Case:
    """One zammad sample mail and what its expectations say it is from and about."""

    box: Path
    from_email: str
    subject: str


class _RubyTolerantLoader(yaml.SafeLoader):
    """Zammad's expectations are Ruby YAML: unknown tags are read as plain data."""


def _construct_unknown(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


def _construct_binary(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return base64.b64decode(loader.construct_scalar(node)).decode("utf-8", "replace")  # type: ignore[arg-type]


_RubyTolerantLoader.add_multi_constructor("!", _construct_unknown)
_RubyTolerantLoader.add_constructor("tag:yaml.org,2002:binary", _construct_binary)


def person_cases(corpus: Path) -> Iterator[Case]:
    """Zammad's sample mails with expectations that mailbot does not take for automatic."""
    from mailbot.errors import QuarantineError
    from mailbot.inbound.parse import parse_mail

    for box in sorted((corpus / ZAMMAD_MAIL).glob("mail*.box")):
        yml = box.with_suffix(".yml")
        if not yml.exists():
            continue
        try:
            automatic = parse_mail(box.read_bytes()).automatic
        except QuarantineError:
            automatic = ""  # not read at all: counted, as a miss
        if automatic:
            continue
        expected = yaml.load(yml.read_text(encoding="utf-8"), Loader=_RubyTolerantLoader)
        yield Case(box, str(expected.get("from_email") or ""), str(expected.get("subject") or ""))


def same_address(got: str, want: str) -> bool:
    def plain(address: str) -> str:
        local, _, domain = address.strip().strip('"').lower().rpartition("@")
        return f"{local.strip(chr(34))}@{domain}"

    return plain(got) == plain(want)


def same_subject(got: str, want: str) -> bool:
    from mailbot.desk.subjects import clean_subject

    return got == clean_subject(" ".join(want.split()))


def sender_subject_rate(corpus: Path) -> tuple[int, int]:
    """(matched, total): of zammad's person mails with expectations, how many open a ticket
    whose requester and subject are the expected ones."""
    with tempfile.TemporaryDirectory(prefix="mailbot-rate-") as data_dir:
        return _rate(corpus, Path(data_dir))


def _rate(corpus: Path, data_dir: Path) -> tuple[int, int]:
    from mailbot.config import load_settings
    from mailbot.context import make_desk
    from mailbot.service.ingest import ingest_mail
    from mailbot.sources.base import FetchedMail
    from mailbot.store.db import close_database, open_database
    from mailbot.store.files import sha256_hex
    from mailbot.store.migrations import migrate
    from mailbot.store.models import Ticket

    settings = load_settings(
        {
            "MAILBOT_DATA_DIR": str(data_dir),
            "MAILBOT_PRODUCTS": "CORP",
            "MAILBOT_PRODUCT_CORP_ADDRESS": "support@corpus.test",
            "MAILBOT_PRODUCT_CORP_UNKNOWN_SENDERS": "open",
        }
    )
    migrate(open_database(settings.database_url))
    try:
        desk, product = make_desk(settings), settings.product("CORP")
        matched = total = 0
        for case in person_cases(corpus):
            raw = case.box.read_bytes()
            mail = FetchedMail(mailbox="rate", uidvalidity=0, key=sha256_hex(raw), raw=raw)
            result = ingest_mail(desk, product, mail)
            ticket = Ticket.get_or_none(Ticket.reference == result.reference) if result.reference else None
            total += 1
            good = (
                ticket is not None
                and same_address(ticket.requester.email, case.from_email)
                and same_subject(ticket.subject, case.subject)
            )
            matched += good
            if not good:
                got = (ticket.requester.email, ticket.subject) if ticket else (result.outcome, result.reason)
                print(f"  {case.box.name}: want {case.from_email!r}, got {got!r}", file=sys.stderr)
        return matched, total
    finally:
        close_database()


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    if not (folder / ZAMMAD_MAIL).is_dir():
        sys.exit(f"corpus not found at {folder}")
    good, count = sender_subject_rate(folder)
    print(
        f"person mails with the right requester and subject: {good} of {count}"
        f" ({100 * good / max(count, 1):.1f} %)"
    )
