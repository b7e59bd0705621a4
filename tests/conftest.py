"""Shared fixtures. The suite runs on SQLite by default and on PostgreSQL + Redis with
`--db=postgres` (what .ci/run does as its second pass). Services that are missing make their tests
skip with a visible reason, unless HRK_REQUIRE_SERVICES=1 (set by .ci/run) turns that into a failure.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text

from huirongke.app import create_app
from huirongke.config import Settings
from huirongke.context import AppContext, build_context
from huirongke.kit.clock import clock
from huirongke.migrate import upgrade
from huirongke.models import Base
from huirongke.privacy import changes
from openapi_check import OpenAPIClient

PG_ADMIN_URL = os.environ.get("HRK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# One Redis database per xdist worker, so parallel workers never empty each other's keys.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", … or None
_REDIS_DB = 15 if _WORKER is None else 14 - int(_WORKER.removeprefix("gw"))
REDIS_URL = os.environ.get("HRK_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{_REDIS_DB}")
REQUIRE_SERVICES = os.environ.get("HRK_REQUIRE_SERVICES") == "1"

# No timing in tests: Hypothesis' per-example deadline (200 ms) failed a property at 420 ms on a busy
# machine. Every Hypothesis test runs without one.
hypothesis_settings.register_profile("huirongke", deadline=None)
hypothesis_settings.load_profile("huirongke")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=["sqlite", "postgres"], default="sqlite", help="database backend")


def missing_service(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def _pg_available(url: str) -> bool:
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def _redis_available(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--db"))


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated database per test session; tests empty it between them."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        upgrade(url)
        yield url
        return
    if not _pg_available(PG_ADMIN_URL):
        missing_service("PostgreSQL is not reachable at " + PG_ADMIN_URL)
    name = f"hrk_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url(backend: str) -> str | None:
    if backend != "postgres":
        return None
    if not _redis_available(REDIS_URL):
        missing_service("Redis is not reachable at " + REDIS_URL)
    return REDIS_URL


def _empty(ctx: AppContext) -> None:
    with ctx.db.engine.begin() as conn:
        conn = conn.execution_options(**{changes.UNTRACKED_OK: True})  # every cache is new per test
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    if ctx.redis is not None:
        for key in ctx.redis.scan_iter("hrk:*"):
            ctx.redis.delete(key)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str | None) -> Settings:
    return Settings(
        env="dev",
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        log_level="WARNING",
    )


@pytest.fixture
def ctx(settings: Settings) -> Iterator[AppContext]:
    context = build_context(settings, immediate_jobs=True)
    _empty(context)
    clock.reset()
    yield context
    clock.reset()
    context.db.dispose()


@pytest.fixture
def client(ctx: AppContext) -> Iterator[OpenAPIClient]:
    """The app, with each response to an /api/ path checked against its OpenAPI (tests/openapi_check.py)."""
    with OpenAPIClient(create_app(ctx=ctx), base_url="http://testserver") as c:
        yield c


# ---------------------------------------------------------------------------------------------
# Real actions, shared by the tests (Zulip style: tests drive the product the way users do).

_CODE = re.compile(r"(\d{6})")


def latest_code(client: TestClient, phone: str) -> str:
    r = client.get("/api/v1/dev/sms-outbox", params={"phone": phone})
    assert r.status_code == 200, r.text
    match = _CODE.search(r.json()["messages"][0]["text"])
    assert match
    return match.group(1)


def sign_up(client: TestClient, phone: str = "13800138000", **device: Any) -> tuple[str, dict[str, Any]]:
    """Register (or sign in) through the public API; return (token, user)."""
    r = request_code_solving(client, phone)  # a challenge after a few codes a day (docs/abuse.md)
    assert r.status_code == 202, r.text
    version = client.get("/api/v1/privacy/policy").json()["version"]
    body: dict[str, Any] = {
        "phone": phone,
        "code": latest_code(client, phone),
        "accept_policy_version": version,
        "age": {"adult": True},  # the age gate (P42): ignored when the number is already registered
    }
    if device:
        body["device"] = device
    r = client.post("/api/v1/auth/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()["token"], r.json()["user"]


def request_code_solving(client: TestClient, phone: str, **body: Any) -> Any:
    """Request a sign-in code as the web client does: solve the challenge a 429 `challenge_required`
    asks for (kit/challenge.py) and send the request again."""
    from huirongke.kit.challenge import solve

    r = client.post("/api/v1/auth/sms-codes", json={"phone": phone, **body})
    if r.status_code == 429 and r.json()["error"]["code"] == "challenge_required":
        challenge = r.json()["error"]["details"]["challenge"]
        answer = {"id": challenge["id"], "solution": solve(challenge)}
        r = client.post("/api/v1/auth/sms-codes", json={"phone": phone, "challenge": answer, **body})
    return r


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
