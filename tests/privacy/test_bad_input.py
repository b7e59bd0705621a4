"""Bad input on every privacy endpoint (API.md): malformed JSON, wrong types, odd paths, other users'
ids and odd tokens give a clear 4xx in the standard error shape, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from privacy_support import OTHER_PHONE, assert_error, export_and_download

from conftest import auth, sign_up

#: (method, path, needs_token) of every privacy endpoint that reads a JSON body.
JSON_ENDPOINTS = [
    ("PUT", "/api/v1/privacy/consents/real_name", True),
    ("POST", "/api/v1/privacy/policy-agreements", True),
    ("POST", "/api/v1/privacy/permissions/camera/events", True),
    ("POST", "/api/v1/me/cases", True),
    ("POST", "/api/v1/me/cases/{case}/verification", True),
    ("POST", "/api/v1/me/guardian/sms-codes", True),
    ("POST", "/api/v1/me/guardian/consent", True),
    ("POST", "/api/v1/guardian/sms-codes", False),
    ("POST", "/api/v1/guardian/requests", False),
]
IDS = [f"{m} {p}" for m, p, _ in JSON_ENDPOINTS]


@pytest.fixture
def user(client) -> dict[str, Any]:
    token, me = sign_up(client)
    r = client.post(
        "/api/v1/me/cases", json={"kind": "contact", "description": "测试一下联系渠道"}, headers=auth(token)
    )
    assert r.status_code == 201
    return {"token": token, "me": me, "case": r.json()["id"]}


def call(client, user, method, path, needs_token, **kw):
    headers = {**kw.pop("headers", {}), **(auth(user["token"]) if needs_token else {})}
    return client.request(method, path.format(case=user["case"]), headers=headers, **kw)


@pytest.mark.parametrize(("method", "path", "needs_token"), JSON_ENDPOINTS, ids=IDS)
@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"a": 1', b"\xff\xfe", b"null", b"[1,2", b"{}}"])
def test_malformed_json_is_400_or_422(client, user, method, path, needs_token, raw):
    r = call(
        client, user, method, path, needs_token, content=raw, headers={"Content-Type": "application/json"}
    )
    if raw in (b"", b"null"):  # JSON (or no body), but not the object the endpoint reads
        assert_error(r, 422, "validation_error")
    else:  # not JSON at all
        assert_error(r, 400, "malformed_json")


@pytest.mark.parametrize(("method", "path", "needs_token"), JSON_ENDPOINTS, ids=IDS)
def test_wrong_content_type_is_422(client, user, method, path, needs_token):
    r = call(
        client,
        user,
        method,
        path,
        needs_token,
        content=b"granted=true",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(r, 422, "validation_error")


WRONG_TYPES = [None, 1, 1.5, "x", [], [1], {"a": {"b": [None]}}, True]


@pytest.mark.parametrize(("method", "path", "needs_token"), JSON_ENDPOINTS, ids=IDS)
@pytest.mark.parametrize("value", WRONG_TYPES, ids=[json.dumps(v) for v in WRONG_TYPES])
def test_wrong_types_are_422(client, user, method, path, needs_token, value):
    r = call(client, user, method, path, needs_token, json=value)
    assert_error(r, 422)


FIELDS = {
    "granted": st.booleans(),
    "version": st.integers(-5, 5),
    "event": st.sampled_from(["granted", "denied", "revoked", "GRANTED", ""]),
    "kind": st.sampled_from(["deletion", "correction", "complaint", "contact", "export", "x"]),
    "description": st.text(max_size=30),
    "ground": st.sampled_from(["unlawful_processing", "no_consent", "", "x"]),
    "code": st.text(alphabet="0123456789a ", max_size=10),
    "guardian_phone": st.sampled_from(["13700137000", "13800138000", "+86 137 0013 7000", "123", ""]),
}
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={k: st.one_of(v, json_values) for k, v in FIELDS.items()}),
)


@pytest.mark.parametrize(("method", "path", "needs_token"), JSON_ENDPOINTS, ids=IDS)
@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_fuzzed_bodies_never_500(client, user, method, path, needs_token, body):
    r = call(client, user, method, path, needs_token, json=body)
    # Generated bodies have no single answer: each must be documented (the client checks status and
    # body against the OpenAPI, tests/openapi_check.py) and never a 5xx.
    assert r.status_code < 500, (body, r.text)
    if r.status_code >= 400:
        assert_error(r, r.status_code)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + "a" * 5000},
        {"Authorization": "Bearer 汉字".encode()},
        {"Authorization": "bearer nonsense"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/privacy/consents"),
        ("GET", "/api/v1/privacy/policy-agreements"),
        ("POST", "/api/v1/me/data-exports"),
        ("POST", "/api/v1/me/account-cancellation"),
        ("GET", "/api/v1/me/cases"),
        ("GET", "/api/v1/me/guardian"),
        ("GET", "/api/v1/privacy/permissions/camera"),
    ],
)
def test_bad_tokens_are_401(client, headers, method, path):
    r = client.request(method, path, headers=headers)
    assert_error(r, 401)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/me/data-exports/{export}",
        "/api/v1/me/data-exports/{export}/download",
        "/api/v1/me/cases/{case}",
    ],
)
def test_other_users_ids_are_404(client, path):
    a, _ = sign_up(client)
    status, _ = export_and_download(client, a)
    r = client.post(
        "/api/v1/me/cases", json={"kind": "contact", "description": "测试一下联系渠道"}, headers=auth(a)
    )
    ids = {"export": status["id"], "case": r.json()["id"]}
    b, _ = sign_up(client, OTHER_PHONE)
    r = client.get(path.format(**ids), headers=auth(b))
    assert_error(r, 404)
    assert ids["export"] not in r.text and ids["case"] not in r.text


ID_PATHS = [
    ("GET", "/api/v1/me/data-exports/{}"),
    ("GET", "/api/v1/me/data-exports/{}/download"),
    ("GET", "/api/v1/me/cases/{}"),
    ("POST", "/api/v1/me/cases/{}/verification"),
    ("GET", "/api/v1/privacy/permissions/{}"),
    ("PUT", "/api/v1/privacy/consents/{}"),
    ("GET", "/api/v1/guardian/exports/{}"),
    ("GET", "/api/v1/guardian/exports/{}/download"),
]
NOT_FOUND_CODES = {
    "data-exports": "export_not_found",
    "cases": "case_not_found",
    "permissions": "permission_not_found",
    "consents": "purpose_not_found",
}
SEGMENTS = ["a" * 2000, "'; DROP TABLE users; --", "%00", "😀", "%F0%9F%98%80", "a b", "-1"]


@pytest.mark.parametrize(
    "segment", SEGMENTS, ids=["long", "sql", "nul", "emoji", "enc-emoji", "space", "minus"]
)
@pytest.mark.parametrize(("method", "path"), ID_PATHS, ids=[f"{m} {p}" for m, p in ID_PATHS])
def test_odd_ids_in_the_path_are_4xx(client, method, path, segment):
    """A NUL byte, say, must not reach PostgreSQL (which refuses it with an error, i.e. a 500)."""
    token, _ = sign_up(client)
    body = {"granted": True} if method == "PUT" else ({"code": "123456"} if method == "POST" else None)
    headers = {**auth(token), "X-Guardian-Token": "abc"}
    r = client.request(method, path.format(segment), headers=headers, json=body)
    if segment == "%00":  # the request middleware: no route has a NUL byte in its path
        assert_error(r, 404, "not_found")
    elif path.startswith("/api/v1/guardian/"):  # the guardian token is checked before the id
        assert_error(r, 401, "invalid_guardian_token")
    else:
        assert_error(r, 404, NOT_FOUND_CODES[path.split("/")[4]])


def test_methods_that_do_not_exist_are_405(client):
    token, _ = sign_up(client)
    r = client.delete("/api/v1/privacy/consents", headers=auth(token))
    assert_error(r, 405, "method_not_allowed")
    r = client.put("/api/v1/privacy/collection-list")
    assert_error(r, 405)
