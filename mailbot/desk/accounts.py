"""Accounts and their grants: who may do what on which product.

An account is an email address, matched exactly and case-insensitively. A grant gives it a role
on one product: customer, engineer or board (the product's review board, engineers too).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from typing import TextIO, cast

from mailbot.context import NO_PROGRESS, Progress
from mailbot.errors import EX_DATAERR, MailbotError
from mailbot.store import statements
from mailbot.store.models import Account, Grant
from mailbot.vocabulary import GRANT_ROLES, STAFF_ROLES, Language, Role, values

ROLES = GRANT_ROLES


class AccountError(MailbotError):
    """An account value refused (an address, a language, a role): bad input data."""

    exit_code = EX_DATAERR


class ImportRefused(MailbotError):
    """A customer list with bad lines: the message names every one; nothing was imported."""

    exit_code = EX_DATAERR


def normalise(email: str) -> str:
    return email.strip().lower()


def find_account(email: str) -> Account | None:
    return statements.account_by_email(normalise(email))


def role_of(account: Account | None, product: str) -> str | None:
    if account is None:
        return None
    grant = statements.grant_of(account, product)
    return grant.role if grant else None


def is_staff(account: Account | None, product: str) -> bool:
    return role_of(account, product) in STAFF_ROLES


@dataclass(frozen=True)
class AccountSpec:
    email: str
    name: str = ""
    organisation: str = ""
    language: str = ""
    contract_until: date | None = None


def check_spec(spec: AccountSpec) -> str:
    """The normalised address of a valid spec; AccountError says what is wrong."""
    email = normalise(spec.email)
    local, _, domain = email.rpartition("@")
    quoted = len(local) > 2 and local[0] == local[-1] == '"'  # a fax gateway's `"fax 42"@gw`
    if email.count("@") != 1 or any(c.isspace() for c in (domain if quoted else email)):
        raise AccountError(f"{spec.email!r} is not a single mail address")
    if spec.language and spec.language not in values(Language):
        *others, last = values(Language)
        raise AccountError(f"language {spec.language!r}: expected {', '.join(others)} or {last}")
    return email


def upsert_account(spec: AccountSpec) -> Account:
    """Create the account, or update the fields given for an existing one."""
    email = check_spec(spec)
    account, _ = Account.get_or_create(email=email)
    for field in ("name", "organisation", "language", "contract_until"):
        value = getattr(spec, field)
        if value:
            setattr(account, field, value)
    account.save()
    return cast(Account, account)


def grant(account: Account, product: str, role: str) -> Grant:
    if role not in ROLES:
        raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    row, created = Grant.get_or_create(account=account, product=product, defaults={"role": role})
    if not created and row.role != role:
        row.role = role
        row.save()
    return cast(Grant, row)


def revoke(account: Account, product: str) -> bool:
    removed: int = Grant.delete().where((Grant.account == account) & (Grant.product == product)).execute()
    return removed > 0


def import_accounts(
    handle: TextIO, product: str, default_role: str = Role.CUSTOMER, progress: Progress = NO_PROGRESS
) -> int:
    """Import a customer list: CSV with a header row; columns email (required), name,
    organisation, language, role, contract_until (YYYY-MM-DD). All or nothing: every line is
    checked first, and one bad line imports none (ImportRefused names each, with its line
    number). Returns the number of rows imported."""
    reader = csv.DictReader(handle)
    if not reader.fieldnames or "email" not in reader.fieldnames:
        raise ImportRefused("the CSV needs a header row with at least an 'email' column; nothing imported")
    rows: list[tuple[AccountSpec, str]] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num  # the file's line, even where a quoted field spans several
        try:
            spec, role = _read_row(row, default_role)
            email = check_spec(spec)
            if email in first_line:
                raise AccountError(f"{email} is already on line {first_line[email]}")
            first_line[email] = line
            rows.append((spec, role))
        except (AccountError, ValueError) as exc:
            problems.append(f"line {line}: {exc}")
    if problems:
        raise ImportRefused(
            f"{len(problems)} bad line(s), nothing imported:\n" + "\n".join(f"  {p}" for p in problems)
        )
    with Account._meta.database.atomic():
        for count, (spec, role) in enumerate(rows, start=1):
            grant(upsert_account(spec), product, role)
            progress.update(f"{product} accounts", count, len(rows))
    return len(rows)


def _read_row(row: dict[str, str | None], default_role: str) -> tuple[AccountSpec, str]:
    if None in row:
        raise AccountError("more fields than the header names")
    until = (row.get("contract_until") or "").strip()
    try:
        contract_until = date.fromisoformat(until) if until else None
    except ValueError:
        raise AccountError(f"contract_until {until!r}: expected YYYY-MM-DD") from None
    role = (row.get("role") or "").strip().lower() or default_role
    if role not in ROLES:
        raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    spec = AccountSpec(
        email=row.get("email") or "",
        name=(row.get("name") or "").strip(),
        organisation=(row.get("organisation") or "").strip(),
        language=(row.get("language") or "").strip().lower(),
        contract_until=contract_until,
    )
    return spec, role
