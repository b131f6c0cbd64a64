"""Commands in mail: the `#word argument` lines at the top of a reply.

Pure: `read_commands` splits the visible text of a reply into the command lines at its top and
the text below them; `check_commands` says what is wrong with them for the sender's role. Only
the visible text is read (quoted history and forwarded mail are trimmed away before), and only
the lines before the first line of ordinary text, so a `#` further down is never a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.desk.subjects import CATEGORIES, PRIORITIES
from mailbot.sla.notation import parse_duration

STATUS_ARGS = ("open", "waiting", "resolved", "closed")
ENGINEER_COMMANDS = {
    "status": "#status open|waiting|resolved|closed",
    "priority": "#priority critical|high|medium|low",
    "info": "#info (your question follows below; the ticket waits for the customer)",
    "assign": "#assign me|ADDRESS",
    "internal": "#internal (the text below is a note the customer never sees)",
    "time": "#time 45m (time spent, in started 15-minute blocks)",
    "category": "#category bug|question|suggestion",
}
CUSTOMER_COMMANDS = {
    "close": "#close (you sign off: the ticket is closed)",
    "priority": "#priority critical|high|medium|low",
}
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
    return list((ENGINEER_COMMANDS if staff else CUSTOMER_COMMANDS).values())


def check_commands(commands: Commands, staff: bool) -> list[str]:
    """What is wrong, one line each; [] when every command may be applied."""
    allowed = ENGINEER_COMMANDS if staff else CUSTOMER_COMMANDS
    errors = []
    seen: set[str] = set()
    for command in commands.commands:
        if command.name in seen:
            errors.append(f"{command.line}: #{command.name} is given twice")
            continue
        seen.add(command.name)
        if command.name not in ENGINEER_COMMANDS and command.name not in CUSTOMER_COMMANDS:
            errors.append(f"{command.line}: unknown command")
        elif command.name not in allowed:
            errors.append(f"{command.line}: only the support team may use #{command.name}")
        else:
            problem = _argument_problem(command)
            if problem:
                errors.append(f"{command.line}: {problem}")
    if "info" in seen and "status" in seen:
        errors.append("#info already sets the status to waiting; leave out #status")
    if "info" in seen and "internal" in seen:
        errors.append("#info asks the customer, #internal hides the text from them: use one")
    return errors


def _argument_problem(command: Command) -> str:
    arg = command.argument.strip().lower()
    if command.name == "status" and arg not in STATUS_ARGS:
        return "expected one of " + ", ".join(STATUS_ARGS)
    if command.name == "priority" and arg not in PRIORITIES:
        return "expected one of " + ", ".join(PRIORITIES)
    if command.name == "category" and arg not in CATEGORIES:
        return "expected one of " + ", ".join(CATEGORIES)
    if command.name == "assign" and not (arg == "me" or re.fullmatch(r"[^@\s]+@[^@\s]+", arg)):
        return "expected 'me' or an engineer's address"
    if command.name == "time":
        return "" if time_minutes(arg) else "expected a duration such as 45m, 1h or 1h30m"
    if command.name in ("info", "internal", "close") and arg:
        return "takes no argument; write your text below the command lines"
    return ""


def time_minutes(argument: str) -> int:
    """Minutes in a #time argument (45m, 1h30m, 2h); 0 when it is not a duration."""
    try:
        minutes = int(parse_duration(argument.strip().lower()).total_seconds() // 60)
    except ValueError:
        return 0
    return minutes if 0 < minutes <= 24 * 60 else 0
