"""Work that belongs to a transaction, and to the savepoint that made it.

Audit events, cache-invalidation marks and after-commit hooks are queued while a unit of work runs
and acted on only when the outermost transaction commits. Each item is kept with the innermost
transaction open when it was queued (a savepoint, if one is open). Rolling back a savepoint drops the
items made inside it (and inside the savepoints nested in it), and only those; rolling back the
outermost transaction drops everything. A savepoint that is released hands its items to its parent
simply by not being rolled back: `take` keeps an item only if no transaction on its path to the root
was rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

_ROLLED_BACK = "txn_rolled_back"
_KEYS = "txn_keys"


def in_savepoint(session: Session) -> bool:
    """True while a savepoint is open. SQLAlchemy fires `before_commit`/`after_commit` when a savepoint
    is released too; queued work must wait for the outermost commit."""
    return session.get_nested_transaction() is not None


def _innermost(session: Session) -> SessionTransaction | None:
    return session.get_nested_transaction() or session.get_transaction()


def stash(session: Session, key: str, items: Iterable[Any]) -> None:
    """Queue `items` under `key`, owned by the innermost open transaction."""
    batch = list(items)
    if not batch:
        return
    session.info.setdefault(key, []).append((_innermost(session), batch))
    session.info.setdefault(_KEYS, set()).add(key)


def take(session: Session, key: str) -> list[Any]:
    """Everything queued under `key` that no rollback has dropped, in order; the queue is emptied."""
    entries: list[tuple[SessionTransaction | None, list[Any]]] = session.info.pop(key, [])
    rolled: dict[int, SessionTransaction] = session.info.get(_ROLLED_BACK, {})
    out: list[Any] = []
    for txn, batch in entries:
        if not _dropped(txn, rolled):
            out.extend(batch)
    return out


def _dropped(txn: SessionTransaction | None, rolled: dict[int, SessionTransaction]) -> bool:
    while txn is not None:
        if rolled.get(id(txn)) is txn:
            return True
        txn = txn.parent
    return False


def _reset(session: Session) -> None:
    for key in session.info.pop(_KEYS, ()):
        session.info.pop(key, None)
    session.info.pop(_ROLLED_BACK, None)


@event.listens_for(Session, "after_soft_rollback")
def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.nested:
        # Only this savepoint's work (and its children's) goes; the enclosing transaction's stays.
        # Held by reference, so a later savepoint can never be mistaken for it by a reused id.
        session.info.setdefault(_ROLLED_BACK, {})[id(previous_transaction)] = previous_transaction
    else:
        _reset(session)


@event.listens_for(Session, "after_transaction_create")
def _after_transaction_create(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # a new outermost transaction: nothing of the last one applies
        session.info.pop(_ROLLED_BACK, None)
