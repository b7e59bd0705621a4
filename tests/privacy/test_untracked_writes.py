"""Writes that no cache would hear about fail loudly outside production, and `make lint` finds them.

Before this, revoking a session with raw SQL (`session.execute(text("UPDATE auth_sessions ..."))`, or
a Core statement on `connection.execute`) left the revoked token working from the identity cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text, update

from conftest import auth, sign_up
from huirongke import checks
from huirongke.accounts.models import AuthSession
from huirongke.kit.clock import utcnow
from huirongke.privacy import changes
from privacy.privacy_support import assert_error

REVOKE = "UPDATE auth_sessions SET revoked_at = :now WHERE user_id = :uid"


def _warm(client, token: str) -> None:
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200


def test_raw_sql_through_the_session_raises_and_changes_nothing(client, ctx):
    token, user = sign_up(client)
    _warm(client, token)
    with pytest.raises(changes.UntrackedWrite), ctx.db.session() as s:
        s.execute(text(REVOKE), {"now": utcnow(), "uid": user["id"]})
    _warm(client, token)  # rolled back: the session is still live, and the cache agrees


def test_raw_sql_on_the_sessions_connection_raises(client, ctx):
    _token, user = sign_up(client)
    with pytest.raises(changes.UntrackedWrite), ctx.db.session() as s:
        s.connection().execute(text(REVOKE), {"now": utcnow(), "uid": user["id"]})


def test_a_core_statement_on_a_bare_connection_raises(client, ctx):
    _token, user = sign_up(client)
    stmt = update(AuthSession).where(AuthSession.user_id == user["id"]).values(revoked_at=utcnow())
    with pytest.raises(changes.UntrackedWrite), ctx.db.engine.begin() as conn:
        conn.execute(stmt)


def test_the_same_revocation_through_the_session_is_heard_at_once(client, ctx):
    token, user = sign_up(client)
    _warm(client, token)
    with ctx.db.session() as s:
        s.execute(
            update(AuthSession).where(AuthSession.user_id == user["id"]).values(revoked_at=utcnow()),
            execution_options=changes.of(user["id"]),
        )
    assert_error(client.get("/api/v1/me", headers=auth(token)), 401, "token_expired")


def test_a_declared_untracked_write_is_allowed_and_must_be_announced(client, ctx):
    token, user = sign_up(client)
    _warm(client, token)
    with ctx.db.session() as s:
        s.execute(
            text(REVOKE),
            {"now": utcnow(), "uid": user["id"]},
            execution_options={changes.UNTRACKED_OK: True},
        )
    _warm(client, token)  # nobody announced it: exactly the staleness the guard prevents elsewhere
    changes.announce([changes.mark_of("auth_sessions", user["id"])])
    assert_error(client.get("/api/v1/me", headers=auth(token)), 401, "token_expired")


def test_raw_sql_on_tables_no_cache_watches_is_not_refused(client, ctx):
    with ctx.db.session() as s:
        s.execute(text("DELETE FROM permission_events WHERE user_id = 'nobody'"))


def test_the_lint_check_finds_raw_writes_to_mapped_tables(tmp_path: Path):
    src = tmp_path / "bad.py"
    src.write_text(
        "from sqlalchemy import text\n"
        "A = text('UPDATE auth_sessions SET revoked_at = NULL')\n"
        "B = text(f'DELETE FROM users WHERE id = {1}')\n"
        "C = text('SELECT * FROM users')\n"
        "D = text('UPDATE users SET status = 1')  # raw-sql-ok: a migration fixing old rows\n"
        "E = text('UPDATE something_else SET x = 1')\n",
        encoding="utf-8",
    )
    found = list(checks.raw_writes(src, src.read_text("utf-8"), checks.mapped_tables()))
    assert [(f.line, f.tables) for f in found] == [(2, ("auth_sessions",)), (3, ("users",))]
    assert checks.main([str(tmp_path)]) == 1


def test_the_source_tree_has_no_raw_writes():
    assert checks.main([]) == 0
