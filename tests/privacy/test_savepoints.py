"""Audit events, cache invalidations and after-commit hooks belong to the savepoint that made them.

A CRM import runs one savepoint per row and rolls back the rows that fail. Before this, rolling back
one savepoint dropped the whole transaction's audit events and invalidation marks: the commit then left
`/me` answering from a stale cache (a revoked session kept working) and wrote no audit row.
"""

from __future__ import annotations

from sqlalchemy import func, select, update

from conftest import auth, sign_up
from huirongke.accounts.models import AuthSession, User
from huirongke.kit.clock import utcnow
from huirongke.kit.db import after_commit
from huirongke.privacy import audit, changes
from huirongke.privacy.models import AuditEvent
from privacy.privacy_support import assert_error


class _Failed(Exception):
    pass


def _actions(ctx) -> list[str]:
    with ctx.db.session(write=False) as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def _failing_savepoint(session, user_id: str) -> None:
    """One row of an import that fails: its own audit event and change go with it."""
    try:
        with session.begin_nested():
            audit.user_action(session, user_id, "test.row_failed")
            session.execute(
                update(User).where(User.id == user_id).values(show_region=True),
                execution_options=changes.of(user_id),
            )
            raise _Failed
    except _Failed:
        pass


def test_a_rolled_back_savepoint_keeps_the_transactions_revocation_and_audit(client, ctx):
    token, user = sign_up(client)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200  # cached now
    before = _actions(ctx)

    with ctx.db.session() as s:
        s.execute(
            update(AuthSession).where(AuthSession.user_id == user["id"]).values(revoked_at=utcnow()),
            execution_options=changes.of(user["id"]),
        )
        audit.user_action(s, user["id"], "sessions.revoked_all")
        _failing_savepoint(s, user["id"])

    assert_error(client.get("/api/v1/me", headers=auth(token)), 401, "token_expired")
    assert _actions(ctx)[len(before) :] == ["sessions.revoked_all"]
    with ctx.db.session(write=False) as s:
        assert s.scalar(select(User.show_region).where(User.id == user["id"])) is False


def test_a_released_savepoint_keeps_its_work_and_a_nested_rollback_drops_only_its_own(ctx, client):
    _token, user = sign_up(client)
    before = len(_actions(ctx))
    ran: list[str] = []
    with ctx.db.session() as s:
        with s.begin_nested():
            audit.user_action(s, user["id"], "test.kept")
            after_commit(s, lambda: ran.append("kept"))
            _failing_savepoint(s, user["id"])
            after_commit(s, lambda: ran.append("kept-after"))
        try:
            with s.begin_nested():
                audit.user_action(s, user["id"], "test.dropped_outer")
                after_commit(s, lambda: ran.append("dropped"))
                with s.begin_nested():
                    audit.user_action(s, user["id"], "test.dropped_inner")
                raise _Failed
        except _Failed:
            pass
    assert _actions(ctx)[before:] == ["test.kept"]
    assert ran == ["kept", "kept-after"]


def test_a_hook_queued_in_a_rolled_back_savepoint_never_runs(ctx):
    ran: list[str] = []
    with ctx.db.session() as s:
        try:
            with s.begin_nested():
                after_commit(s, lambda: ran.append("job"))
                raise _Failed
        except _Failed:
            pass
    assert ran == []


def test_releasing_a_savepoint_announces_nothing_before_the_commit(ctx, client):
    _token, user = sign_up(client)
    heard: list[frozenset[str]] = []

    class Listener:
        def subjects_changed(self, ids: frozenset[str]) -> None:
            heard.append(ids)

    listener = Listener()
    changes.subscribe(listener)
    with ctx.db.session() as s:
        with s.begin_nested():
            s.execute(
                update(User).where(User.id == user["id"]).values(show_phone=True),
                execution_options=changes.of(user["id"]),
            )
        assert heard == []  # the outer transaction could still roll back
        audit_rows = s.scalar(select(func.count()).select_from(AuditEvent))
        assert audit_rows is not None
    assert heard == [frozenset({user["id"]})]


def test_a_rolled_back_transaction_announces_and_audits_nothing(ctx, client):
    _token, user = sign_up(client)
    before = len(_actions(ctx))
    heard: list[frozenset[str]] = []

    class Listener:
        def subjects_changed(self, ids: frozenset[str]) -> None:
            heard.append(ids)

    listener = Listener()
    changes.subscribe(listener)
    try:
        with ctx.db.session() as s:
            s.execute(
                update(User).where(User.id == user["id"]).values(show_phone=True),
                execution_options=changes.of(user["id"]),
            )
            audit.user_action(s, user["id"], "test.rolled_back")
            raise _Failed
    except _Failed:
        pass
    assert heard == []
    assert len(_actions(ctx)) == before
