"""Session idle timeout (issue 8): a session unused for `HRK_SESSION_IDLE_MINUTES` (14 days by default)
is over, 401 `token_expired`; use keeps it alive, and is recorded at most once an hour, never on every
request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from conftest import auth, sign_up
from huirongke.config import Settings
from huirongke.kit.clock import clock
from privacy.privacy_support import assert_error, rows

IDLE = timedelta(days=14)


def _last_seen(client: Any, token: str) -> Any:
    from huirongke.accounts.signin import hash_token

    ctx = client.app.state.ctx
    (row,) = rows(ctx, "SELECT last_seen_at FROM auth_sessions WHERE token_hash = :h", h=hash_token(token))
    return row.last_seen_at


def test_the_default_is_fourteen_days():
    assert Settings(_env_file=None).session_idle_minutes == 14 * 24 * 60  # type: ignore[call-arg]


def test_a_session_unused_for_the_idle_period_is_over(client):
    token, _ = sign_up(client)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200  # from the identity cache
    clock.advance(IDLE + timedelta(minutes=1))
    # The cached identity is not served past the idle deadline, and the database refuses the session.
    assert_error(client.get("/api/v1/me", headers=auth(token)), 401, "token_expired")
    assert_error(client.get("/api/v1/me/sessions", headers=auth(token)), 401, "token_expired")


def test_use_keeps_a_session_alive(client):
    token, _ = sign_up(client)
    # 26 days in all, longer than the idle period but within the 30-day lifetime, with no 14-day gap.
    for _ in range(2):
        clock.advance(IDLE - timedelta(days=1))
        assert client.get("/api/v1/me", headers=auth(token)).status_code == 200


def test_use_is_written_at_most_once_an_hour(client):
    token, _ = sign_up(client)
    client.app.state.ctx.identities.ttl = 0  # every request asks the database
    first = _last_seen(client, token)
    for _ in range(5):
        clock.advance(timedelta(minutes=11))
        assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    assert _last_seen(client, token) == first  # 55 minutes of requests, no write
    clock.advance(timedelta(minutes=6))
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    assert _last_seen(client, token) > first


def test_a_short_idle_period_is_tracked_often_enough(client):
    """With an idle period under four hours, use is written more often than hourly, so a session in
    steady use never lapses between two writes."""
    ctx = client.app.state.ctx
    ctx.settings.session_idle_minutes = 60
    ctx.identities.ttl = 0
    token, _ = sign_up(client)
    for _ in range(12):  # two hours, a request every ten minutes
        clock.advance(timedelta(minutes=10))
        assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    clock.advance(timedelta(minutes=61))
    assert_error(client.get("/api/v1/me", headers=auth(token)), 401, "token_expired")


def test_lapsed_sessions_are_not_listed(client):
    idle_one, _ = sign_up(client)
    clock.advance(timedelta(seconds=61))
    active, _ = sign_up(client)
    clock.advance(IDLE - timedelta(days=1))
    assert client.get("/api/v1/me", headers=auth(active)).status_code == 200  # records the use
    clock.advance(timedelta(days=2))
    sessions = client.get("/api/v1/me/sessions", headers=auth(active)).json()
    assert [s["current"] for s in sessions] == [True]
    assert_error(client.get("/api/v1/me", headers=auth(idle_one)), 401, "token_expired")
