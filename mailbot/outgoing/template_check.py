"""`mailbot check`'s look at the templates: every mail template, from the defaults and from each
product's overrides, rendered in every language with sample values, so that a broken file is
found by the admin who edited it rather than by the first customer who writes in.

The sample holds every value any template is given (`mailbot.outgoing.notify` builds the real ones), in
the same shapes. It leaves rendering to `mailbot.outgoing.render` and reporting to the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mailbot.errors import TemplateError
from mailbot.outgoing.render import LANGUAGES, Renderer

_ERROR_CODES = (
    "twice",
    "unknown",
    "staff_only",
    "choices",
    "assign_target",
    "duration",
    "no_argument",
    "not_engineer",
    "info_with_status",
    "info_with_internal",
    "no_second_line",
    "reference",
    "not_linkable",
    "link_self",
    "merge_requester",
)
# What one engineer mail did to a customer's prepaid credit (`credit` and `prepaid` alike).
_CREDIT = {
    "remaining_minutes": 30,
    "expires": "2026-12-31",
    "recorded_minutes": 45,
    "charged_minutes": 45,
    "refunded_minutes": 60,
    "exhausted": False,
    "low": True,
}
_PERSON = {"name": "Anna de Vries", "email": "anna@customer.example", "role": "customer", "language": "en"}


def sample_context(product: dict[str, str]) -> dict[str, Any]:
    """Values for every template, as `mailbot.outgoing.notify` shapes them for a mail about a ticket."""
    return {
        "product": product,
        "ticket": {
            "reference": f"{product['key']}-42",
            "subject": "Export stops halfway",
            "status": "open",
            "priority": "high",
            "category": "bug",
            "requester": {"name": _PERSON["name"], "email": _PERSON["email"]},
            "assignee": {"name": "Bert Janssens", "email": "bert@desk.example"},
            "created_at": "2026-03-03T09:12:00+01:00[Europe/Brussels]",
            "due_first_response": "2026-03-03T10:12:00+01:00[Europe/Brussels]",
            "due_resolution": "2026-03-04T09:12:00+01:00[Europe/Brussels]",
            "flags": ["contract_expired"],
            "linked_reference": "",
            "related": [f"{product['key']}-7"],
        },
        "recipient": dict(_PERSON),
        "actor": {"name": "Bert Janssens", "email": "bert@desk.example", "role": "engineer"},
        "text": "Could you send us the log file?\nIt is in the logs folder.",
        "attachments": ["export.log", "export-full.zip", "screenshot.png", "trace.txt"],
        "kept_back": [{"name": "export-full.zip", "size": 31457280}],
        "missing_attachments": ["trace.txt"],
        "inline_images": [{"cid": "shot1@client.example", "name": "screenshot.png"}],
        "old": "new",
        "new": "open",
        "reason": "no_access",
        "original_subject": "Licence question",
        "limit": "",
        "changes": [
            {"field": "priority", "old": "medium", "new": "high"},
            {"field": "status", "old": "new", "new": "open"},
        ],
        # One error of each kind (`mailbot.commands.CommandError`), so every wording is rendered.
        "errors": [
            {
                "code": code,
                "line": "#priority urgent",
                "command": "priority",
                "choices": ["critical", "high", "medium", "low"],
                "address": "x@desk.example",
                "product": product["key"],
                "reference": f"{product['key']}-7",
            }
            for code in _ERROR_CODES
        ],
        "valid_commands": ["status", "priority", "info", "assign", "internal", "time", "category", "close"],
        "text_kept": True,
        "sla": {
            "kind": "resolution",
            "due": "2026-03-04T09:12:00+01:00[Europe/Brussels]",
            "used_percent": 80,
            "late_minutes": 200,
        },
        "days": 5,
        # A customer's question (`query_answer`): their tickets, or one ticket's public history;
        # the history also goes with an escalation (`escalated`).
        "asked": "show",
        "found": True,
        "reference": f"{product['key']}-42",
        "tickets": [
            {
                "reference": f"{product['key']}-42",
                "subject": "Export stops halfway",
                "status": "open",
                "priority": "high",
                "changed_at": "2026-03-03T11:40:00+01:00[Europe/Brussels]",
            }
        ],
        "history": [
            {
                "author": {"name": _PERSON["name"], "email": _PERSON["email"]},
                "from_team": False,
                "at": "2026-03-03T09:12:00+01:00[Europe/Brussels]",
                "text": "The export stops at 50%.",
            },
            {
                "author": {"name": "Bert Janssens", "email": ""},
                "from_team": True,
                "at": "2026-03-03T11:40:00+01:00[Europe/Brussels]",
                "text": "Could you send us the log file?",
            },
        ],
        "credit": dict(_CREDIT),
        "prepaid": dict(_CREDIT),
        "merged_into": {"reference": f"{product['key']}-7", "subject": "Export stops at 50%"},
        "failed_address": _PERSON["email"],
        "authentication": "missing",
    }


def check_templates(renderer: Renderer, products: Iterable[tuple[str, str, str]]) -> list[str]:
    """Render every template in every language: once from the defaults, and once per product
    that has overrides (`products`: key, name and address of those). Returns one line per
    failure, naming the file and line; [] when everything renders."""
    problems: list[str] = []
    seen: set[str] = set()
    targets = [("", {"key": "DEMO", "name": "Demo", "address": "support@demo.example"})]
    targets += [(key, {"key": key, "name": name, "address": address}) for key, name, address in products]
    for key, product in targets:
        context = sample_context(product)
        for name in renderer.template_names():
            for language in LANGUAGES:
                try:
                    renderer.render(name, language, key, context)
                except TemplateError as exc:
                    line = f"{name} ({language}{', ' + key if key else ''}): {exc}"
                    if str(exc) not in seen:  # a broken layout shared by many mails: once
                        problems.append(line)
                        seen.add(str(exc))
    return problems
