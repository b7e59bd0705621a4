"""The audit trail: every change, and every staff or system read of personal data.

Events carry field names, never values. Each event's hash is an HMAC-SHA256, under a key derived
from the master key (`KeyRing.audit_key`, never in the database), of its predecessor's hash and its
own content, `fields` included exactly as stored. Whoever can write the database but not read the
key file cannot recompute a valid chain after editing a row. After every commit that advanced the
chain, its new head (sequence number and hash) is appended to an anchor file outside the database
(`keys/audit-anchor.log`), so deleting the tail and resetting `audit_head` is visible too.
`huirongke privacy verify-audit` checks both. Old events are pruned from the start of the chain only,
after the retention period (≥ 6 months, R10).

The key and the anchor belong to a `Database` (`install`, called by `build_context`): every session
that database makes carries them in `session.info`, so contexts with different data dirs in one
process (the tests build many) each chain under their own key into their own anchor.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import bindparam, delete, event, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from huirongke.kit import txn
from huirongke.kit.clock import utcnow
from huirongke.kit.crypto import KeyRing
from huirongke.kit.db import READ_ONLY, Database, ReadOnlyUnit, table
from huirongke.privacy.models import AuditEvent, AuditHead

GENESIS = "0" * 64


def _digest(
    key: bytes,
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
    payload = _payload(seq, at, actor_type, actor_id, subject_id, action, fields, purpose, request_id)
    return hmac.digest(key, (prev + payload).encode(), "sha256").hex()  # the one-shot C path


def _payload(*content: Any) -> str:
    seq, at, *rest = content
    return json.dumps([seq, at.isoformat(), *rest], ensure_ascii=False, separators=(",", ":"))


def _legacy_digest(prev: str, *content: Any) -> str:
    """The digest before the chain was keyed (plain SHA-256): read only by `rekey_legacy`."""
    return hashlib.sha256((prev + _payload(*content)).encode()).hexdigest()


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
    key = _key(session)
    for p in pending:
        digest = _digest(
            key,
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
    session.info[_ANCHOR_NEXT] = ("head", head.seq, prev)  # appended to the anchor once committed


_HEAD = table(AuditHead)
_ADVANCE = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=_HEAD.c.seq + bindparam("n"))
    .returning(_HEAD.c.seq, _HEAD.c.hash)
)
_INSERT_EVENT = insert(table(AuditEvent))
_SET_HASH = update(_HEAD).where(_HEAD.c.id == 1).values(hash=bindparam("hash"))


# The key and the anchor ---------------------------------------------------------------------------

_KEY = "audit_key"
_ANCHOR = "audit_anchor"
_ANCHOR_NEXT = "audit_anchor_next"
ANCHOR_FILE = "audit-anchor.log"
_log = structlog.get_logger()


def install(db: Database, ring: KeyRing, keys_dir: Path) -> None:
    """Give every session `db` makes the audit key and the anchor file (in `session.info`)."""
    key = ring.audit_key()
    info: dict[Any, Any] = dict(db.sessionmaker.kw.get("info") or {})
    info[_KEY] = key
    info[_ANCHOR] = Anchor(keys_dir / ANCHOR_FILE, key)
    db.sessionmaker.configure(info=info)


def _key(session: Session) -> bytes:
    key: bytes | None = session.info.get(_KEY)
    if key is None:
        # Fail closed: an event chained without the key could never be verified.
        raise RuntimeError(
            "audit key not installed: sessions must come from a Database given to audit.install"
        )
    return key


def _anchor(session: Session) -> Anchor:
    anchor: Anchor | None = session.info.get(_ANCHOR)
    if anchor is None:
        raise RuntimeError(
            "audit anchor not installed: sessions must come from a Database given to audit.install"
        )
    return anchor


class Anchor:
    """The chain head, outside the database: an append-only file of `seq hash` lines, one per commit
    that advanced the chain, and MAC'd `restored …` / `rekeyed …` lines where an operator restored the
    database (`mark_restored`) or re-keyed a legacy log (`rekey_legacy`).

    Lines are appended with one `write` on an `O_APPEND` descriptor, so processes sharing the data dir
    interleave whole lines (not always in sequence order: verification does not need them sorted).
    There is no fsync: SQLite runs with `synchronous=NORMAL`, so its own commits are not flushed to
    disk one by one either (see `verify`'s note on power loss). The file lives in `keys/`, beside the
    erasure ledger and outside backups, for the same reason: a restore must not bring back an older
    anchor and so erase the evidence of what the chain held after the backup. A restore is declared
    instead (`mark_restored`)."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key
        self._fd: int | None = None
        self._lock = threading.Lock()

    def append(self, seq: int, digest: str) -> None:
        self._write(f"{seq} {digest}\n")

    def append_restored(self, seq: int, digest: str, at: datetime, kind: str = "restored") -> None:
        body = f"{kind} {seq} {digest} {at.isoformat()}"
        self._write(f"{body} {self._mac(body)}\n")

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, b"anchor\x00" + body.encode(), hashlib.sha256).hexdigest()

    def _write(self, line: str) -> None:
        # One descriptor per anchor, opened on first use (3 µs a line instead of 45 µs with an open and
        # a close each time), closed when the anchor goes with its Database.
        fd = self._fd
        if fd is None:
            with self._lock:
                if self._fd is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    weakref.finalize(self, os.close, self._fd)
                fd = self._fd
        os.write(fd, line.encode())

    def read(self, floor: int = 0) -> tuple[dict[int, str] | None, str]:
        """The anchored heads above `floor` still in force, `{seq: hash}` (None if there is no file),
        or a problem. A `restored N` line supersedes every earlier entry above N: that part of the
        chain was replaced by the restored database. A `rekeyed N` line supersedes every earlier entry:
        the whole chain was re-keyed (`rekey_legacy`)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, ""
        heads: dict[int, str] = {}
        # The last piece is "" after a complete line, or what a crash left of a write: it anchors nothing.
        for line in data.decode("ascii", errors="replace").split("\n")[:-1]:
            parts = line.split(" ")
            if len(parts) == 2 and parts[0].isdigit() and len(parts[1]) == 64:
                seq = int(parts[0])
                if seq <= floor:
                    continue  # pruned from the chain: nothing left to compare it with
                if heads.setdefault(seq, parts[1]) != parts[1]:
                    # One sequence number, two heads, and no restore between: the chain was forked.
                    return {}, f"链外锚点中第 {seq} 条有两个不同的链头（审计链被改写过）"
            elif len(parts) == 5 and parts[0] in ("restored", "rekeyed") and parts[1].isdigit():
                body = " ".join(parts[:4])
                if not hmac.compare_digest(parts[4], self._mac(body)):
                    return {}, "链外锚点的恢复记录无效"
                seq = int(parts[1])
                heads = {s: h for s, h in heads.items() if s <= seq and parts[0] == "restored"}
                if seq > floor:
                    heads[seq] = parts[2]
            else:
                return {}, "链外锚点文件损坏"
        return heads, ""


@event.listens_for(Session, "after_commit")
def _anchor_head(session: Session) -> None:
    if session.get_nested_transaction() is not None:  # a savepoint released: not yet committed
        return
    head: tuple[str, int, str] | None = session.info.pop(_ANCHOR_NEXT, None)
    if head is None:
        return
    kind, seq, digest = head
    try:
        if kind == "head":
            _anchor(session).append(seq, digest)
        else:
            _anchor(session).append_restored(seq, digest, utcnow(), kind)
    except OSError as exc:
        # The events are committed; failing the request now would not undo them. The next commit
        # anchors a later head, and verification reports the gap only if the tail is then removed.
        _log.error("audit_anchor_write_failed", seq=seq, error_type=type(exc).__name__)


@event.listens_for(Session, "after_transaction_end")
def _forget_anchor(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # a commit that failed after `_chain_pending` anchors nothing
        session.info.pop(_ANCHOR_NEXT, None)


def mark_restored(session: Session) -> int:
    """Declare, in the anchor, that the database was restored (`huirongke backup restore`): the chain
    now legitimately ends at the restored head, and anchored heads past it belong to the replaced
    timeline. Call it right after the database is restored, before anything writes audit events.
    Returns the restored head's sequence number. The line stays in the anchor: a rollback is always
    visible, never silent."""
    head = session.get(AuditHead, 1)
    seq, digest = (head.seq, head.hash) if head is not None else (0, GENESIS)
    _anchor(session).append_restored(seq, digest, utcnow())
    return seq


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


class LegacyChainBroken(Exception):
    """`rekey_legacy` found an event that neither digest accounts for: nothing was re-keyed."""

    def __init__(self, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.seq, self.reason = seq, reason


def _content(e: AuditEvent, fields: list[str]) -> tuple[Any, ...]:
    """What an event's digest covers, after its predecessor's digest (see `_digest`)."""
    return (e.seq, e.at, e.actor_type, e.actor_id, e.subject_id, e.action, fields, e.purpose, e.request_id)


def rekey_legacy(session: Session, batch: int = 5000) -> int:
    """Re-chain under the key a log begun before the chain was keyed (its events hashed with plain
    SHA-256, later ones keyed on top of them), once, when upgrading: `verify-audit --rekey-legacy`.

    Every event must carry either its plain digest or its keyed one, with unbroken links, and agree
    with any anchored head; otherwise nothing changes (`LegacyChainBroken`). The events written before
    the upgrade are then only as trustworthy as plain SHA-256 was; from here on they are keyed too.
    The head stays locked while this runs, and a `rekeyed` line in the anchor records it. Returns the
    number of events re-keyed."""
    key = _key(session)
    if session.execute(_ADVANCE, {"n": 0}).first() is None:  # locks the head, like any writer
        return 0
    head = session.get(AuditHead, 1)
    assert head is not None
    anchored, problem = _anchor(session).read(floor=head.pruned_through)
    if problem:
        raise LegacyChainBroken(None, problem)
    old_prev: str | None = None
    new_prev: str | None = None
    last, count = head.pruned_through, 0
    while rows := list(
        session.scalars(select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch))
    ):
        updates = []
        for e in rows:
            fields = _field_list(e.fields)
            if e.seq != last + 1 or fields is None or (old_prev is not None and e.prev_hash != old_prev):
                raise LegacyChainBroken(e.seq, "事件缺失或链接断开")
            content = _content(e, fields)
            if e.hash not in (_legacy_digest(e.prev_hash, *content), _digest(key, e.prev_hash, *content)):
                raise LegacyChainBroken(e.seq, "事件内容被篡改")
            if anchored and anchored.get(e.seq, e.hash) != e.hash:
                raise LegacyChainBroken(e.seq, "与链外锚点不符（事件被改写）")
            new_prev = new_prev or e.prev_hash  # the first link is kept: its event may have been pruned
            digest = _digest(key, new_prev, *content)
            updates.append({"q": e.seq, "p": new_prev, "h": digest})
            old_prev, new_prev, last = e.hash, digest, e.seq
        session.execute(_REKEY_EVENT, updates)
        count += len(updates)
    if head.seq != last or (count and head.hash != old_prev) or max(anchored or {0: ""}) > head.seq:
        raise LegacyChainBroken(head.seq, "链尾与记录不一致（末尾事件被删除）")
    if count:
        session.execute(_SET_HASH, {"hash": new_prev})
        session.info[_ANCHOR_NEXT] = ("rekeyed", last, new_prev)
    session.expire_all()
    return count


_EVENTS = table(AuditEvent)
_REKEY_EVENT = (
    update(_EVENTS)
    .where(_EVENTS.c.seq == bindparam("q"))
    .values(prev_hash=bindparam("p"), hash=bindparam("h"))
)


def _field_list(value: object) -> list[str] | None:
    """`fields` as stored, if it is what `record` writes (a list of names); None otherwise. The digest
    covers the stored value as it is: coercing it (`list(value or [])`) made `null` pass for `[]` and a
    `{"users.nickname": "<a value>"}` object pass for `["users.nickname"]`, so values could be written
    into the log unseen."""
    if isinstance(value, list) and all(isinstance(f, str) for f in value):
        return value
    return None


def verify(session: Session, batch: int = 5000) -> VerifyResult:
    """Recompute the chain under the audit key, and check it against the anchor outside the database.

    After a power loss the database may have lost its last commits while the anchor kept their heads
    (neither is flushed per commit); verification then reports the lost tail, truthfully. If the loss
    is understood, or after a restore from backup, `mark_restored` (`verify-audit --record-restore`)
    declares the new end of the chain."""
    key = _key(session)
    start = session.get(AuditHead, 1)
    anchored, problem = _anchor(session).read(floor=start.pruned_through if start is not None else 0)
    if problem:
        return VerifyResult(False, 0, None, problem)
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
            fields = _field_list(e.fields)
            if fields is None:
                return VerifyResult(False, checked, e.seq, "事件内容被篡改")
            digest = _digest(key, e.prev_hash, *_content(e, fields))
            if not hmac.compare_digest(digest, e.hash):
                return VerifyResult(False, checked, e.seq, "事件内容被篡改")
            if anchored and anchored.get(e.seq, e.hash) != e.hash:
                return VerifyResult(False, checked, e.seq, "与链外锚点不符（事件被改写）")
            if first_seq is None:
                first_seq = e.seq
            prev, expected_seq, last_seq = e.hash, e.seq + 1, e.seq
            checked += 1
    head = session.get(AuditHead, 1)
    result = _check_head(head, checked, first_seq, last_seq, prev)
    if not result.ok:
        return result
    head_seq, pruned = (head.seq, head.pruned_through) if head is not None else (0, 0)
    if anchored is None:
        if head_seq > pruned:
            return VerifyResult(False, checked, None, f"链外锚点文件缺失（{ANCHOR_FILE}）")
        return result
    top = max(anchored, default=0)
    if top > head_seq:
        return VerifyResult(
            False,
            checked,
            head_seq + 1,
            f"链外锚点记录到第 {top} 条，数据库只到第 {head_seq} 条（末尾事件被删除；"
            "若数据库刚从备份恢复，请运行 huirongke privacy verify-audit --record-restore）",
        )
    return result


def _check_head(
    head: AuditHead | None, checked: int, first_seq: int | None, last_seq: int, prev: str | None
) -> VerifyResult:
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
