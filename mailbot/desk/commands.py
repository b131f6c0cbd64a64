"""Commands in mail: the `#word argument` lines at the top of a reply.

Pure: `read_commands` splits the visible text of a reply into the command lines at its top and
the text below them; `check_commands` says what is wrong with them for the sender's role, as
data that the `command_error` template words in the sender's language. Only
the visible text is read (quoted history and forwarded mail are trimmed away before), and only
the lines before the first line of ordinary text, so a `#` further down is never a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mailbot.desk.subjects import CATEGORIES, PRIORITIES
from mailbot.sla.notation import parse_duration
from mailbot.vocabulary import Status, values

STATUS_ARGS = values(Status)[1:]  # every status but `new`
# Each command the sender may use, with its syntax; what it does is worded by the templates.
ENGINEER_COMMANDS = {
    "status": "#status open|waiting|resolved|closed",
    "priority": "#priority critical|high|medium|low",
    "info": "#info",
    "assign": "#assign me|ADDRESS",
    "internal": "#internal",
    "time": "#time 45m",
    "category": "#category question|bug|suggestion",
    "escalate": "#escalate [text]",
    "link": "#link REF",
    "merge": "#merge REF",
}
CUSTOMER_COMMANDS = {"close": "#close", "priority": "#priority critical|high|medium|low"}
CommandError = dict[str, Any]
"""What is wrong with a command: `code` (twice, unknown, staff_only, choices, assign_target,
duration, no_argument, info_with_status, info_with_internal, not_engineer, no_second_line, reference,
not_linkable, link_self, merge_requester), the `line` and `command` it is about, and the values
its wording needs (`choices`, `address`, `reference`, `product`)."""
_COMMAND_LINE = re.compile(r"^\s*#([A-Za-z][A-Za-z_-]*)\b[ \t:]*(.*?)\s*$")


@dataclass(frozen=True)
class Command:
    name: str
    argument: str
    line: str


@dataclass(frozen=True)
class Commands:
    commands: tuple[Command, ...]
    text: str  # the visible text with the command lines removed

    def get(self, name: str) -> Command | None:
        return next((c for c in self.commands if c.name == name), None)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None


def read_commands(visible: str) -> Commands:
    lines = visible.splitlines()
    found: list[Command] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _COMMAND_LINE.match(line)
        if match:
            found.append(Command(match.group(1).lower(), match.group(2), line.strip()))
        elif line.strip():
            break
        index += 1
    return Commands(tuple(found), "\n".join(lines[index:]).strip())


def valid_commands(staff: bool) -> list[str]:
    """The names of the commands the sender may use; the template says what each does, in the
    recipient's language."""
    return list(ENGINEER_COMMANDS if staff else CUSTOMER_COMMANDS)


def check_commands(commands: Commands, staff: bool) -> list[CommandError]:
    """What is wrong, one error each; [] when every command may be applied. Errors are data
    (a code and its values): the mail to the sender words them in the sender's language."""
    allowed = ENGINEER_COMMANDS if staff else CUSTOMER_COMMANDS
    errors: list[CommandError] = []
    seen: set[str] = set()
    for command in commands.commands:
        if command.name in seen:
            errors.append(error_for("twice", command))
            continue
        seen.add(command.name)
        if command.name not in ENGINEER_COMMANDS and command.name not in CUSTOMER_COMMANDS:
            errors.append(error_for("unknown", command))
        elif command.name not in allowed:
            errors.append(error_for("staff_only", command))
        else:
            problem = _argument_problem(command)
            if problem is not None:
                errors.append(problem)
    if "info" in seen and "status" in seen:
        errors.append({"code": "info_with_status"})
    if "info" in seen and "internal" in seen:
        errors.append({"code": "info_with_internal"})
    return errors


def error_for(code: str, command: Command, **values: Any) -> CommandError:
    return {"code": code, "line": command.line, "command": command.name, **values}


def describe_error(error: CommandError) -> str:
    """One error in English, for the log and the outcome line (never for mail)."""
    values = ", ".join(f"{key}={value}" for key, value in error.items() if key not in ("code", "line"))
    return f"{error.get('line', '')}: {error['code']}" + (f" ({values})" if values else "")


def _argument_problem(command: Command) -> CommandError | None:
    arg = command.argument.strip().lower()
    choices = {"status": STATUS_ARGS, "priority": PRIORITIES, "category": CATEGORIES}.get(command.name)
    if choices is not None and arg not in choices:
        return error_for("choices", command, choices=list(choices))
    if command.name == "assign" and not (arg == "me" or re.fullmatch(r"[^@\s]+@[^@\s]+", arg)):
        return error_for("assign_target", command)
    if command.name == "time" and not time_minutes(arg):
        return error_for("duration", command)
    if command.name in ("link", "merge") and not re.fullmatch(r"[a-z][a-z0-9_]*-\d{1,9}", arg):
        return error_for("reference", command)
    if command.name in ("info", "internal", "close") and arg:
        return error_for("no_argument", command)
    return None


def time_minutes(argument: str) -> int:
    """Minutes in a #time argument (45m, 1h30m, 2h); 0 when it is not a duration."""
    try:
        minutes = int(parse_duration(argument.strip().lower()).total_seconds() // 60)
    except ValueError:
        return 0
    return minutes if 0 < minutes <= 24 * 60 else 0
