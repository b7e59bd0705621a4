"""Each route declares the unit of work it gets: read, write, or a read with audited events written
after it. Before this the kind was inferred from the HTTP method, so the export download (a GET)
wrote its audit row inside a read transaction: on SQLite that read turned into a writer midway and
failed with "database is locked" whenever another write had committed since it began."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from conftest import auth, sign_up
from huirongke.accounts.deps import UNIT_OF_WORK, get_session
from huirongke.accounts.models import User
from huirongke.kit.db import ReadOnlyUnit
from huirongke.privacy import audit, export
from huirongke.privacy.models import AuditEvent, PermissionEvent


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


def _now():
    from huirongke.kit.clock import utcnow

    return utcnow()
