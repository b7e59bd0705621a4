"""Hardening headers and the API docs (issue 8): `Cache-Control: no-store` on credentialed answers and
on all JSON under /api/, no `Server` banner, and API docs that are off in production unless enabled and
never load anything from a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from conftest import auth, sign_up
from huirongke.app import create_app
from huirongke.context import build_context
from huirongke.kit.headers import NoStoreMiddleware
from openapi_check import OpenAPIClient
from privacy.privacy_support import assert_error
from web.browser_support import running_server, server_env

PHONE = "13800138000"


def _no_store(r: Any) -> bool:
    return r.headers.get("cache-control") == "no-store"


# --- Cache-Control -------------------------------------------------------------------------------


def test_authenticated_answers_are_never_stored(client):
    token, _ = sign_up(client)
    h = auth(token)
    assert _no_store(client.get("/api/v1/me", headers=h))  # the cached /me bytes too
    assert _no_store(client.get("/api/v1/me", headers=h))
    assert _no_store(client.get("/api/v1/me/sessions", headers=h))
    assert _no_store(client.patch("/api/v1/me", json={"nickname": "林小满"}, headers=h))
    assert _no_store(client.post("/api/v1/me/data-exports", headers=h))
    r = client.get("/api/v1/users/nobody", headers=h)  # an error, under a credential
    assert_error(r, 404)
    assert _no_store(r)
    # A credential on a page or a static file: not kept either (the header may be a stale token).
    assert _no_store(client.get("/", headers=h))


def test_all_api_json_is_never_stored(client):
    assert _no_store(client.get("/api/v1/privacy/policy"))
    assert _no_store(client.get("/api/v1/privacy/collection-list"))
    r = client.post("/api/v1/auth/sms-codes", json={"phone": PHONE})
    assert r.status_code == 202 and _no_store(r)
    r = client.get("/api/v1/me")  # 401 without a token
    assert_error(r, 401)
    assert _no_store(r)


def test_anonymous_pages_and_static_files_keep_their_own_caching(client):
    # The shell and the fingerprinted files say how they are cached (web/assets.py); no credential.
    assert client.get("/").headers.get("cache-control") != "no-store"
    assert client.get("/healthz").headers.get("cache-control") is None


def _echo_app() -> Starlette:
    async def public(request: Any) -> JSONResponse:
        return JSONResponse({"ok": True}, headers={"Cache-Control": "public, max-age=600"})

    async def text(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"Cache-Control": "public, max-age=600"})

    routes = [Route("/api/public", public), Route("/api/text", text), Route("/page", text)]
    app = Starlette(routes=routes)
    app.add_middleware(NoStoreMiddleware)
    return app


def test_no_store_replaces_a_weaker_cache_control():
    with TestClient(_echo_app()) as c:
        r = c.get("/api/public")
        assert r.headers.get_list("cache-control") == ["no-store"]
        # Not JSON and no credential: left as the route said.
        assert c.get("/api/text").headers["cache-control"] == "public, max-age=600"
        assert c.get("/page").headers["cache-control"] == "public, max-age=600"
        # Any credential makes it no-store, whatever the path or the type.
        r = c.get("/page", headers={"Authorization": "Bearer x"})
        assert r.headers.get_list("cache-control") == ["no-store"]


# --- API docs ------------------------------------------------------------------------------------


@pytest.fixture
def app_for(settings: Any) -> Iterator[Any]:
    contexts: list[Any] = []

    def make(**changes: Any) -> OpenAPIClient:
        if changes.get("env") == "prod":
            changes.setdefault("sms_provider", "aliyun")  # prod refuses the console provider
        context = build_context(settings.model_copy(update=changes), immediate_jobs=True)
        contexts.append(context)
        return OpenAPIClient(create_app(ctx=context))

    yield make
    for context in contexts:
        context.db.dispose()


def test_prod_serves_no_api_docs(ctx, app_for):
    with app_for(env="prod") as c:
        for path in ("/api/docs", "/api/redoc", "/api/openapi.json", "/docs", "/openapi.json"):
            with c.unchecked("no such operation: the API's own 404"):
                assert c.get(path).status_code == 404, path
        assert c.app.openapi()["paths"]  # still built for the tests and tools in-process


def test_prod_serves_them_when_enabled(ctx, app_for):
    with app_for(env="prod", api_docs=True) as c:
        assert c.get("/api/openapi.json").status_code == 200
        assert c.get("/api/docs").status_code == 200


def test_dev_serves_a_local_docs_page_with_nothing_from_elsewhere(client):
    r = client.get("/api/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "/api/v1/me/step-up" in page and "/api/openapi.json" in page
    # No script, stylesheet or image from anywhere: the page is plain HTML from this process.
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert "cdn" not in page.lower() and "https://" not in page
    # And the browser is told so: the site's strict CSP, with no exception for the docs.
    csp = r.headers["content-security-policy"]
    assert "https:" not in csp and "unsafe-inline" not in csp
    assert client.get("/api/redoc").status_code == 404


def test_docs_are_off_only_in_prod_by_default(settings):
    assert settings.model_copy(update={"env": "dev"}).api_docs_enabled
    assert settings.model_copy(update={"env": "test"}).api_docs_enabled
    assert not settings.model_copy(update={"env": "prod"}).api_docs_enabled
    assert settings.model_copy(update={"env": "prod", "api_docs": True}).api_docs_enabled


# --- no Server banner ----------------------------------------------------------------------------


def test_the_served_app_has_no_server_banner(tmp_path):
    """`huirongke serve` as run in production: uvicorn adds no `Server: uvicorn` header."""
    with running_server(tmp_path, server_env(tmp_path / "data")) as server:
        for path in ("/healthz", "/api/v1/privacy/policy", "/nowhere"):
            r = httpx.get(server.base_url + path)
            assert "server" not in r.headers, (path, r.headers)
