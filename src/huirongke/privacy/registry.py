"""The data-map registry: what every table holds and how its rows reach their subject.

Export, erasure, retention, the residue scan and the published lists are generic walks over this
registry; no feature writes its own export or erasure code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from sqlalchemy import Column, Table

from huirongke.kit.db import Base
from huirongke.privacy.datamap import Classification, SubjectLink, classification

_PERIOD = re.compile(r"^P(\d+)([DMY])$")


def retention_delta(retention: str) -> timedelta | None:
    """`account` (kept while the account exists) → None; `P30D`, `P6M`, `P3Y` → a timedelta."""
    m = _PERIOD.match(retention)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    return timedelta(days=n * {"D": 1, "M": 30, "Y": 365}[unit])


@dataclass(frozen=True)
class MappedColumn:
    name: str
    column: Column
    cls: Classification


@dataclass(frozen=True)
class MappedTable:
    name: str
    table: Table
    link: SubjectLink
    columns: tuple[MappedColumn, ...]
    clock_column: str | None  # the timestamp retention is counted from

    @property
    def personal_columns(self) -> tuple[MappedColumn, ...]:
        return tuple(c for c in self.columns if c.cls.personal)

    @property
    def is_personal(self) -> bool:
        return self.link.column is not None and bool(self.personal_columns)


_CLOCK_NAMES = ("created_at", "sent_at", "at", "submitted_at", "requested_at", "agreed_at", "first_seen_at")


@cache
def tables() -> tuple[MappedTable, ...]:
    import huirongke.models  # noqa: F401  (every domain's tables)

    out = []
    for mapper in Base.registry.mappers:
        cls = mapper.class_
        table = mapper.local_table
        link = getattr(cls, "__subject__", None)
        if not isinstance(link, SubjectLink) or not isinstance(table, Table):
            raise TypeError(f"{cls.__name__} declares no __subject__ link in the data map")
        cols = []
        for col in table.columns:
            c = classification(col)
            if c is None:
                raise TypeError(f"{table.name}.{col.name} is not classified in the data map")
            cols.append(MappedColumn(col.name, col, c))
        clock = next((n for n in _CLOCK_NAMES if n in table.columns), None)
        out.append(MappedTable(table.name, table, link, tuple(cols), clock))
    # Children before parents, so deleting in this order never trips a foreign key.
    order = {t.name: i for i, t in enumerate(Base.metadata.sorted_tables)}
    return tuple(sorted(out, key=lambda t: -order[t.name]))


def personal_tables() -> tuple[MappedTable, ...]:
    return tuple(t for t in tables() if t.is_personal)


def by_name(name: str) -> MappedTable:
    return next(t for t in tables() if t.name == name)


def media_columns() -> list[tuple[MappedTable, MappedColumn]]:
    """Columns that hold storage keys of media files (category user.media.*)."""
    return [
        (t, c) for t in personal_tables() for c in t.columns if c.cls.category.startswith("user.media.file")
    ]
