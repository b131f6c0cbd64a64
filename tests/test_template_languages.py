"""Every template in every language, rendered with `mailbot check`'s sample values: no sentence
of the English mail may turn up in the Dutch or the French one (an untranslated string, or
English that Python put into the context)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from mailbot.context import TEMPLATE_DIR
from mailbot.desk.commands import check_commands, read_commands, valid_commands
from mailbot.outgoing.render import Renderer
from mailbot.outgoing.template_check import sample_context

PRODUCT = {"key": "DEMO", "name": "Demo", "address": "support@demo.example"}
RENDERER = Renderer(TEMPLATE_DIR)
_TAG = re.compile(r"<[^>]+>")
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+|\n")
_WORD = re.compile(r"[^\W\d_]{2,}")


# Values that name something (a person, a ticket, the customer's own words) and read the same
# in every language. Everything else in the context is meant to be worded by the template.
NAMING = frozenset(
    {
        "name",
        "email",
        "address",
        "key",
        "reference",
        "subject",
        "original_subject",
        "text",
        "attachments",
        "missing_attachments",
        "failed_address",
        "line",
        "requester",
        "assignee",
    }
)


def _values(value: Any, naming: bool = False) -> Iterator[str]:
    if isinstance(value, str):
        if naming:
            yield value
            yield from value.splitlines()  # in HTML, line breaks come between the lines
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _values(item, naming or key in NAMING)
    elif isinstance(value, list):
        for item in value:
            yield from _values(item, naming)


def sentences(text: str, context: dict[str, Any]) -> set[str]:
    """The sentences of a rendered mail with the sample values (names, references, addresses,
    the customer's text) taken out; command syntax and sentences of fewer than three words are
    left aside, as they read the same in every language."""
    text = _TAG.sub(" ", text).replace("&nbsp;", " ")
    for value in sorted(_values(context), key=len, reverse=True):
        if len(value) > 2:
            text = text.replace(value, " ")
    found = set()
    for part in _SENTENCE_END.split(text):
        sentence = " ".join(part.split())
        if sentence.startswith("#") or len(_WORD.findall(sentence)) < 3:
            continue
        found.add(sentence)
    return found


# Commands as a customer might write them: the errors and the list of valid commands come
# from mailbot.commands itself, as a real mail's would.
WRONG = "#status open\n#close now\n#priority urgent\n#priority high\n#frobnicate\n\nPlease hurry."


def context_for(staff: bool) -> dict[str, Any]:
    context = sample_context(PRODUCT)
    context["errors"] = check_commands(read_commands(WRONG), staff)
    context["valid_commands"] = valid_commands(staff)
    return context


def rendered(name: str, language: str, staff: bool = False) -> tuple[set[str], set[str]]:
    context = context_for(staff)
    mail = RENDERER.render(name, language, "", context)
    return sentences(mail.subject + "\n" + mail.text, context), sentences(mail.html, context)


@pytest.mark.parametrize("name", RENDERER.template_names())
@pytest.mark.parametrize("language", ["nl", "fr"])
@pytest.mark.parametrize("staff", [False, True], ids=["customer", "engineer"])
def test_no_english_sentence_in_the_translated_mails(name, language, staff):
    english_text, english_html = rendered(name, "en", staff)
    text, html = rendered(name, language, staff)
    assert english_text, f"{name}: the English mail has sentences to compare"
    assert sorted(english_text & text) == [], f"{name}.txt ({language}) has English sentences"
    assert sorted(english_html & html) == [], f"{name}.html ({language}) has English sentences"
