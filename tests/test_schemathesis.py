"""Property-based checks of our own OpenAPI: no generated input, signed in or not, makes the API
answer 5xx (schemathesis' `not_a_server_error`), and every answer is one the description documents:
its status, its content type and its body's schema (the `*_conformance` checks; the test client does
the same, more strictly, for the hand-written tests: tests/openapi_check.py).

schemathesis' pytest plugin (`from_fixture` / `parametrize`) does not work with pytest 9 (it needs
the removed `Function._nodeid`), so each test walks every operation of the live schema itself, as
one pytest subtest per operation, drawing positive and negative cases from schemathesis' strategies
with Hypothesis. One app (from the `ctx` fixture) serves all operations, which keeps the file fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import auth, sign_up
from huirongke.kit.clock import clock

PHONE = "13700137000"
PASSWORD = "schema-test-1"
MAX_EXAMPLES = 30
METHODS = {"get", "put", "post", "delete", "patch"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def settings(settings):
    # Generated requests hammer the sign-in endpoints; the limits have their own tests.
    settings.sms_ip_hourly_limit = 1_000_000
    settings.signin_ip_hourly_limit = 1_000_000
    return settings


@pytest.fixture
def api_schema(client, ctx):
    # `client` has run the app's lifespan (the policy is seeded); schemathesis calls the same ASGI app.
    assert client.app.state.ctx is ctx
    return schemathesis.openapi.from_asgi("/api/openapi.json", client.app)


def operations(api_schema) -> list[tuple[str, str]]:
    paths = api_schema.raw_schema["paths"]
    return sorted((m.upper(), p) for p, item in paths.items() for m in item if m in METHODS)


def strategy(api_schema, method: str, path: str) -> st.SearchStrategy[Any]:
    operation = api_schema[path][method]
    modes = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    with contextlib.suppress(Exception):  # nothing to make invalid (no parameters, no body)
        modes.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    return st.one_of(modes)


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
            self.client.post(
                "/api/v1/privacy/policy-agreements", json={"version": version}, headers=self.headers()
            )


def run_all(api_schema, subtests, make_check: Callable[[str, str], Callable[[Any], None]]) -> None:
    ops = operations(api_schema)
    assert len(ops) >= 15
    for method, path in ops:
        with subtests.test(msg=f"{method} {path}"):
            given(case=strategy(api_schema, method, path))(SETTINGS(make_check(method, path)))()


def test_no_server_error_unauthenticated(api_schema, subtests):
    def make_check(method: str, path: str) -> Callable[[Any], None]:
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        return check

    run_all(api_schema, subtests, make_check)


def test_no_server_error_signed_in(api_schema, client, subtests):
    account = Account(client)

    def make_check(method: str, path: str) -> Callable[[Any], None]:
        def check(case: Any) -> None:
            account.renew_if_needed()
            response = case.call_and_validate(
                headers={**(case.headers or {}), **account.headers()}, checks=CHECKS
            )
            # a generated call may sign out, revoke every session or cancel the account
            account.stale = response.status_code == 401 or (
                method == "DELETE" and "session" in path and response.status_code == 204
            )

        return check

    run_all(api_schema, subtests, make_check)
