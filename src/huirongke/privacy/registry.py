"""The data-map registry: what every table holds and how its rows reach their subject.

Export, erasure, retention, the residue scan and the published lists are generic walks over this
registry; no feature writes its own export or erasure code.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from graphlib import TopologicalSorter
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, select
from sqlalchemy.orm import DeclarativeBase

from huirongke.kit.db import Base
from huirongke.privacy.datamap import Classification, Subject, SubjectLink, classification

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
        return self.link.personal and bool(self.personal_columns)

    @property
    def subjects(self) -> tuple[Subject, ...]:
        return self.link.subjects

    @property
    def file_columns(self) -> tuple[MappedColumn, ...]:
        return tuple(c for c in self.columns if is_file(c))

    def column(self, name: str) -> MappedColumn:
        return next(c for c in self.columns if c.name == name)

    def link_columns(self, subject: Subject) -> tuple[str, ...]:
        """The columns of this table that name `subject` (the start of its link)."""
        return (subject.link_column,)

    def columns_of(self, subject: Subject) -> tuple[MappedColumn, ...]:
        """The personal columns that are `subject`'s data (see `Subject.columns`)."""
        if subject.columns is not None:
            names = set(subject.columns)
        elif subject is self.subjects[0]:
            return self.personal_columns
        else:
            names = set()
        names.add(subject.link_column)
        return tuple(c for c in self.personal_columns if c.name in names)

    def sealing_owner(self) -> str | None:
        """The column naming whose data key seals the row's encrypted columns: its first subject's
        user-id column (encrypted columns are only declared on tables whose first subject is one)."""
        first = self.subjects[0] if self.subjects else None
        return first.column if first is not None and first.kind == "user" and not first.via else None

    def where(self, subject: Subject, who: Who) -> ColumnElement[bool] | None:
        """The rows of this table that reach `who` through `subject`, or None if they cannot."""
        if subject.kind == "user":
            if who.user_id is None:
                return None
            return _path(self.table, subject, who.user_id)
        value = who.phone_bidx if subject.kind == "phone" else who.third_party_bidx
        if value is None:
            return None
        return self.table.c[subject.link_column] == value


@dataclass(frozen=True)
class Who:
    """A data subject, by every handle the link model knows: a user (and the blind index of their
    phone, for rows made before the account), or a third party known only by a blind index."""

    user_id: str | None = None
    phone_bidx: str | None = None
    third_party_bidx: str | None = None


def _path(table: Table, subject: Subject, user_id: str) -> ColumnElement[bool]:
    """`table`'s rows whose path of hops ends at a row whose `subject.column` is `user_id`."""
    assert subject.column is not None
    if not subject.via:
        return table.c[subject.column] == user_id
    # Walk from the far end back: the last table's rows of the user, then each hop's keys.
    last = _table(subject.via[-1].table)
    keys = select(last.c[subject.via[-1].key]).where(last.c[subject.column] == user_id)
    for i in range(len(subject.via) - 1, 0, -1):
        hop, into = subject.via[i - 1], _table(subject.via[i - 1].table)
        keys = select(into.c[hop.key]).where(into.c[subject.via[i].column].in_(keys))
    return table.c[subject.via[0].column].in_(keys)


def is_file(c: MappedColumn) -> bool:
    """The one predicate for columns that hold storage keys of files."""
    return c.cls.file


_CLOCK_NAMES = ("created_at", "sent_at", "at", "submitted_at", "requested_at", "agreed_at", "first_seen_at")


#: Further declarative bases whose tables join the data map (the test suite's proof tables).
_EXTRA: list[type[DeclarativeBase]] = []


def _bases() -> list[type[DeclarativeBase]]:
    return [*_EXTRA, Base]


@cache
def tables() -> tuple[MappedTable, ...]:
    import huirongke.models  # noqa: F401  (every domain's tables)

    # Sorted first: the mappers and foreign keys are sets, and the order must be the same everywhere
    # (erasure steps are named by it, and test runners compare what they collected).
    out = sorted(
        (_mapped(m.class_, m.local_table) for base in _bases() for m in base.registry.mappers),
        key=lambda t: t.name,
    )
    # Children before parents: deleting in this order never trips a foreign key, and a row reached
    # through a path is erased before the rows the path runs through.
    order = TopologicalSorter[str]()
    for t in out:
        order.add(t.name)
        for parent in sorted({fk.column.table.name for fk in t.table.foreign_keys} - {t.name}):
            order.add(parent, t.name)
        for sub in t.subjects:
            hops = [t.name, *(h.table for h in sub.via)]
            for child, parent in itertools.pairwise(hops):
                order.add(parent, child)
    rank = {name: i for i, name in enumerate(order.static_order())}
    return tuple(sorted(out, key=lambda t: rank[t.name]))


def _mapped(cls: type, table: object) -> MappedTable:
    link = getattr(cls, "__subject__", None)
    if not isinstance(link, SubjectLink) or not isinstance(table, Table):
        raise TypeError(f"{cls.__name__} declares no __subject__ link in the data map")
    for subject in link.subjects:
        if subject.link_column not in table.columns:
            raise TypeError(f"{table.name}: subject link column {subject.link_column} does not exist")
    cols = []
    for col in table.columns:
        c = classification(col)
        if c is None:
            raise TypeError(f"{table.name}.{col.name} is not classified in the data map")
        cols.append(MappedColumn(col.name, col, c))
    clock = next((n for n in _CLOCK_NAMES if n in table.columns), None)
    return MappedTable(table.name, table, link, tuple(cols), clock)


def _table(name: str) -> Table:
    for base in _bases():
        if name in base.metadata.tables:
            return base.metadata.tables[name]
    raise KeyError(name)


@contextmanager
def extended(base: type[DeclarativeBase]) -> Iterator[None]:
    """Add a declarative base's tables to the data map for a while (tests prove the engine on tables
    of their own this way, without touching the product's schema)."""
    _EXTRA.append(base)
    _forget()
    try:
        yield
    finally:
        _EXTRA.remove(base)
        _forget()


_CACHED: list[Any] = []


def _forget() -> None:
    for f in (tables, user_id_columns, *_CACHED):
        f.cache_clear()


def cached(fn: Any) -> Any:
    """`functools.cache` for functions derived from the data map: emptied when the map changes."""
    wrapped = cache(fn)
    _CACHED.append(wrapped)
    return wrapped


def personal_tables() -> tuple[MappedTable, ...]:
    return tuple(t for t in tables() if t.is_personal)


def by_name(name: str) -> MappedTable:
    return next(t for t in tables() if t.name == name)


def media_columns() -> list[tuple[MappedTable, MappedColumn]]:
    """Columns that hold storage keys of files, in personal tables."""
    return [(t, c) for t in personal_tables() for c in t.file_columns]


@cache
def user_id_columns() -> dict[str, tuple[str, ...]]:
    """table → the columns that hold a subject's user id directly (what cache invalidation reads)."""
    out: dict[str, tuple[str, ...]] = {}
    for t in tables():
        cols = tuple(s.link_column for s in t.subjects if s.kind == "user" and not s.via)
        if cols:
            out[t.name] = cols
    return out
