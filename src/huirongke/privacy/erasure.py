"""Account cancellation and erasure (P15, P36, R05, R13).

Erasure is a generic walk over the data map's link model, in steps that are each idempotent and
committed on their own, so a crash part-way through is finished by simply running it again:
1. every (table, subject) pair, children before parents: the rows that reach the user through that
   subject (a user-id column, a path through other tables, or the phone's blind index while it is
   still known) meet the subject's fate (delete, anonymize, keep, or each column's own fate), and the
   files those rows name go with them;
2. the user row becomes an empty tombstone ("已注销用户"), which frees the phone number;
3. the data key is destroyed (crypto-shredding), so backups of any ciphertext become unreadable.
Third parties (people who are not users) are erased by their own request: `erase_third_party`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
from huirongke.privacy.datamap import Subject
from huirongke.privacy.models import AccountCancellation
from huirongke.privacy.registry import MappedTable, Who

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
    ctx: AppContext, cancellation_id: str, name: str, fn: Callable[[Session], object], fail: FailHook | None
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
    who = Who(user_id=user_id, phone_bidx=bidx)
    walk = _walk()
    for name, t, sub in walk:
        _step(ctx, cancellation_id, name, _erase_subject(ctx, t, sub, who), fail)
    phone_rows = [(t, sub) for _name, t, sub in walk if sub.kind == "phone"]

    def erase_root(s: Session) -> None:
        # Sweep the phone-index rows again in the same transaction that forgets the index: codes
        # requested while erasure was running are the subject's too.
        for t, sub in phone_rows:
            _erase_subject(ctx, t, sub, who)(s)
        users = registry.by_name("users")
        _erase_subject(ctx, users, users.subjects[0], who)(s)

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


#: Handled on their own: the user row becomes the tombstone last, and the data key is shredded.
_ROOTS = ("users", "data_keys")


def _walk() -> list[tuple[str, MappedTable, Subject]]:
    """Every (table, subject) pair a user's erasure visits, children before parents, with its step
    name. Third-party subjects are not a user's: only their own request reaches them."""
    return [
        (f"{t.name}:{i}", t, sub)
        for t in registry.personal_tables()
        if t.name not in _ROOTS
        for i, sub in enumerate(t.subjects)
        if sub.kind != "third_party"
    ]


def step_names() -> list[str]:
    """The erasure's steps in order, each committed on its own (what `steps_done` records)."""
    return [name for name, _t, _s in _walk()] + ["users", "data_key"]


def erase_third_party(ctx: AppContext, bidx: str) -> list[str]:
    """Erase someone who is not a user, known by the blind index of their identity (e.g. a person in
    an agent's imported contacts who asked us to remove their number). Returns the tables touched."""
    who = Who(third_party_bidx=bidx)
    touched = []
    for t in registry.personal_tables():
        for sub in t.subjects:
            if sub.kind == "third_party":
                with ctx.db.session() as s:
                    if _erase_subject(ctx, t, sub, who)(s):
                        touched.append(t.name)
    return touched


def _erase_subject(ctx: AppContext, t: MappedTable, sub: Subject, who: Who) -> Callable[[Session], int]:
    """Apply `sub`'s fate to the rows of `t` that reach `who` through it; returns the rows touched.

    `delete` removes the rows (and the files they name); `anonymize` clears the subject's own columns
    and link; `keep` leaves them; `columns` (a row's owner) lets each personal column's classified fate
    decide: any `delete` column removes the row (the user row itself only ever becomes a tombstone),
    otherwise every column not kept is cleared."""

    def run(s: Session) -> int:
        where = t.where(sub, who)
        if where is None or sub.fate == "keep":
            return 0
        opts = changes.of(who.user_id) if who.user_id else {}
        is_root = t.name == "users"
        if sub.fate == "anonymize":
            clear_cols = list(t.columns_of(sub))
        elif sub.fate == "delete" or (
            sub.fate == "columns"
            and not is_root
            and any(c.cls.erasure == "delete" for c in t.columns_of(sub))
        ):
            _delete_files(ctx, s, t, t.file_columns, where)
            return _count(s.execute(delete(t.table).where(where), execution_options=opts))
        else:
            link = set(t.link_columns(sub)) if not sub.via else set()
            clear_cols = [c for c in t.columns_of(sub) if c.cls.erasure != "keep" and c.name not in link]
        if not clear_cols:
            return 0
        _delete_files(ctx, s, t, [c for c in clear_cols if registry.is_file(c)], where)
        values = {c.name: _empty_value(c.column) for c in clear_cols}
        return _count(s.execute(update(t.table).where(where).values(values), execution_options=opts))

    return run


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


def _delete_files(
    ctx: AppContext, s: Session, t: MappedTable, columns: Iterable[registry.MappedColumn], where: Any
) -> None:
    for c in columns:
        for key in s.scalars(select(t.table.c[c.name]).where(where)):
            if key:
                ctx.storage.delete(key)


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
