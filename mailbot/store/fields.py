"""A Peewee column for a `mailbot.vocabulary` enum: stored as its plain string, checked when
written, read back as the member.

A wrong value is refused before it reaches SQLite, with the column and the values it takes in
the message, whether it comes through the model (`save`, `create`), a query's condition or the
named statements of `mailbot.store.statements` (which convert through `db_value` too). The
column is an ordinary VARCHAR: the check lives here, not in the schema, so adding a value needs no
migration.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from peewee import CharField


class EnumField(CharField):
    def __init__(
        self, enum: type[StrEnum], *args: Any, allowed: Iterable[StrEnum] | None = None, **kwargs: Any
    ):
        self.enum = enum
        self.allowed = tuple(allowed if allowed is not None else enum)
        # Plain dicts rather than `enum(value)`: these run for every row written and read.
        self._writable = {member.value: member.value for member in self.allowed}
        self._members = {member.value: member for member in enum}
        super().__init__(*args, **kwargs)

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self._writable[value]
        except (KeyError, TypeError):  # TypeError: a value that cannot be a key (a list)
            where = f"{self.model._meta.table_name}.{self.column_name}" if hasattr(self, "model") else "value"
            choices = ", ".join(m.value for m in self.allowed)
            raise ValueError(f"{where}: {value!r} is not one of {choices}") from None

    def python_value(self, value: Any) -> Any:
        """The member; a value from outside the enum (written by hand) is returned as it is."""
        return self._members.get(value, value) if value is not None else None
