"""Every mail mailbot sends, rendered the way customers and engineers will read it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from mailbot.errors import TemplateError
from mailbot.outgoing.render import REPLY_MARKERS, Renderer, names

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "mailbot" / "templates"
LANGUAGES = ("en", "nl", "fr")

# The context keys each template needs (top level); the report's table is this dict.
KEYS = {
    "ticket_opened": {"product", "ticket", "recipient"},
    "new_ticket": {"product", "ticket", "text"},
    "reply": {"product", "ticket", "actor", "text"},
    "customer_reply": {"product", "ticket", "actor", "text", "attachments"},
    "internal_note": {"product", "ticket", "actor", "text"},
    "status_changed": {"product", "ticket", "recipient", "actor", "old", "new"},
    "priority_changed": {"product", "ticket", "recipient", "actor", "old", "new"},
    "info_requested": {"product", "ticket", "recipient", "actor", "text"},
    "ticket_closed": {"product", "ticket", "recipient", "actor"},
    "refused": {"product", "recipient", "reason", "original_subject", "limit"},
    "command_error": {"product", "ticket", "recipient", "errors", "valid_commands"},
    "command_not_trusted": {"product", "ticket", "recipient", "authentication"},
    "sla_warning": {"product", "ticket", "sla"},
    "sla_breach": {"product", "ticket", "sla"},
    "reminder": {"product", "ticket", "recipient", "days"},
    "auto_closed": {"product", "ticket", "recipient", "days"},
    "credit_low": {"product", "ticket", "recipient", "credit"},
    "delivery_failed": {"product", "ticket", "failed_address"},
}
ALL_TEMPLATES = sorted(KEYS)
CUSTOMER_TEMPLATES = [
    "ticket_opened",
    "reply",
    "status_changed",
    "priority_changed",
    "info_requested",
    "ticket_closed",
    "command_error",
    "reminder",
    "auto_closed",
    "credit_low",
]
# Values that differ per template where one shared sample would not make sense.
PER_TEMPLATE = {
    "priority_changed": {"old": "medium", "new": "critical"},
    "refused": {"reason": "not_authorised"},
    "command_not_trusted": {"authentication": "missing"},
}


def sample_context(name: str = "", **changes: object) -> dict:
    context = {
        "product": {"key": "VISI", "name": "VISI", "address": "visi.support@produsoft.test"},
        "ticket": {
            "reference": "VISI-42",
            "subject": "Export to STEP fails",
            "status": "open",
            "priority": "high",
            "category": "bug",
            "requester": {"name": "Anna de Vries", "email": "anna@customer.test"},
            "assignee": {"name": "Bert Janssens", "email": "bert@produsoft.test"},
            "created_at": "2025-03-03 09:12",
            "due_first_response": "2025-03-03 10:12",
            "due_resolution": "2025-03-04 09:12",
            "flags": ["contract_expired"],
            "linked_reference": "",
        },
        "recipient": {
            "name": "Anna de Vries",
            "email": "anna@customer.test",
            "role": "customer",
            "language": "en",
        },
        "actor": {"name": "Bert Janssens", "email": "bert@produsoft.test", "role": "engineer"},
        "text": "Could you send us the log file?\nIt is in C:\\VISI\\logs.",
        "old": "new",
        "new": "open",
        "reason": "no_access",
        "original_subject": "Licence question",
        "limit": "10 MB",
        "errors": ["#priority urgent: unknown priority"],
        "valid_commands": ["#close", "#priority critical|high|medium|low"],
        "sla": {"kind": "resolution", "due": "2025-03-04 09:12", "used_percent": 80},
        "days": 5,
        "credit": {"remaining_minutes": 30, "expires": "2026-12-31"},
        "attachments": ["visi.log", "screenshot.png"],
        "failed_address": "anna@customer.test",
    }
    context.update(PER_TEMPLATE.get(name, {}))
    context.update(changes)
    return context


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    # One renderer for the module: compiled templates are cached, as in the daemon.
    return Renderer(TEMPLATE_DIR)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_every_mail_renders_in_every_language(renderer, name, language):
    mail = renderer.render(name, language, "VISI", sample_context(name))
    assert mail.subject and "\n" not in mail.subject
    assert mail.text.strip() and mail.text.endswith("\n")
    assert mail.html.startswith("<!DOCTYPE html>") and f'lang="{language}"' in mail.html
    if name == "refused":
        assert "VISI-42" not in mail.subject
    else:
        assert mail.subject == "[VISI-42] Export to STEP fails"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_each_template_needs_only_its_documented_keys(renderer, name, language):
    context = {key: value for key, value in sample_context(name).items() if key in KEYS[name]}
    mail = renderer.render(name, language, "VISI", context)
    assert mail.text.strip()


def test_a_missing_value_fails_loudly_naming_the_file_and_line(renderer):
    context = sample_context()
    del context["ticket"]["reference"]
    with pytest.raises(TemplateError, match=r"en/ticket_opened\.txt:\d+: .*'reference'") as caught:
        renderer.render("ticket_opened", "en", "VISI", context)
    assert isinstance(caught.value.__cause__, UndefinedError)
    with pytest.raises(TemplateError, match=r"en/reply\.txt:\d+: 'text' is undefined"):
        renderer.render("reply", "en", "VISI", {k: v for k, v in sample_context().items() if k != "text"})


@pytest.mark.parametrize("language", LANGUAGES)
def test_template_syntax_in_user_text_appears_literally(renderer, language):
    evil = "{{ 7*7 }} {% for x in () %}gone{% endfor %} {{ ''.__class__.__mro__ }}"
    context = sample_context(text=evil)
    context["ticket"]["subject"] = "{{ 7*7 }} {% for x in () %}"
    mail = renderer.render("new_ticket", language, "VISI", context)
    assert mail.subject == "[VISI-42] {{ 7*7 }} {% for x in () %}"
    assert evil in mail.text
    assert "49" not in mail.text
    assert "{{ 7*7 }} {% for x in () %}gone{% endfor %}" in mail.html


@pytest.mark.parametrize("name", ["new_ticket", "reply", "customer_reply", "internal_note", "info_requested"])
def test_markup_in_user_text_is_escaped_in_html(renderer, name):
    context = sample_context(name, text='<script>alert(1)</script>\n<img src=x onerror="x()">')
    context["ticket"]["subject"] = "<b>urgent</b>"
    context["actor"]["name"] = "<i>Eve</i>"
    mail = renderer.render(name, "en", "VISI", context)
    assert "<script>" not in mail.html and "<img" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;<br>" in mail.html
    assert "<b>urgent</b>" not in mail.html and "<i>Eve</i>" not in mail.html
    assert "<script>alert(1)</script>" in mail.text  # plain text is shown as written


def test_a_product_override_wins_for_its_file_only(tmp_path):
    override = tmp_path / "VISI" / "en"
    override.mkdir(parents=True)
    (override / "ticket_opened.txt").write_text(
        "{% block subject %}VISI case {{ ticket.reference }}{% endblock %}\n"
        '{% block body %}{% import "_macros.txt" as m %}{{ m.greeting(recipient) }}\n'
        "Thanks from the VISI desk.{% endblock %}\n",
        encoding="utf-8",
    )
    renderer = Renderer(TEMPLATE_DIR, {"VISI": tmp_path / "VISI"})
    context = sample_context()

    overridden = renderer.render("ticket_opened", "en", "VISI", context)
    assert overridden.subject == "VISI case VISI-42"
    assert overridden.text == "Hello Anna de Vries,\nThanks from the VISI desk.\n"
    assert "We have registered your request" in overridden.html  # the default .html stays

    assert renderer.render("reply", "en", "VISI", context).subject.startswith("[VISI-42]")
    other = renderer.render("ticket_opened", "en", "WORKNC", context)
    assert other.subject == "[VISI-42] Export to STEP fails"
    assert renderer.render("ticket_opened", "nl", "VISI", context).text.startswith(REPLY_MARKERS["nl"])


@pytest.mark.parametrize(
    ("language", "old_status", "new_status"),
    [("nl", "Nieuw", "In behandeling"), ("fr", "En attente de prise en charge", "En cours de traitement")],
)
def test_dutch_and_french_mails_name_the_status_in_their_language(renderer, language, old_status, new_status):
    mail = renderer.render("status_changed", language, "VISI", sample_context())
    assert old_status in mail.text and new_status in mail.text
    assert "In progress" not in mail.text
    assert new_status in mail.html


@pytest.mark.parametrize(
    ("language", "old_word", "new_word"),
    [("nl", "Gemiddeld", "Kritiek"), ("fr", "Moyenne", "Critique"), ("en", "Medium", "Critical")],
)
def test_priority_change_names_both_priorities_and_who(renderer, language, old_word, new_word):
    mail = renderer.render("priority_changed", language, "VISI", sample_context("priority_changed"))
    assert old_word in mail.text and new_word in mail.text
    assert "Bert Janssens" in mail.text
    assert "2025-03-04 09:12" in mail.text  # the new target


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", CUSTOMER_TEMPLATES)
def test_customer_mails_start_with_the_reply_marker(renderer, name, language):
    mail = renderer.render(name, language, "VISI", sample_context(name))
    assert mail.text.splitlines()[0] == REPLY_MARKERS[language]
    assert REPLY_MARKERS[language] in mail.html


def test_the_reply_markers_are_the_agreed_lines():
    assert dict(REPLY_MARKERS) == {
        "en": "-- Reply above this line --",
        "nl": "-- Antwoord boven deze regel --",
        "fr": "-- Répondez au-dessus de cette ligne --",
    }


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_refused_reply_reveals_nothing_about_the_ticket(renderer, language):
    # The caller passes the ticket by mistake: the template still must not use it.
    context = sample_context("refused", original_subject="About my licence")
    mail = renderer.render("refused", language, "VISI", context)
    assert mail.subject == "Re: About my licence"
    for part in (mail.text, mail.html):
        assert "VISI-42" not in part and "Bert" not in part and "Export to STEP" not in part
    assert REPLY_MARKERS[language] not in mail.text


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("no_access", "account manager"),
        ("unknown_sender", "not registered"),
        ("contract_expired", "valid maintenance contract"),
        ("too_large", "limit of 10 MB"),
    ],
)
def test_each_refusal_explains_itself(renderer, reason, expected):
    mail = renderer.render("refused", "en", "VISI", sample_context(reason=reason))
    assert expected in mail.text and expected in mail.html
    assert mail.subject == "Re: Licence question"


def test_subject_is_one_line(renderer):
    context = sample_context()
    context["ticket"]["subject"] = "Line one\r\n  Line two\tend "
    mail = renderer.render("reply", "en", "VISI", context)
    assert mail.subject == "[VISI-42] Line one Line two end"


def test_command_error_lists_what_was_wrong_and_what_is_valid(renderer):
    mail = renderer.render("command_error", "en", "VISI", sample_context())
    assert "  - #priority urgent: unknown priority" in mail.text
    assert "  #priority critical|high|medium|low" in mail.text
    assert "nothing was changed" in mail.text


def test_status_colours_follow_the_policies(renderer):
    html = renderer.render("status_changed", "en", "VISI", sample_context()).html
    assert "background-color:#c62828" in html  # new: red
    assert "background-color:#ef6c00" in html  # open: orange
    resolved = renderer.render("status_changed", "en", "VISI", sample_context(new="resolved"))
    assert "background-color:#2e7d32" in resolved.html  # resolved: green
    assert "#close" in resolved.text


def test_a_reopened_ticket_is_called_reopened(renderer):
    mail = renderer.render("status_changed", "nl", "VISI", sample_context(old="resolved"))
    assert "is heropend" in mail.text


def test_unknown_language_falls_back_to_english_and_regions_are_understood(renderer):
    assert renderer.render("reply", "de", "VISI", sample_context()).text.startswith(REPLY_MARKERS["en"])
    assert renderer.render("reply", "fr-BE", "VISI", sample_context()).text.startswith(REPLY_MARKERS["fr"])


def test_names_translate_codes_for_callers():
    assert names("nl")["status"]["open"] == "In behandeling"
    assert names("fr")["priority"]["high"] == "Haute"
    assert names("xx")["category"]["suggestion"] == "Suggestion"
    assert names("en")["flag"]["brand_new_flag"] == "brand_new_flag"
    words = names("en")
    words["status"]["open"] = "changed by a caller"
    assert names("en")["status"]["open"] == "In progress"


def test_engineers_get_the_command_cheat_sheet_and_the_contract_flag(renderer):
    context = sample_context(recipient={"name": "Bert", "email": "b@p.test", "role": "engineer"})
    mail = renderer.render("new_ticket", "en", "VISI", context)
    assert "#status open|waiting|resolved|closed" in mail.text
    assert "maintenance contract has expired" in mail.text
    assert "Attachments: visi.log, screenshot.png" in mail.text


def test_plural_days(renderer):
    one = renderer.render("reminder", "en", "VISI", sample_context(days=1)).text
    assert "for 1 day." in one
    assert "5 dagen" in renderer.render("reminder", "nl", "VISI", sample_context()).text


def test_template_names_cannot_reach_other_files(renderer):
    with pytest.raises(ValueError):
        renderer.render("../ticket_opened", "en", "VISI", sample_context())
    with pytest.raises(ValueError):
        renderer.render("_macros", "en", "VISI", sample_context())


def test_rendering_does_not_change_the_callers_context(renderer):
    context = sample_context()
    before = copy.deepcopy(context)
    renderer.render("new_ticket", "fr", "VISI", context)
    assert context == before
