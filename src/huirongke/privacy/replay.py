"""Replaying the erasure ledger: nobody erased comes back with a restored or hand-copied database.

A subject in the ledger (`privacy.ledger`) whose user row is not an erased tombstone, or whose data
key still exists, has come back, e.g. from a backup taken before the erasure. Each one is erased
again with the normal erasure (`privacy.erasure.erase`): the data-map walk, the media files, the
tombstone and the data key's shredding. `backup restore` does this before it returns, and the
service does it at every start before it answers (so a restore done by hand is caught too). Erasure
is resumable step by step, so a replay that crashed is finished by the next one.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from sqlalchemy import select

from huirongke.accounts.models import User
from huirongke.context import AppContext
from huirongke.kit.clock import utcnow
from huirongke.privacy import ledger
from huirongke.privacy.models import AccountCancellation, DataKey

log = structlog.get_logger(__name__)
_CHUNK = 500


def pending(ctx: AppContext) -> list[ledger.Entry]:
    """Ledger entries the database does not reflect: the user is not an erased tombstone, or the
    data key is still there. One entry per subject, in ledger order."""
    entries = ledger.entries(ctx.settings.data_dir)
    if not entries:
        return []
    by_user: dict[str, ledger.Entry] = {}
    for e in entries:
        by_user.setdefault(e.user_id, e)
    ids = list(by_user)
    back: set[str] = set()
    with ctx.db.session(write=False) as s:
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            back.update(s.scalars(select(User.id).where(User.id.in_(chunk), User.status != "erased")))
            back.update(s.scalars(select(DataKey.subject_id).where(DataKey.subject_id.in_(chunk))))
    return [e for e in by_user.values() if e.user_id in back]


def replay(
    ctx: AppContext,
    *,
    say: Callable[[str], None] | None = None,
    fail: Callable[[str], None] | None = None,
) -> int:
    """Erase again every subject the ledger names and the database brought back; returns how many.
    `fail` is erasure's crash hook (tests)."""
    from huirongke.privacy.erasure import erase

    todo = pending(ctx)
    for n, entry in enumerate(todo, start=1):
        if say:
            say(f"  重放注销 {n}/{len(todo)}：用户 {entry.user_id}")
        cancellation_id = _cancellation_for(ctx, entry)
        if cancellation_id is None:
            _shred_orphan_key(ctx, entry.user_id)
        else:
            erase(ctx, cancellation_id, fail=fail)
        log.info("erasure_replayed", user_id=entry.user_id)
    return len(todo)


def on_startup(ctx: AppContext) -> None:
    """Called by the app before it answers: complete the ledger, then replay what the database does
    not reflect."""
    added = backfill(ctx)
    if added:
        log.warning("erasure_ledger_backfilled", count=added)
    count = replay(ctx)
    if count:
        log.warning("erasures_replayed_at_startup", count=count)


def backfill(ctx: AppContext) -> int:
    """Record every erasure the database shows as finished but the ledger lacks (erasures made before
    the ledger existed, or with another keys dir), so that from now on no restore brings them back."""
    with ctx.db.session(write=False) as s:
        done = s.execute(
            select(AccountCancellation.user_id, AccountCancellation.id, AccountCancellation.completed_at)
            .where(AccountCancellation.status == "erased")
            .order_by(AccountCancellation.completed_at)
        ).all()
    if not done:
        return 0
    return ledger.record_many(ctx.settings.data_dir, [(u, c, at or utcnow()) for u, c, at in done])


def _cancellation_for(ctx: AppContext, entry: ledger.Entry) -> str | None:
    """The cancellation to (re)run for an entry, set to `erasing`; None if the user row is gone."""
    with ctx.db.session() as s:
        if s.get(User, entry.user_id) is None:
            return None
        row = s.get(AccountCancellation, entry.cancellation_id) if entry.cancellation_id else None
        if row is None or row.user_id != entry.user_id:
            # The backup predates the request: recreate it, with the ledger's id when that is free.
            now = utcnow()
            row = AccountCancellation(
                user_id=entry.user_id, status="erasing", requested_at=now, erase_after=now, steps_done=[]
            )
            if entry.cancellation_id and s.get(AccountCancellation, entry.cancellation_id) is None:
                row.id = entry.cancellation_id
            s.add(row)
            s.flush()
        elif row.status != "erasing":
            if row.status == "erased":
                row.steps_done = []  # marked done, yet the subject is back: walk every step again
            row.status, row.completed_at = "erasing", None
        return row.id


def _shred_orphan_key(ctx: AppContext, user_id: str) -> None:
    with ctx.db.session() as s:
        ctx.keys.shred(s, user_id)
