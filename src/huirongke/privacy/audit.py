"""The audit trail: every change, and every staff or system read of personal data.

Events carry field names, never values. Each event hashes its predecessor, so editing or removing
a row in the middle breaks the chain that `huirongke privacy verify-audit` checks. Old events are
pruned from the start of the chain only, after the retention period (≥ 6 months, R10).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from datetime import datetime, timedelta

import structlog
from sqlalchemy import bindparam, delete, event, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from huirongke.kit import txn
from huirongke.kit.clock import utcnow
from huirongke.kit.db import READ_ONLY, ReadOnlyUnit, table
from huirongke.privacy.models import AuditEvent, AuditHead

GENESIS = "0" * 64


def _digest(
    prev: str,
    seq: int,
    at: datetime,
    actor_type: str,
    actor_id: str | None,
    subject_id: str | None,
    action: str,
    fields: list[str],
    purpose: str | None,
    request_id: str | None,
) -> str:
    payload = json.dumps(
        [seq, at.isoformat(), actor_type, actor_id, subject_id, action, fields, purpose, request_id],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev + payload).encode()).hexdigest()


@dataclass(frozen=True)
class _Pending:
    action: str
    actor_type: str
    actor_id: str | None
    subject_id: str | None
    fields: list[str]
    purpose: str | None
    request_id: str | None
    at: datetime


def record(
    session: Session,
    action: str,
    *,
    actor_type: str,
    actor_id: str | None,
    subject_id: str | None,
    fields: Iterable[str] = (),
    purpose: str | None = None,
) -> None:
    """Queue an event; it is chained and written as the transaction commits (see `_chain_pending`).
    Taking the chain head last keeps its lock for microseconds instead of the whole request."""
    txn.stash(
        session,
        _PENDING,
        [
            _Pending(
                action=action,
                actor_type=actor_type,
                actor_id=actor_id,
                subject_id=subject_id,
                fields=sorted(set(fields)),
                purpose=purpose,
                request_id=structlog.contextvars.get_contextvars().get("request_id"),
                at=utcnow(),
            )
        ],
    )


_PENDING = "audit_pending"


def take_pending(session: Session) -> list[Any]:
    """The events a unit of work has recorded and not yet written (for an audited read: they are
    written by a short writing unit after the read one closes)."""
    return txn.take(session, _PENDING)


def put_pending(session: Session, events: list[Any]) -> None:
    txn.stash(session, _PENDING, events)


@event.listens_for(Session, "before_commit")
def _chain_pending(session: Session) -> None:
    if txn.in_savepoint(session):  # a savepoint being released: wait for the real commit
        return
    pending: list[_Pending] = txn.take(session, _PENDING)
    if not pending:
        return
    if session.info.get(READ_ONLY):
        raise ReadOnlyUnit("audit events recorded in a read-only unit of work: declare it AUDITED_READ")
    # Lock the head and learn the chain's end in one statement: on PostgreSQL a row lock, on SQLite
    # the write lock; both end at the commit. Core statements: this runs in every writing request.
    n = len(pending)
    head = session.execute(_ADVANCE, {"n": n}).first()
    if head is None:
        # The migration seeds the head; this only runs on a database emptied by hand. Concurrent
        # writers may all get here: exactly one insert wins, the others take the update again.
        dialect = session.get_bind().dialect.name
        upsert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            upsert(AuditHead).values(id=1, seq=0, hash=GENESIS, pruned_through=0).on_conflict_do_nothing()
        )
        head = session.execute(_ADVANCE, {"n": n}).one()
    seq, prev = head.seq - n + 1, head.hash
    rows = []
    for p in pending:
        digest = _digest(
            prev,
            seq,
            p.at,
            p.actor_type,
            p.actor_id,
            p.subject_id,
            p.action,
            p.fields,
            p.purpose,
            p.request_id,
        )
        rows.append(
            {
                "seq": seq,
                "at": p.at,
                "actor_type": p.actor_type,
                "actor_id": p.actor_id,
                "subject_id": p.subject_id,
                "action": p.action,
                "fields": p.fields,
                "purpose": p.purpose,
                "request_id": p.request_id,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        seq, prev = seq + 1, digest
    session.execute(_INSERT_EVENT, rows)
    session.execute(_SET_HASH, {"hash": prev})


_HEAD = table(AuditHead)
_ADVANCE = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=_HEAD.c.seq + bindparam("n"))
    .returning(_HEAD.c.seq, _HEAD.c.hash)
)
_INSERT_EVENT = insert(table(AuditEvent))
_SET_HASH = update(_HEAD).where(_HEAD.c.id == 1).values(hash=bindparam("hash"))


def user_action(
    session: Session, user_id: str, action: str, fields: Iterable[str] = (), purpose: str | None = None
) -> None:
    """A user changing their own data."""
    record(
        session,
        action,
        actor_type="user",
        actor_id=user_id,
        subject_id=user_id,
        fields=fields,
        purpose=purpose,
    )


def staff_action(
    session: Session,
    staff_id: str,
    subject_id: str,
    action: str,
    fields: Iterable[str] = (),
    purpose: str | None = None,
) -> None:
    """A member of staff acting on, or reading, a user's data (P19)."""
    record(
        session,
        action,
        actor_type="staff",
        actor_id=staff_id,
        subject_id=subject_id,
        fields=fields,
        purpose=purpose,
    )


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""


def verify(session: Session, batch: int = 5000) -> VerifyResult:
    prev: str | None = None
    expected_seq: int | None = None
    checked = 0
    last_seq = 0
    first_seq: int | None = None
    while True:
        rows = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(batch)
            )
        )
        if not rows:
            break
        for e in rows:
            if expected_seq is not None and e.seq != expected_seq:
                return VerifyResult(False, checked, expected_seq, "事件缺失（序号不连续）")
            if prev is not None and e.prev_hash != prev:
                return VerifyResult(False, checked, e.seq, "前序哈希不匹配")
            digest = _digest(
                e.prev_hash,
                e.seq,
                e.at,
                e.actor_type,
                e.actor_id,
                e.subject_id,
                e.action,
                list(e.fields or []),
                e.purpose,
                e.request_id,
            )
            if digest != e.hash:
                return VerifyResult(False, checked, e.seq, "事件内容被篡改")
            if first_seq is None:
                first_seq = e.seq
            prev, expected_seq, last_seq = e.hash, e.seq + 1, e.seq
            checked += 1
    head = session.get(AuditHead, 1)
    if head is None:
        return VerifyResult(checked == 0, checked, None, "" if checked == 0 else "链头缺失")
    if not checked:
        if head.seq != head.pruned_through:
            return VerifyResult(False, 0, head.pruned_through + 1, "事件被删除（日志为空，但链头记录了事件）")
        return VerifyResult(True, 0)
    if first_seq != head.pruned_through + 1:
        # Only retention may remove events, and it records how far it went.
        return VerifyResult(False, checked, head.pruned_through + 1, "起始事件被删除（未经保存期限清理）")
    if head.hash != prev or head.seq != last_seq:
        return VerifyResult(False, checked, last_seq, "链尾与记录不一致（末尾事件被删除）")
    return VerifyResult(True, checked)


def prune(session: Session, keep_days: int) -> int:
    """Drop events older than the retention period, from the start of the chain only."""
    cutoff = utcnow() - timedelta(days=keep_days)
    last = session.scalar(select(func.max(AuditEvent.seq)).where(AuditEvent.at < cutoff))
    if last is None:
        return 0
    result = session.execute(delete(AuditEvent).where(AuditEvent.seq <= last))
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(pruned_through=last))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
