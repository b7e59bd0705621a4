"""The identity cache: `/me` and the gates answered from memory, and never staler than the last commit.

Each test warms the cache through the API, changes something the way the product does (an API call, a
service call in its own unit of work, a staff command in another process), and checks that the very
next request sees the change.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from conftest import REDIS_URL, _empty, _redis_available, auth, missing_service, sign_up
from huirongke.accounts import identity, sealed_profile
from huirongke.accounts.identity import Identity, IdentityCache
from huirongke.accounts.models import User
from huirongke.app import create_app
from huirongke.config import Settings
from huirongke.context import build_context
from huirongke.kit.clock import clock
from huirongke.privacy import changes
from privacy.privacy_support import assert_error, grant, publish, submit_real_name


@contextmanager
def statements(ctx) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):
        seen.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", record)


def warm(client: TestClient, token: str) -> dict:
    r = client.get("/api/v1/me", headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()


def test_a_repeated_me_runs_no_query_and_answers_the_same(client, ctx):
    token, user = sign_up(client)
    first = warm(client, token)
    with statements(ctx) as seen:
        again = warm(client, token)
    assert seen == []
    assert again == first
    assert again["id"] == user["id"] and again["phone"] == "+8613800138000"


def test_a_profile_change_is_seen_by_the_next_read(client, ctx):
    token, _ = sign_up(client)
    warm(client, token)
    r = client.patch("/api/v1/me", json={"nickname": "王经理"}, headers=auth(token))
    assert r.status_code == 200, r.text
    assert warm(client, token)["nickname"] == "王经理"


def test_signing_out_kills_the_token_at_once(client, ctx):
    token, _ = sign_up(client)
    warm(client, token)
    assert client.delete("/api/v1/auth/sessions/current", headers=auth(token)).status_code == 204
    assert_error(client.get("/api/v1/me", headers=auth(token)), 401, "token_expired")


def test_revoking_another_device_kills_its_token_at_once(client, ctx):
    phone_token, _ = sign_up(client)
    clock.advance(timedelta(seconds=61))  # the next code may be sent after a minute
    laptop_token, _ = sign_up(client)
    warm(client, phone_token)
    warm(client, laptop_token)
    sessions = client.get("/api/v1/me/sessions", headers=auth(phone_token)).json()
    laptop = next(s for s in sessions if not s["current"])
    r = client.delete(f"/api/v1/me/sessions/{laptop['id']}", headers=auth(phone_token))
    assert r.status_code == 204
    assert_error(client.get("/api/v1/me", headers=auth(laptop_token)), 401, "token_expired")
    assert warm(client, phone_token)


def test_a_new_policy_version_asks_again_at_once(client, ctx):
    token, _ = sign_up(client)
    warm(client, token)
    version = publish(ctx)
    err = assert_error(client.get("/api/v1/me", headers=auth(token)), 428, "policy_update_required")
    assert err["details"] == {"current_version": version}


def test_withdrawing_a_consent_closes_its_gate_at_once(client, ctx):
    token, _ = sign_up(client)
    grant(client, token, "real_name")
    submit_real_name(client, token)  # passes the gate, and caches the identity with the grant
    warm(client, token)
    grant(client, token, "real_name", False)
    body = {"name": "张三丰", "id_number": "11010519491231002X"}
    r = client.post("/api/v1/me/real-name", json=body, headers=auth(token))
    assert_error(r, 428, "consent_required")


def test_a_write_in_another_unit_of_work_is_seen(client, ctx):
    """Staff tools and jobs write through their own sessions, not the request's."""
    token, user = sign_up(client)
    warm(client, token)
    with ctx.db.session() as s:
        row = s.get_one(User, user["id"])
        sealed_profile.write(ctx.keys.cipher(s, row.id), row, "region", "浙江省杭州市")
    assert warm(client, token)["region"] == "浙江省杭州市"
    with ctx.db.session() as s:
        s.execute(update(User).where(User.id == user["id"]).values(status="erasing"))
    assert_error(client.get("/api/v1/me", headers=auth(token)), 401, "token_expired")


def test_a_bulk_statement_naming_no_user_forgets_everyone(client, ctx):
    a, _ = sign_up(client, "13800138000")
    b, _ = sign_up(client, "13900139000")
    warm(client, a)
    warm(client, b)
    assert len(ctx.identities) == 2
    with ctx.db.session() as s:
        s.execute(update(User).values(password_hash="x"))
    assert len(ctx.identities) == 0
    assert warm(client, a)["has_password"] is warm(client, b)["has_password"] is True


def test_a_rolled_back_write_forgets_nothing(client, ctx):
    token, user = sign_up(client)
    warm(client, token)
    with pytest.raises(RuntimeError), ctx.db.session() as s:
        s.get_one(User, user["id"]).password_hash = "不会保存"
        s.flush()
        raise RuntimeError("abandoned")
    with statements(ctx) as seen:
        assert warm(client, token)["has_password"] is False
    assert seen == []


def test_cancelling_the_account_ends_the_cached_session(client, ctx, monkeypatch):
    monkeypatch.setattr(ctx.settings, "cancellation_cooling_off_days", 0)
    token, _ = sign_up(client)
    warm(client, token)
    r = client.post("/api/v1/me/account-cancellation", headers=auth(token))
    assert r.status_code == 202, r.text
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 401


def test_an_expired_session_is_refused_even_from_memory(client, ctx, monkeypatch):
    # The lifetime alone, not the idle timeout (accounts/test_idle_timeout.py), ends it here.
    monkeypatch.setattr(ctx.settings, "session_idle_minutes", 2 * ctx.settings.session_ttl_days * 24 * 60)
    token, _ = sign_up(client)
    warm(client, token)
    clock.advance(timedelta(days=ctx.settings.session_ttl_days, seconds=1))
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 401


def test_with_a_zero_ttl_every_read_goes_to_the_database(client, ctx):
    ctx.identities.ttl = 0
    token, _ = sign_up(client)
    warm(client, token)
    with statements(ctx) as seen:
        warm(client, token)
    assert seen, "no cache: the identity and /me are read again"


# --- the cache on its own ----------------------------------------------------------------------------


_TOMORROW = datetime.now(UTC) + timedelta(days=1)


def _identity(user_id: str = "u1", version: int = 1) -> Identity:
    return Identity(
        user_id=user_id,
        session_id="s-" + user_id,
        session_expires_at=_TOMORROW,
        policy_version=version,
        policy_agreed=True,
        restricted=False,
        granted=frozenset(),
    )


def test_a_load_that_raced_a_commit_is_not_kept():
    cache = IdentityCache(60)
    start = cache.mark()
    cache.subjects_changed(frozenset({"u1"}))  # a commit lands while the load reads
    cache.put("t1", _identity("u1"), start)
    cache.put_view("u1", "me", 1, b"{}", start)
    assert cache.get("t1", 1) is None and cache.view("u1", "me", 1) is None
    # Another user's commit does not spoil this one's load.
    start = cache.mark()
    cache.subjects_changed(frozenset({"u2"}))
    cache.put("t1", _identity("u1"), start)
    assert cache.get("t1", 1) == _identity("u1")
    # Everyone forgotten: every load that started before is refused.
    start = cache.mark()
    cache.subjects_changed(frozenset({changes.ALL}))
    cache.put("t2", _identity("u3"), start)
    assert cache.get("t2", 1) is None


def test_entries_expire_and_the_oldest_make_room(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache = IdentityCache(10, max_entries=2)
    for i in range(3):
        cache.put(f"t{i}", _identity(f"u{i}"), cache.mark())
    assert cache.get("t0", 1) is None and len(cache) == 2
    assert cache.get("t2", 1) is not None
    assert cache.get("t2", 2) is None, "checked against another policy version: not an answer"
    now[0] += 11
    assert cache.get("t2", 1) is None


# --- across processes -----------------------------------------------------------------------------


@pytest.fixture
def relayed(settings: Settings) -> Iterator[tuple[TestClient, object, Settings]]:
    """A server whose cache would keep entries for five minutes, listening to the Redis relay."""
    if not _redis_available(REDIS_URL):
        missing_service("Redis is not reachable at " + REDIS_URL)
    relay_settings = settings.model_copy(update={"redis_url": REDIS_URL, "identity_cache_seconds": 300})
    context = build_context(relay_settings, immediate_jobs=True)
    _empty(context)
    with TestClient(create_app(ctx=context), base_url="http://testserver") as c:
        yield c, context, relay_settings
    changes.install_relay(None)
    context.db.dispose()


def _eventually(check, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _cli(relay_settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """A staff command in a process of its own, against the same database and Redis."""
    env = {
        **os.environ,
        "HRK_DATA_DIR": str(relay_settings.data_dir),
        "HRK_DATABASE_URL": relay_settings.resolved_database_url,
        "HRK_REDIS_URL": REDIS_URL,
        "HRK_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-m", "huirongke.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done


def test_a_staff_command_in_another_process_is_seen_through_the_relay(relayed):
    client, _, relay_settings = relayed
    token, user = sign_up(client)
    grant(client, token, "real_name")
    submit_real_name(client, token)
    assert warm(client, token)["real_name"]["status"] == "pending"
    _cli(relay_settings, "realname", "verify", user["id"])
    status = _eventually(lambda: warm(client, token)["real_name"]["status"] == "verified")
    assert status, "the other process's commit reached this server's cache well before its TTL"


def test_a_policy_published_from_another_process_gates_at_once(relayed, tmp_path):
    """The current version is cached for 30 s per process; the relay makes a publication immediate."""
    client, _, relay_settings = relayed
    token, _ = sign_up(client)
    warm(client, token)
    text = tmp_path / "policy.md"
    text.write_text("# 汇容客隐私政策（第二版）\n\n新增了说明。", encoding="utf-8")
    _cli(relay_settings, "privacy", "publish-policy", str(text), "--changes", "新增说明")
    gated = _eventually(lambda: client.get("/api/v1/me", headers=auth(token)).status_code == 428)
    assert gated, "the new version reached this server well before the policy cache's 30 s"


def test_every_table_linked_to_a_user_names_it_in_an_attribute():
    """`privacy.changes` reads the user id off flushed rows by the data map's link column."""
    from huirongke.kit.db import Base

    linked = changes._links()
    assert {"users", "auth_sessions", "consent_events", "policy_agreements", "data_keys"} <= set(linked)
    for mapper in Base.registry.mappers:
        table = mapper.local_table.name  # type: ignore[attr-defined]
        for column in linked.get(table, ()):
            assert column in mapper.attrs, (table, column)


def test_the_cache_depends_only_on_the_tables_it_reads():
    """Writes elsewhere (media, permission events, and later posts or messages) never drop it."""
    assert set(changes.watched_tables()) >= set(identity.DEPENDS_ON)
    assert {"media", "permission_events", "devices", "data_exports"}.isdisjoint(changes.watched_tables())


def test_a_publication_no_announcement_reaches_is_picked_up_in_the_background(client, ctx, monkeypatch):
    """Another process without Redis (the CLI beside `make serve`) writes the new version: requests keep
    the known version without waiting, while one background refresh finds the new one."""
    from sqlalchemy import insert

    from huirongke.kit.clock import utcnow
    from huirongke.privacy import policy as policy_module
    from huirongke.privacy.models import PolicyVersion

    token, _ = sign_up(client)
    warm(client, token)
    old = ctx.policy.cached_version()
    with ctx.db.engine.begin() as conn:  # a raw connection: no session, so no announcement
        conn = conn.execution_options(**{changes.UNTRACKED_OK: True})  # as another process would
        conn.execute(
            insert(PolicyVersion).values(
                version=old + 1, text="# 新版", changes="新增", published_at=utcnow()
            )
        )
    assert ctx.policy.cached_version() == old
    assert warm(client, token), "still answered from memory"
    real = time.monotonic
    monkeypatch.setattr(policy_module.time, "monotonic", lambda: real() + policy_module._FRESH_SECONDS)
    assert ctx.policy.cached_version() == old, "a stale version is served while it is refreshed"
    assert _eventually(lambda: ctx.policy.cached_version() == old + 1)
    assert_error(client.get("/api/v1/me", headers=auth(token)), 428, "policy_update_required")


def test_consent_states_are_read_by_the_first_gated_request_only(client, ctx):
    """`/me` never needs them; a consent-gated route reads them once per cached identity."""
    token, _ = sign_up(client)
    with statements(ctx) as seen:
        warm(client, token)
    assert not any("consent_events" in q for q in seen), "the identity load leaves consent states alone"
    body = {"name": "张三丰", "id_number": "11010519491231002X"}
    with statements(ctx) as first:
        assert_error(
            client.post("/api/v1/me/real-name", json=body, headers=auth(token)), 428, "consent_required"
        )
    with statements(ctx) as second:
        assert_error(
            client.post("/api/v1/me/real-name", json=body, headers=auth(token)), 428, "consent_required"
        )
    assert any("consent_events" in q for q in first)
    assert not any("consent_events" in q for q in second)
    grant(client, token, "real_name")  # a new consent event drops the states with the identity
    assert client.post("/api/v1/me/real-name", json=body, headers=auth(token)).status_code == 201
