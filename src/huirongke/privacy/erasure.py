"""Account cancellation and erasure (P15, P36, R05, R13).

Erasure is a generic walk over the data map, in steps that are each idempotent and committed on
their own, so a crash part-way through is finished by simply running it again:
1. rows reached through the phone's blind index (codes, outbox), while the index is still known;
2. the media files named by the subject's rows;
3. every table linked by user id: rows with a `delete` column go, other personal columns are cleared;
4. the user row becomes an empty tombstone ("已注销用户"), which frees the phone number;
5. the data key is destroyed (crypto-shredding), so backups of any ciphertext become unreadable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import Table, delete, select, text, update
from sqlalchemy.orm import Session

from huirongke.accounts.models import User
from huirongke.context import AppContext
from huirongke.kit.clock import utcnow
from huirongke.kit.db import after_commit
from huirongke.kit.errors import AppError, Conflict, NotFound
from huirongke.kit.jobs import job
from huirongke.privacy import audit, changes, ledger, registry
from huirongke.privacy.models import AccountCancellation
from huirongke.privacy.registry import MappedTable

log = structlog.get_logger(__name__)
FailHook = Callable[[str], None]


def _empty_value(col: Any) -> Any:
    if col.nullable:
        return None
    py = col.type.python_type
    return {str: "", bytes: b"", list: [], dict: {}, bool: False, int: 0}.get(py)


def request_cancellation(
    ctx: AppContext, session: Session, user: User, actor: str = "user"
) -> AccountCancellation:
    active = session.scalar(
        select(AccountCancellation).where(
            AccountCancellation.user_id == user.id, AccountCancellation.status.in_(["cooling_off", "erasing"])
        )
    )
    if active is not None:
        return active
    now = utcnow()
    days = ctx.settings.cancellation_cooling_off_days
    row = AccountCancellation(
        user_id=user.id,
        status="cooling_off",
        requested_at=now,
        erase_after=now + timedelta(days=days),
        steps_done=[],
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "cancellation.requested",
        actor_type=actor,
        actor_id=user.id if actor == "user" else None,
        subject_id=user.id,
        purpose="account",
    )
    if days == 0:
        cancellation_id = row.id
        after_commit(session, lambda: ctx.jobs.enqueue("privacy.erase", cancellation_id))
    return row


def withdraw_cancellation(session: Session, user_id: str) -> AccountCancellation:
    row = session.scalar(
        select(AccountCancellation)
        .where(AccountCancellation.user_id == user_id)
        .order_by(AccountCancellation.requested_at.desc())
        .limit(1)
    )
    if row is None or row.status in ("withdrawn", "erased"):
        raise NotFound("没有进行中的注销申请", code="cancellation_not_found")
    if row.status != "cooling_off":
        raise Conflict("注销已开始执行，无法撤回", code="cancellation_in_progress")
    row.status, row.withdrawn_at = "withdrawn", utcnow()
    audit.user_action(session, user_id, "cancellation.withdrawn", purpose="account")
    return row


def current_cancellation(session: Session, user_id: str) -> AccountCancellation | None:
    return session.scalar(
        select(AccountCancellation)
        .where(AccountCancellation.user_id == user_id)
        .order_by(AccountCancellation.requested_at.desc())
        .limit(1)
    )


@job("privacy.erase")
def erase_job(ctx: AppContext, cancellation_id: str) -> None:
    erase(ctx, cancellation_id)


@job("privacy.erase_due", every_minutes=5)
def erase_due(ctx: AppContext) -> int:
    """Start erasure for every cancellation whose cooling-off has ended (and resume stuck ones)."""
    with ctx.db.session() as s:
        due = list(
            s.scalars(
                select(AccountCancellation.id).where(
                    AccountCancellation.status.in_(["cooling_off", "erasing"]),
                    AccountCancellation.erase_after <= utcnow(),
                )
            )
        )
    for cid in due:
        erase(ctx, cid)
    return len(due)


def _step(
    ctx: AppContext, cancellation_id: str, name: str, fn: Callable[[Session], None], fail: FailHook | None
) -> None:
    with ctx.db.session() as s:
        row = s.get(AccountCancellation, cancellation_id)
        assert row is not None
        if name in (row.steps_done or []):
            return
        if fail:
            fail(name)
        fn(s)
        row.steps_done = [*(row.steps_done or []), name]


def erase(ctx: AppContext, cancellation_id: str, *, fail: FailHook | None = None) -> None:
    with ctx.db.session() as s:
        row = s.get(AccountCancellation, cancellation_id)
        if row is None:
            raise NotFound("找不到该注销申请", code="cancellation_not_found")
        if row.status == "erased":
            return
        if row.status == "withdrawn":
            raise AppError("注销申请已撤回", code="cancellation_withdrawn", status=409)
        row.status = "erasing"
        user_id = row.user_id
        user = s.get(User, user_id)
        bidx = user.phone_bidx if user else None
        # The user can no longer act from this moment; sessions are deleted in the walk below.
        s.execute(
            update(User).where(User.id == user_id).values(status="erasing"),
            execution_options=changes.of(user_id),
        )
    ledger.record(ctx.settings.data_dir, user_id, cancellation_id)  # durable before any step (backups)
    log.info("erasure_started", cancellation_id=cancellation_id, user_id=user_id)

    tables = registry.personal_tables()
    if bidx:
        for t in tables:
            if t.link.via == "phone_bidx" and t.link.column:
                _step(ctx, cancellation_id, f"bidx:{t.name}", _delete_rows(t, bidx), fail)
    _step(ctx, cancellation_id, "media", lambda s: _delete_files(ctx, s, user_id), fail)
    for t in tables:
        if t.link.via == "user_id" and t.link.column and t.name != "users" and t.name != "data_keys":
            _step(ctx, cancellation_id, f"table:{t.name}", _erase_table(t, user_id), fail)
    bidx_tables = [t for t in tables if t.link.via == "phone_bidx" and t.link.column]

    def erase_root(s: Session) -> None:
        # Sweep the phone-index rows again in the same transaction that forgets the index: codes
        # requested while erasure was running are the subject's too.
        if bidx:
            for t in bidx_tables:
                _delete_rows(t, bidx)(s)
        _erase_table(registry.by_name("users"), user_id)(s)

    _step(ctx, cancellation_id, "users", erase_root, fail)
    _step(ctx, cancellation_id, "data_key", lambda s: ctx.keys.shred(s, user_id), fail)

    with ctx.db.session() as s:
        row = s.get(AccountCancellation, cancellation_id)
        assert row is not None
        row.status, row.completed_at = "erased", utcnow()
        s.execute(
            update(User).where(User.id == user_id).values(status="erased"),
            execution_options=changes.of(user_id),
        )
        audit.record(
            s,
            "account.erased",
            actor_type="system",
            actor_id="erasure",
            subject_id=user_id,
            fields=[f"{t.name}.*" for t in tables],
            purpose="account",
        )
    ctx.keys.forget(user_id)
    _compact(ctx)
    log.info("erasure_finished", cancellation_id=cancellation_id, user_id=user_id)


def _delete_rows(t: MappedTable, value: str) -> Callable[[Session], None]:
    def run(s: Session) -> None:
        assert t.link.column
        s.execute(delete(t.table).where(t.table.c[t.link.column] == value))

    return run


def _delete_files(ctx: AppContext, s: Session, user_id: str) -> None:
    for t, c in _file_columns():
        assert t.link.column
        for key in s.scalars(select(t.table.c[c.name]).where(t.table.c[t.link.column] == user_id)):
            if key:
                ctx.storage.delete(key)


def _file_columns() -> list[tuple[MappedTable, registry.MappedColumn]]:
    return [
        (t, c)
        for t in registry.personal_tables()
        for c in t.columns
        if c.cls.category.endswith(".file") and t.link.via == "user_id"
    ]


def _erase_table(t: MappedTable, user_id: str) -> Callable[[Session], None]:
    """Rows with a column fated `delete` go (except the root); otherwise personal columns are cleared."""

    def run(s: Session) -> None:
        assert t.link.column
        owner = t.table.c[t.link.column]
        is_root = t.name == "users"
        personal = [c for c in t.personal_columns if c.name != t.link.column]
        if not is_root and any(c.cls.erasure == "delete" for c in t.personal_columns):
            s.execute(delete(t.table).where(owner == user_id), execution_options=changes.of(user_id))
            return
        clear = {c.name: _empty_value(c.column) for c in personal if c.cls.erasure != "keep"}
        if clear:
            s.execute(
                update(t.table).where(owner == user_id).values(clear), execution_options=changes.of(user_id)
            )

    return run


def _compact(ctx: AppContext) -> None:
    """Push freed pages out of the SQLite WAL, so no copy of erased rows lingers in the files."""
    if not ctx.settings.is_sqlite and not ctx.db.url.startswith("sqlite"):
        return
    try:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    except Exception as exc:  # busy readers: the next checkpoint finishes the job
        log.warning("wal_checkpoint_deferred", error_type=type(exc).__name__)


def tables_for_erasure() -> list[Table]:
    return [t.table for t in registry.personal_tables()]
