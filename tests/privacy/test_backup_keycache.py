"""The data-key cache forgets an erased subject's key in every process at once (issue 7 part 5).

Unwrapped data keys are kept 60 s per process; an erasure shreds the key, and the change announcement
of that commit (the same one the identity cache hears) drops it from every context in this process
and, through the Redis relay, in every other process on the same database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from conftest import REDIS_URL, _empty, _redis_available, auth, missing_service, sign_up
from huirongke.app import create_app
from huirongke.config import Settings
from huirongke.context import AppContext, build_context
from huirongke.kit.clock import utcnow
from huirongke.privacy import changes
from huirongke.privacy.keys import SubjectKeyNotFound
from huirongke.privacy.models import AccountCancellation


def warm_key(ctx: AppContext, user_id: str) -> None:
    with ctx.db.session(write=False) as s:
        ctx.keys.cipher(s, user_id)
    assert ctx.keys.holds(user_id)


def assert_no_key(ctx: AppContext, user_id: str) -> None:
    with ctx.db.session(write=False) as s, pytest.raises(SubjectKeyNotFound):
        ctx.keys.cipher(s, user_id)


@pytest.fixture
def other(settings: Settings) -> Iterator[AppContext]:
    """A second context on the same database: another process's caches, in this process."""
    context = build_context(settings.model_copy(update={"redis_url": None}), immediate_jobs=True)
    yield context
    context.db.dispose()


def test_an_erasure_in_one_context_drops_the_key_in_another(client, ctx, other, monkeypatch):
    monkeypatch.setattr(ctx.settings, "cancellation_cooling_off_days", 0)
    token, user = sign_up(client)
    warm_key(other, user["id"])
    r = client.post("/api/v1/me/account-cancellation", headers=auth(token))
    assert r.status_code == 202, r.text
    assert not other.keys.holds(user["id"])
    assert_no_key(other, user["id"])


def test_a_key_read_while_its_subject_changed_is_not_kept(client, ctx):
    """A read that began before a commit touching the subject (a shred) may hold the old key."""
    _, user = sign_up(client)
    ctx.keys.subjects_changed(frozenset({changes.ALL}))

    def commit_lands(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "data_keys" in statement:
            changes.announce_local([changes.mark_of("data_keys", user["id"])])

    event.listen(ctx.db.engine, "before_cursor_execute", commit_lands)
    try:
        with ctx.db.session(write=False) as s:
            ctx.keys.cipher(s, user["id"])
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", commit_lands)
    assert not ctx.keys.holds(user["id"])
    warm_key(ctx, user["id"])  # a read with nothing landing meanwhile is kept


def test_everyone_changed_drops_every_key(client, ctx):
    _, a = sign_up(client, "13800138000")
    _, b = sign_up(client, "13900139000")
    warm_key(ctx, a["id"])
    warm_key(ctx, b["id"])
    ctx.keys.subjects_changed(frozenset({changes.ALL}))
    assert len(ctx.keys) == 0


# --- across processes -----------------------------------------------------------------------------


@pytest.fixture
def relayed(settings: Settings) -> Iterator[tuple[TestClient, AppContext, Settings]]:
    """A server whose key cache would keep keys for 60 s, listening to the Redis relay."""
    if not _redis_available(REDIS_URL):
        missing_service("Redis is not reachable at " + REDIS_URL)
    relay_settings = settings.model_copy(update={"redis_url": REDIS_URL})
    context = build_context(relay_settings, immediate_jobs=True)
    _empty(context)
    with TestClient(create_app(ctx=context), base_url="http://testserver") as c:
        yield c, context, relay_settings
    changes.install_relay(None)
    context.db.dispose()


def _eventually(check: Any, seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_an_erasure_in_another_process_drops_the_key_through_the_relay(relayed):
    client, ctx, relay_settings = relayed
    token, user = sign_up(client)
    r = client.post("/api/v1/me/account-cancellation", headers=auth(token))  # 7 days of cooling-off
    assert r.status_code == 202, r.text
    with ctx.db.session() as s:  # the cooling-off is over
        s.execute(
            update(AccountCancellation)
            .where(AccountCancellation.user_id == user["id"])
            .values(erase_after=utcnow()),
            execution_options=changes.of(user["id"]),
        )
    warm_key(ctx, user["id"])
    env = {
        **os.environ,
        "HRK_DATA_DIR": str(relay_settings.data_dir),
        "HRK_DATABASE_URL": relay_settings.resolved_database_url,
        "HRK_REDIS_URL": REDIS_URL,
        "HRK_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-m", "huirongke.cli", "privacy", "erase-due"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "已执行 1 个注销" in done.stdout
    dropped = _eventually(lambda: not ctx.keys.holds(user["id"]))
    assert dropped, "the other process's erasure reached this server's key cache well before its 60 s"
    assert_no_key(ctx, user["id"])
