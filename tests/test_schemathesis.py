"""Property-based checks of our own OpenAPI: no generated input, signed in or not, makes the API
answer 5xx (schemathesis' `not_a_server_error`).

schemathesis' pytest plugin (`from_fixture` / `parametrize`) does not work with pytest 9, so each
operation is a plain parametrized test that draws cases from schemathesis' strategy with Hypothesis.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from conftest import auth, sign_up
from huirongke.app import create_app
from huirongke.config import Settings
from huirongke.kit.clock import clock

PHONE = "13700137000"
PASSWORD = "schema-test-1"
MAX_EXAMPLES = 30
METHODS = {"get", "put", "post", "delete", "patch"}

SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, read from an app built on a throwaway data folder."""
    tmp = Path(tempfile.mkdtemp(prefix="hrk-openapi-"))
    try:
        app = create_app(Settings(env="dev", data_dir=tmp, database_url=f"sqlite:///{tmp / 'x.db'}",
                                  log_level="WARNING"))
        spec = app.openapi()
        app.state.ctx.db.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted((m.upper(), p) for p, item in spec["paths"].items() for m in item if m in METHODS)


OPERATIONS = _operations()


@pytest.fixture
def settings(settings):
    # Generated requests hammer the sign-in endpoints; the limits have their own tests.
    settings.sms_ip_hourly_limit = 1_000_000
    settings.signin_ip_hourly_limit = 1_000_000
    return settings


@pytest.fixture
def api_schema(client):
    # `client` has run the app's lifespan (the policy is seeded); schemathesis calls the same ASGI app.
    return schemathesis.openapi.from_asgi("/api/openapi.json", client.app)


class Account:
    """A signed-up user whose token is renewed (by password) whenever a generated call revoked it."""

    def __init__(self, client) -> None:
        self.client = client
        token, self.user = sign_up(client, PHONE)
        r = client.put("/api/v1/me/password", json={"password": PASSWORD}, headers=auth(token))
        assert r.status_code == 204, r.text
        self.token = token
        self.stale = False

    def headers(self) -> dict[str, str]:
        return auth(self.token)

    def renew_if_needed(self) -> None:
        if not self.stale:
            return
        self.stale = False
        r = self.client.post("/api/v1/auth/sessions", json={"phone": PHONE, "password": PASSWORD})
        if r.status_code != 201:  # e.g. a generated call cancelled the account: start afresh
            clock.advance(timedelta(days=1))
            self.token, self.user = sign_up(self.client, PHONE)
            return
        self.token = r.json()["token"]
        if r.json()["policy_update_required"]:
            version = self.client.get("/api/v1/privacy/policy").json()["version"]
            self.client.post("/api/v1/privacy/policy-agreements", json={"version": version}, headers=self.headers())


def strategy(api_schema, method: str, path: str) -> st.SearchStrategy[Any]:
    operation = api_schema[path][method]
    modes = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    try:
        modes.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    except Exception:  # nothing to make invalid (no parameters, no body)
        pass
    return st.one_of(modes)


def test_every_operation_is_covered(api_schema):
    live = sorted(
        (m.upper(), p) for p, item in api_schema.raw_schema["paths"].items() for m in item if m in METHODS
    )
    assert live == OPERATIONS
    assert len(OPERATIONS) >= 15


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_error_unauthenticated(api_schema, method, path):
    @given(case=strategy(api_schema, method, path))
    @SETTINGS
    def run(case: Any) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_error_signed_in(api_schema, client, method, path):
    account = Account(client)

    @given(case=strategy(api_schema, method, path))
    @SETTINGS
    def run(case: Any) -> None:
        account.renew_if_needed()
        response = case.call_and_validate(headers={**(case.headers or {}), **account.headers()},
                                          checks=[not_a_server_error])
        # a generated call may sign out, revoke every session or cancel the account
        account.stale = response.status_code in (401, 403) or (
            method == "DELETE" and "session" in path and response.status_code == 204
        )

    run()
