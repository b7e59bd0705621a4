"""The data map: every column says what it holds, why, for how long, and its fate on erasure.

Declare a personal column with `info=pii(...)` and any other column with `info=NOT_PERSONAL`.
A table says how its rows reach their data subject with `__subject__` (see SubjectLink).
A test walks every mapped table and fails on any column that declares nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Column, Table

Fate = Literal["delete", "anonymize", "keep"]
DATAMAP_KEY = "datamap"


@dataclass(frozen=True)
class Classification:
    category: str  # e.g. "user.contact.phone"
    personal: bool = True
    sensitive: bool = False
    purposes: tuple[str, ...] = ()
    retention: str = "account"  # "account" = while the account exists, or an ISO-8601-like "P30D"
    erasure: Fate = "delete"
    label: str = ""  # the Chinese name shown in the published lists
    encrypted: bool = False
    exported: bool = True  # False for secrets (hashes of credentials), never handed out


NOT_PERSONAL_CLASS = Classification(category="none", personal=False, erasure="keep")
NOT_PERSONAL: dict[str, Any] = {DATAMAP_KEY: NOT_PERSONAL_CLASS}
#: Not personal data, but a secret (token or code hashes, wrapped keys): never exported.
SECRET: dict[str, Any] = {
    DATAMAP_KEY: Classification(category="secret", personal=False, erasure="keep", exported=False)
}


def pii(
    category: str,
    label: str,
    *,
    purposes: tuple[str, ...] | list[str],
    sensitive: bool = False,
    retention: str = "account",
    erasure: Fate = "delete",
    encrypted: bool = False,
    exported: bool = True,
) -> dict[str, Any]:
    return {
        DATAMAP_KEY: Classification(
            category=category,
            label=label,
            sensitive=sensitive,
            purposes=tuple(purposes),
            retention=retention,
            erasure=erasure,
            encrypted=encrypted,
            exported=exported,
        )
    }


@dataclass(frozen=True)
class SubjectLink:
    """How a table's rows reach their subject: a column holding the user id, or none (not personal)."""

    column: str | None
    via: str = "user_id"  # "user_id" or "phone_bidx" (rows that exist before an account does)
    extra: tuple[str, ...] = field(default_factory=tuple)  # further columns that also name a subject
    label: str = ""  # the Chinese name of what the table holds, for exports and lists


def classification(column: Column[Any]) -> Classification | None:
    value = column.info.get(DATAMAP_KEY)
    return value if isinstance(value, Classification) else None


def unclassified_columns(tables: list[Table]) -> list[str]:
    return [f"{t.name}.{c.name}" for t in tables for c in t.columns if classification(c) is None]
