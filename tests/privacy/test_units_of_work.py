"""Each route declares the unit of work it gets: read, write, or a read with audited events written
after it. Before this the kind was inferred from the HTTP method, so the export download (a GET)
wrote its audit row inside a read transaction: on SQLite that read turned into a writer midway and
failed with "database is locked" whenever another write had committed since it began."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

import anyio.to_thread
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import event, func, select, update

from conftest import auth, sign_up
from huirongke.accounts.deps import UNIT_OF_WORK, UnitRoute, get_session
from huirongke.accounts.models import User
from huirongke.kit.db import ReadOnlyUnit
from huirongke.privacy import audit, changes, export
from huirongke.privacy.models import AuditEvent, PermissionEvent
from privacy.privacy_support import assert_error


def _routes(routes):
    for r in routes:
        if hasattr(r, "original_router"):
            yield from _routes(r.original_router.routes)
        else:
            yield r


def _uses_session(dependant) -> bool:
    return any(d.call is get_session or _uses_session(d) for d in dependant.dependencies)


def test_every_route_with_a_session_declares_its_unit(client):
    routes = [r for r in _routes(client.app.routes) if isinstance(r, APIRoute) and _uses_session(r.dependant)]
    assert len(routes) > 30
    undeclared = [r.path for r in routes if (r.openapi_extra or {}).get(UNIT_OF_WORK) is None]
    assert undeclared == []
    # and every router gives its `def` handlers their unit in one thread-pool hop
    assert [r.path for r in routes if not isinstance(r, UnitRoute)] == []
    kinds = {(sorted(r.methods)[0], r.path): r.openapi_extra[UNIT_OF_WORK] for r in routes}
    assert kinds[("GET", "/api/v1/me/data-exports/{export_id}/download")] == "audited_read"
    assert kinds[("GET", "/api/v1/me/sessions")] == "read"
    assert kinds[("DELETE", "/api/v1/me/sessions")] == "write"
    # and the OpenAPI description says so
    op = client.app.openapi()["paths"]["/api/v1/me/data-exports/{export_id}/download"]["get"]
    assert op[UNIT_OF_WORK] == "audited_read"


def test_a_read_unit_refuses_writes(ctx, client):
    _token, user = sign_up(client)
    with pytest.raises(ReadOnlyUnit), ctx.db.session(write=False) as s:
        s.get(User, user["id"]).show_phone = True  # type: ignore[union-attr]
    with pytest.raises(ReadOnlyUnit), ctx.db.session(write=False) as s:
        audit.user_action(s, user["id"], "test.read_that_audits")


def test_a_download_records_its_audit_event_after_the_read_even_with_a_write_in_between(
    client, ctx, monkeypatch
):
    token, user = sign_up(client)
    r = client.post("/api/v1/me/data-exports", headers=auth(token))
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    real_open = export.open_archive

    def open_while_another_request_writes(*args, **kwargs):
        data = real_open(*args, **kwargs)
        # another request commits while the download's read transaction is open
        with ctx.db.session() as other:
            other.add(PermissionEvent(user_id=user["id"], permission="camera", event="granted", at=_now()))
        return data

    monkeypatch.setattr(export, "open_archive", open_while_another_request_writes)
    r = client.get(f"/api/v1/me/data-exports/{export_id}/download", headers=auth(token))
    assert r.status_code == 200, r.text
    with ctx.db.session(write=False) as s:
        downloaded = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "export.downloaded")
        )
    assert downloaded == 1


class _Hops:
    """Counts the thread-pool hops a request makes, and the threads its SQL statements run in."""

    def __init__(self, ctx, monkeypatch) -> None:
        self.hops: list[str] = []
        self.threads: set[int] = set()
        real = anyio.to_thread.run_sync

        async def counting(func, *args, **kwargs):
            called = func
            while isinstance(called, functools.partial):  # run_in_threadpool passes a partial
                called = called.func
            self.hops.append(getattr(called, "__name__", repr(called)))
            return await real(func, *args, **kwargs)

        monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
        self._engine = ctx.db.engine
        event.listen(self._engine, "before_cursor_execute", self._statement)

    def _statement(self, *_args) -> None:
        self.threads.add(threading.get_ident())

    def reset(self) -> None:
        self.hops.clear()
        self.threads.clear()

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._statement)


@pytest.fixture
def hops(ctx, monkeypatch) -> Iterator[_Hops]:
    counter = _Hops(ctx, monkeypatch)
    yield counter
    counter.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/v1/privacy/permissions/location/events", {"event": "granted"}, 201),  # WRITE
        ("GET", "/api/v1/me/sessions", None, 200),  # READ with the principal's user row
        ("DELETE", "/api/v1/me/sessions/nonexistent", None, 404),  # WRITE that fails and rolls back
        ("POST", "/api/v1/me/data-exports", None, 202),  # WRITE behind the step-up gate
    ],
)
def test_a_request_does_its_database_work_in_one_thread_pool_hop(client, hops, method, path, body, status):
    """The principal's user row, the handler, the response model and the commit run in one worker
    thread. Each hop waits behind every ready request on the event loop: with four or five per write
    (open, principal, handler, validation, commit) a write took 130-300 ms under a read load, and on
    SQLite held the single writer across them."""
    token, _user = sign_up(client)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200  # the identity is cached
    hops.reset()
    r = client.request(method, path, json=body, headers=auth(token))
    assert r.status_code == status, r.text
    assert hops.hops == ["_run_in_unit"]
    assert len(hops.threads) == 1


def test_the_principal_row_is_checked_in_the_handlers_hop_before_the_handler(client, ctx):
    """The user row is read lazily, in the handler's thread, but still before the handler runs: a user
    deactivated behind the identity cache's back gets 401 and the write is not made."""
    token, user = sign_up(client)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200  # the identity is cached
    with ctx.db.engine.begin() as conn:  # behind the cache's back: the identity stays cached
        conn.execute(
            update(User).where(User.id == user["id"]).values(status="suspended"),
            execution_options={changes.UNTRACKED_OK: True},
        )
    r = client.post(
        "/api/v1/privacy/permissions/location/events", json={"event": "granted"}, headers=auth(token)
    )
    assert_error(r, 401, "token_expired")
    with ctx.db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(PermissionEvent)) == 0


def test_a_suspended_user_is_401_before_any_step_up_question(client, ctx):
    """The step-up gate reads the session row after the principal's own check, in the same hop: an
    account suspended behind the cache's back is 401, not asked to verify, and nothing is written."""
    token, user = sign_up(client)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    with ctx.db.engine.begin() as conn:
        conn.execute(
            update(User).where(User.id == user["id"]).values(status="suspended"),
            execution_options={changes.UNTRACKED_OK: True},
        )
    assert_error(client.post("/api/v1/me/data-exports", headers=auth(token)), 401, "token_expired")


def _now():
    from huirongke.kit.clock import utcnow

    return utcnow()
