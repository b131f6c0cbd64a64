"""Render mailbot's outgoing mails from Jinja2 templates, in English, Dutch or French.

`Renderer.render()` takes a template name (`ticket_opened`, `reply`, ...), a language, a product key
and a context of plain values, and returns a `Rendered` subject, text and HTML. Templates live in
`templates/<lang>/NAME.txt` (blocks `subject` and `body`) and `NAME.html` (optional, extends
`_layout.html`); language-neutral HTML helpers sit in `templates/common/`. A product may override
any single file with a folder of the same layout.

Templates are data (house style, principle 11): user text only ever reaches a template as a
variable, autoescaping is on for HTML, and undefined variables fail loudly. This module also owns
the translated words for status, priority and category codes (`names()`) and the reply markers
that the inbound side cuts quoted history at (`REPLY_MARKERS`).

It leaves to others: building the context from the database (the caller), choosing recipients and
the language, and turning a `Rendered` into RFC 5322 bytes (`mailbot.outgoing.compose`).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jinja2 import (
    BaseLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    pass_context,
    select_autoescape,
)
from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from mailbot.errors import TemplateError
from mailbot.outgoing.formats import desk_name, format_day, format_moment
from mailbot.vocabulary import Language, values

LANGUAGES = values(Language)
DEFAULT_LANGUAGE = Language.EN.value

# The line every ticket mail starts with. The inbound parser cuts a reply at this line, so these
# strings are part of the mail contract: change them only together with the parser.
REPLY_MARKERS: Mapping[str, str] = MappingProxyType(
    {
        "en": "-- Reply above this line --",
        "nl": "-- Antwoord boven deze regel --",
        "fr": "-- Répondez au-dessus de cette ligne --",
    }
)

_WORDS: dict[str, dict[str, dict[str, str]]] = {
    "en": {
        "status": {
            "new": "New",
            "open": "In progress",
            "waiting": "Waiting for your information",
            "resolved": "Resolved",
            "closed": "Closed",
        },
        "priority": {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"},
        "category": {"question": "Question", "bug": "Bug", "suggestion": "Suggestion"},
        "flag": {
            "contract_expired": "Maintenance contract expired",
            "unknown_sender": "New sender (account created automatically)",
            "no_credit": "No support credit left",
            "before_cutover": "Arrived before mailbot started (not on the SLA clock)",
        },
        "sla_kind": {"first_response": "first response", "resolution": "resolution"},
        "role": {
            "customer": "customer",
            "engineer": "engineer",
            "board": "review board",
            "watcher": "watcher",
        },
    },
    "nl": {
        "status": {
            "new": "Nieuw",
            "open": "In behandeling",
            "waiting": "Wacht op uw informatie",
            "resolved": "Opgelost",
            "closed": "Gesloten",
        },
        "priority": {"critical": "Kritiek", "high": "Hoog", "medium": "Gemiddeld", "low": "Laag"},
        "category": {"question": "Vraag", "bug": "Bug", "suggestion": "Suggestie"},
        "flag": {
            "contract_expired": "Onderhoudscontract verlopen",
            "unknown_sender": "Nieuwe afzender (account automatisch aangemaakt)",
            "no_credit": "Geen supporttegoed meer",
            "before_cutover": "Binnengekomen voor de start van mailbot (buiten de SLA)",
        },
        "sla_kind": {"first_response": "eerste reactie", "resolution": "oplossing"},
        "role": {"customer": "klant", "engineer": "engineer", "board": "reviewboard", "watcher": "volger"},
    },
    "fr": {
        "status": {
            "new": "En attente de prise en charge",
            "open": "En cours de traitement",
            "waiting": "En attente de vos informations",
            "resolved": "Résolu",
            "closed": "Clôturé",
        },
        "priority": {"critical": "Critique", "high": "Haute", "medium": "Moyenne", "low": "Basse"},
        "category": {"question": "Question", "bug": "Bug", "suggestion": "Suggestion"},
        "flag": {
            "contract_expired": "Contrat de maintenance expiré",
            "unknown_sender": "Nouvel expéditeur (compte créé automatiquement)",
            "no_credit": "Plus de crédit d'assistance",
            "before_cutover": "Arrivé avant la mise en service de mailbot (hors SLA)",
        },
        "sla_kind": {"first_response": "première réponse", "resolution": "résolution"},
        "role": {
            "customer": "client",
            "engineer": "ingénieur",
            "board": "comité de revue",
            "watcher": "observateur",
        },
    },
}

_TEMPLATE_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_NO_OVERRIDES: Mapping[str, Path] = MappingProxyType({})


class _Words(dict[str, str]):
    """Code → word. A code nobody translated yet shows as itself rather than breaking the mail:
    a new flag or status must not stop a customer from hearing about their ticket."""

    def __missing__(self, key: str) -> str:
        return key


@dataclass(frozen=True)
class Rendered:
    """One rendered mail: a one-line subject, the plain text, and the HTML ("" when none)."""

    subject: str
    text: str
    html: str = ""


def normalise_language(language: str | None) -> str:
    """`nl`, `NL`, `nl-BE`, `nl_NL` → `nl`; anything we do not write in → `en`."""
    code = re.split(r"[-_]", (language or "").strip().lower(), maxsplit=1)[0]
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def names(language: str) -> dict[str, dict[str, str]]:
    """The translated words for `language`, by kind then code, e.g.
    `names("nl")["status"]["open"] == "In behandeling"`. Kinds: status, priority, category, flag,
    sla_kind, role. A fresh copy each call, so a caller cannot change what the next mail says."""
    words = _WORDS[normalise_language(language)]
    return {kind: _Words(table) for kind, table in words.items()}


def nl2br(value: object) -> Markup:
    """Escape `value` and keep its line breaks in HTML. Escaping comes first, so user text can
    never bring its own markup; `<br>` rather than CSS `pre-wrap` because Outlook ignores it."""
    lines = str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return Markup("<br>\n").join(escape(line) for line in lines)


class Renderer:
    """Renders templates from `template_dir`, with per-product `overrides` (product key → folder of
    the same layout; the product's file wins, file by file)."""

    def __init__(self, template_dir: Path, overrides: Mapping[str, Path] = _NO_OVERRIDES):
        self._template_dir = Path(template_dir)
        self._overrides = {key.upper(): Path(path) for key, path in overrides.items()}
        self._environments: dict[tuple[str, str], ImmutableSandboxedEnvironment] = {}

    def render(self, name: str, language: str, product_key: str, context: Mapping[str, Any]) -> Rendered:
        """Render mail `name` for one recipient. Raises `TemplateError`, naming the file and line,
        when a template cannot be read or rendered (a syntax error, no such file, a missing block,
        a value the context lacks). After an error the files are read again at the next render,
        so a template fixed on disk is used without a restart."""
        if not _TEMPLATE_NAME.match(name):
            raise ValueError(f"not a mail template name: {name!r}")
        lang = normalise_language(language)
        try:
            return self._render(name, lang, product_key, context)
        except TemplateError:
            self._environments.pop((product_key.upper(), lang), None)
            raise
        except (JinjaError, ValueError, TypeError) as exc:
            self._environments.pop((product_key.upper(), lang), None)
            raise TemplateError(f"{_where(exc, name)}: {exc}") from exc

    def template_names(self) -> list[str]:
        """Every mail template there is: the defaults' and the overrides' `NAME.txt` files."""
        roots = [self._template_dir, *self._overrides.values()]
        return sorted(
            {
                path.stem
                for root in roots
                for lang in LANGUAGES
                for path in (root / lang).glob("*.txt")
                if _TEMPLATE_NAME.match(path.stem)
            }
        )

    def _render(self, name: str, lang: str, product_key: str, context: Mapping[str, Any]) -> Rendered:
        env = self._environment(product_key, lang)
        values = {**context, "language": lang, "names": names(lang), "reply_marker": REPLY_MARKERS[lang]}
        text_template = env.get_template(f"{name}.txt")
        subject = _one_line(_render_block(text_template, "subject", values))
        body = _render_block(text_template, "body", values)
        html = _render_html(env, name, {**values, "subject": subject})
        return Rendered(subject=subject, text=_tidy(body), html=html)

    def _environment(self, product_key: str, language: str) -> ImmutableSandboxedEnvironment:
        key = (product_key.upper(), language)
        if key not in self._environments:
            env = _make_environment(self._search_path(*key))
            # A global too, so that macros imported without context write in the same language.
            env.globals["language"] = language
            self._environments[key] = env
        return self._environments[key]

    def _search_path(self, product_key: str, language: str) -> list[Path]:
        roots = [self._template_dir]
        if product_key in self._overrides:
            roots.insert(0, self._overrides[product_key])
        # Product before default, and within each the language folder before `common`: the most
        # specific file wins, so an override may replace just the layout or just one mail.
        return [root / folder for root in roots for folder in (language, "common")]


def _make_environment(search_path: list[Path]) -> ImmutableSandboxedEnvironment:
    loader: BaseLoader = FileSystemLoader([str(path) for path in search_path])
    # The sandbox is belt and braces: templates come from the admin, but a product override is
    # still a file someone can edit, and templates never need to call methods or mutate values.
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        keep_trailing_newline=True,
        # Templates are read once per process: checking every file's mtime on every render cost
        # more than rendering. An edited template takes effect when the service restarts.
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["nl2br"] = nl2br
    env.filters["datetime"] = _datetime_filter
    env.filters["date"] = _date_filter
    env.filters["desk"] = _desk_filter
    return env


# Filters that write a value in the recipient's language (`language`: a global of the
# language's environment, so imported macros see it too). See mailbot.outgoing.formats.
@pass_context
def _datetime_filter(context: Any, value: str) -> str:
    return format_moment(value, context["language"])


@pass_context
def _date_filter(context: Any, value: str) -> str:
    return format_day(value, context["language"])


@pass_context
def _desk_filter(context: Any, product_name: str) -> str:
    return desk_name(product_name, context["language"])


def _render_block(template: Template, block: str, values: Mapping[str, Any]) -> str:
    if block not in template.blocks:
        raise TemplateError(f"{template.filename}: has no {{% block {block} %}}")
    try:
        return "".join(template.blocks[block](template.new_context(dict(values))))
    except Exception:
        # Point the traceback at the template's own lines (what Template.render does itself),
        # so the error can name the file and line.
        template.environment.handle_exception()


def _where(exc: BaseException, name: str) -> str:
    """`file:line` of a template error: where the syntax is wrong, or the innermost template
    line that was running."""
    if isinstance(exc, TemplateSyntaxError):
        return f"{exc.filename or exc.name}:{exc.lineno}"
    if isinstance(exc, TemplateNotFound):
        return f"{exc.name or name}"
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename.endswith((".txt", ".html"))
    ]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else name


def _render_html(env: ImmutableSandboxedEnvironment, name: str, values: Mapping[str, Any]) -> str:
    try:
        template = env.get_template(f"{name}.html")
    except TemplateNotFound as exc:
        # Only the mail's own HTML file is optional; a missing layout or macro file is a bug.
        if exc.name != f"{name}.html":
            raise
        return ""
    return _tidy(template.render(values))


def _one_line(subject: str) -> str:
    """Fold every run of whitespace (newlines included) into one space: a subject is one line."""
    return " ".join(subject.split())


def _tidy(body: str) -> str:
    """No blank lines on top (the reply marker must be the first line), one newline at the end."""
    return body.lstrip("\r\n").rstrip() + "\n"
