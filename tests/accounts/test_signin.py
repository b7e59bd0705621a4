"""Sign-in (P04, P10): SMS codes, their limits and their life cycle, passwords, sessions, devices."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from conftest import _empty, auth, latest_code, request_code_solving, sign_up
from huirongke.accounts.models import AuthSession, Device, SmsCode
from huirongke.kit.clock import clock

PHONE = "13800138000"
E164 = "+8613800138000"
OTHER = "13900139000"


def policy_version(client) -> int:
    return client.get("/api/v1/privacy/policy").json()["version"]


def request_code(client, phone: str = PHONE):
    return client.post("/api/v1/auth/sms-codes", json={"phone": phone})


def fresh_code(client, phone: str = PHONE) -> str:
    """Request a new code, waiting out the resend interval first."""
    clock.advance(timedelta(seconds=61))
    r = request_code_solving(client, phone)  # from the fourth code of the day: a challenge
    assert r.status_code == 202, r.text
    return latest_code(client, phone)


def sign_in(client, phone: str = PHONE, code: str | None = None, **extra: Any):
    body: dict[str, Any] = {"phone": phone, **extra}
    if "accept_policy_version" in extra:  # a registration also needs the age gate (P42)
        body.setdefault("age", {"adult": True})
    if code is not None:
        body["code"] = code
    return client.post("/api/v1/auth/sessions", json=body)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def assert_error(r, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


# --- SMS code request ---------------------------------------------------------------------------


def test_code_request_answers_202_with_timings(client):
    r = request_code(client)
    assert r.status_code == 202
    assert r.json() == {"expires_in": 300, "resend_after": 60}
    messages = client.get("/api/v1/dev/sms-outbox", params={"phone": PHONE}).json()["messages"]
    assert len(messages) == 1
    assert messages[0]["phone"] == E164
    assert "【汇容客】" in messages[0]["text"]


@pytest.mark.parametrize("raw", ["13800138000", "+86 138 0013 8000", "+8613800138000"])
def test_every_accepted_phone_form_signs_up_in_e164(client, raw):
    token, user = sign_up(client, raw)
    assert user["phone"] == E164
    assert client.get("/api/v1/me", headers=auth(token)).json()["phone"] == E164


def test_all_phone_forms_reach_the_same_account(client):
    _, first = sign_up(client, "13800138000")
    ids = {first["id"]}
    for raw in ["+86 138 0013 8000", "+8613800138000"]:
        clock.advance(timedelta(seconds=61))
        _, user = sign_up(client, raw)
        ids.add(user["id"])
    assert ids == {first["id"]}


@pytest.mark.parametrize(
    "raw",
    [
        "01012345678",  # Beijing landline
        "+861012345678",  # landline in E.164
        "+14155552671",  # US number
        "+85261234567",  # Hong Kong mobile: not mainland
        "1380013800a",  # letters
        "abcdefghijk",
        "138001380001",  # too long
        "1380013800012345",
        "1380013800",  # too short
        "12345678901",  # no such mobile prefix
        "",
        "   ",
    ],
)
def test_invalid_phone_is_422_invalid_phone(client, raw):
    assert_error(request_code(client, raw), 422, "invalid_phone")
    assert_error(sign_in(client, raw, "123456"), 422, "invalid_phone")


def test_absurdly_long_phone_is_422(client):
    r = request_code(client, "1" * 200)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"  # longer than the field allows: never parsed
    # the submitted value is never echoed back
    assert "1" * 20 not in r.text


def test_resend_within_60_seconds_is_rate_limited(client):
    assert request_code(client).status_code == 202
    clock.advance(timedelta(seconds=30))
    r = request_code(client)
    err = assert_error(r, 429, "rate_limited")
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 31
    assert err["details"]["retry_after"] == retry
    # another form of the same number is the same number
    assert request_code(client, "+86 138 0013 8000").status_code == 429
    # another number is not affected
    assert request_code(client, OTHER).status_code == 202
    clock.advance(timedelta(seconds=31))
    assert request_code(client).status_code == 202


def test_ten_codes_a_day_per_number_and_address_then_429_until_a_day_has_passed(client):
    # From the fourth code on, this (number, address) pair must solve a challenge (docs/abuse.md).
    for _ in range(10):
        assert request_code_solving(client, PHONE).status_code == 202
        clock.advance(timedelta(seconds=61))
    r = request_code_solving(client, PHONE)
    assert_error(r, 429, "rate_limited")
    retry = int(r.headers["Retry-After"])
    assert 3600 < retry <= 86400
    clock.advance(timedelta(seconds=retry))
    assert request_code_solving(client, PHONE).status_code == 202


class TestIpLimit:
    @pytest.fixture
    def settings(self, settings):
        # Overrides the conftest fixture before `ctx` is built from it.
        settings.sms_ip_hourly_limit = 3
        return settings

    def test_per_ip_hourly_limit(self, client, ctx):
        assert ctx.settings.sms_ip_hourly_limit == 3
        for phone in ["13800138001", "13800138002", "13800138003"]:
            assert request_code(client, phone).status_code == 202
        r = request_code(client, "13800138004")
        assert_error(r, 429, "rate_limited")
        assert 1 <= int(r.headers["Retry-After"]) <= 3600
        # the limit counts the IP, whatever the number
        clock.advance(timedelta(seconds=61))
        assert request_code(client, "13800138001").status_code == 429


class TestSignInIpLimit:
    @pytest.fixture
    def settings(self, settings):
        settings.signin_ip_hourly_limit = 3
        return settings

    def test_sign_in_attempts_per_ip_are_limited(self, client):
        assert request_code(client).status_code == 202
        version = policy_version(client)
        for _ in range(3):
            r = sign_in(client, code="000000", accept_policy_version=version)
            assert r.status_code == 400
        r = sign_in(client, code="000000", accept_policy_version=version)
        assert_error(r, 429, "rate_limited")
        assert "Retry-After" in r.headers


# --- Sign-up consent and codes --------------------------------------------------------------------


def test_new_phone_without_policy_consent_is_428_and_keeps_the_code(client, ctx):
    assert request_code(client).status_code == 202
    code = latest_code(client, PHONE)
    err = assert_error(sign_in(client, code=code), 428, "policy_consent_required")
    version = policy_version(client)
    assert err["details"]["current_version"] == version
    # an outdated or made-up version is no consent either
    assert_error(
        sign_in(client, code=code, accept_policy_version=version + 7), 428, "policy_consent_required"
    )
    with ctx.db.session() as s:
        assert s.scalar(text("SELECT count(*) FROM users")) == 0
        row = s.scalars(select(SmsCode)).one()
        assert row.consumed_at is None and row.attempts == 0
    r = sign_in(client, code=code, accept_policy_version=version)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["policy_update_required"] is False
    assert body["user"]["phone"] == E164
    assert body["user"]["policy_version"] == version
    assert isinstance(body["token"], str) and len(body["token"]) >= 32


def test_wrong_code_counts_down_and_five_wrong_tries_void_the_code(client):
    assert request_code(client).status_code == 202
    code = latest_code(client, PHONE)
    version = policy_version(client)
    for left in [4, 3, 2, 1, 0]:
        err = assert_error(
            sign_in(client, code=wrong(code), accept_policy_version=version), 400, "invalid_code"
        )
        assert err["details"]["attempts_left"] == left
    assert_error(sign_in(client, code=code, accept_policy_version=version), 400, "invalid_code")
    # a new code works again
    code = fresh_code(client)
    assert sign_in(client, code=code, accept_policy_version=version).status_code == 201


def test_wrong_code_for_existing_user_also_counts(client):
    sign_up(client)
    code = fresh_code(client)
    for _ in range(5):
        assert_error(sign_in(client, code=wrong(code)), 400, "invalid_code")
    assert_error(sign_in(client, code=code), 400, "invalid_code")


def test_expired_code_fails(client):
    assert request_code(client).status_code == 202
    code = latest_code(client, PHONE)
    clock.advance(timedelta(seconds=301))
    assert_error(
        sign_in(client, code=code, accept_policy_version=policy_version(client)), 400, "invalid_code"
    )


def test_code_just_before_expiry_works(client):
    assert request_code(client).status_code == 202
    code = latest_code(client, PHONE)
    clock.advance(timedelta(seconds=295))
    assert sign_in(client, code=code, accept_policy_version=policy_version(client)).status_code == 201


def test_code_is_usable_once(client):
    assert request_code(client).status_code == 202
    code = latest_code(client, PHONE)
    version = policy_version(client)
    assert sign_in(client, code=code, accept_policy_version=version).status_code == 201
    assert_error(sign_in(client, code=code, accept_policy_version=version), 400, "invalid_code")
    assert_error(sign_in(client, code=code), 400, "invalid_code")


def test_a_new_code_voids_the_older_one(client):
    assert request_code(client).status_code == 202
    old = latest_code(client, PHONE)
    new = fresh_code(client)
    version = policy_version(client)
    if old != new:
        assert_error(sign_in(client, code=old, accept_policy_version=version), 400, "invalid_code")
    assert sign_in(client, code=new, accept_policy_version=version).status_code == 201


def test_code_of_one_phone_does_not_sign_in_another(client):
    assert request_code(client).status_code == 202
    code = latest_code(client, PHONE)
    assert_error(
        sign_in(client, OTHER, code, accept_policy_version=policy_version(client)), 400, "invalid_code"
    )


def test_no_credentials_is_rejected(client):
    r = sign_in(client, accept_policy_version=policy_version(client))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "credentials_required"


def test_codes_are_stored_hashed(client, ctx):
    codes = []
    for phone in [PHONE, OTHER]:
        assert request_code(client, phone).status_code == 202
        codes.append(latest_code(client, phone))
    with ctx.db.session() as s:
        rows = s.execute(text("SELECT * FROM sms_codes")).mappings().all()
    assert len(rows) == 2
    for row in rows:
        assert len(row["code_hash"]) == 64
        for code in codes:
            assert code not in row["code_hash"]
            assert row["code_hash"] != hashlib.sha256(code.encode()).hexdigest()  # keyed, not a bare hash
            for value in row.values():
                assert code not in str(value)
            for phone in [PHONE, E164]:
                assert all(phone not in str(v) for v in row.values())


# --- Passwords -----------------------------------------------------------------------------------


def test_password_sign_in(client):
    token, user = sign_up(client)
    assert user["has_password"] is False
    r = client.put("/api/v1/me/password", json={"password": "secret123"}, headers=auth(token))
    assert r.status_code == 204, r.text
    assert client.get("/api/v1/me", headers=auth(token)).json()["has_password"] is True
    for raw in ["13800138000", "+86 138 0013 8000"]:
        r = sign_in(client, raw, password="secret123")
        assert r.status_code == 201, r.text
        assert r.json()["user"]["id"] == user["id"]
        new_token = r.json()["token"]
        assert client.get("/api/v1/me", headers=auth(new_token)).status_code == 200
    sessions = client.get("/api/v1/me/sessions", headers=auth(token)).json()
    assert {s["method"] for s in sessions} == {"sms", "password"}


def test_wrong_password_and_unknown_phone_are_alike(client):
    token, _ = sign_up(client)
    assert (
        client.put("/api/v1/me/password", json={"password": "secret123"}, headers=auth(token)).status_code
        == 204
    )
    a = assert_error(sign_in(client, password="secret124"), 400, "invalid_credentials")
    b = assert_error(sign_in(client, OTHER, password="secret123"), 400, "invalid_credentials")
    assert a == b  # never reveal which numbers have accounts
    # an account without a password cannot be entered with one
    clock.advance(timedelta(seconds=61))
    sign_up(client, OTHER)
    assert_error(sign_in(client, OTHER, password="secret123"), 400, "invalid_credentials")


def test_password_rules_and_change(client):
    token, _ = sign_up(client)
    h = auth(token)
    assert client.put("/api/v1/me/password", json={"password": "short1"}, headers=h).status_code == 422
    assert_error(
        client.put("/api/v1/me/password", json={"password": "12345678"}, headers=h), 422, "weak_password"
    )
    assert_error(
        client.put("/api/v1/me/password", json={"password": "abcdefgh"}, headers=h), 422, "weak_password"
    )
    assert client.put("/api/v1/me/password", json={"password": "first1234"}, headers=h).status_code == 204
    # changing it needs the current one
    assert_error(
        client.put("/api/v1/me/password", json={"password": "second1234"}, headers=h),
        400,
        "current_password_required",
    )
    assert_error(
        client.put(
            "/api/v1/me/password", json={"password": "second1234", "current_password": "nope1234"}, headers=h
        ),
        400,
        "invalid_credentials",
    )
    r = client.put(
        "/api/v1/me/password", json={"password": "second1234", "current_password": "first1234"}, headers=h
    )
    assert r.status_code == 204
    assert sign_in(client, password="first1234").status_code == 400
    assert sign_in(client, password="second1234").status_code == 201


def test_password_is_stored_as_argon2_hash(client, ctx):
    token, _ = sign_up(client)
    assert (
        client.put("/api/v1/me/password", json={"password": "secret123"}, headers=auth(token)).status_code
        == 204
    )
    with ctx.db.session() as s:
        stored = s.scalar(text("SELECT password_hash FROM users"))
    assert stored.startswith("$argon2id$")
    assert "secret123" not in stored


# --- Sessions and devices ------------------------------------------------------------------------


def test_sign_out_revokes_the_token(client):
    token, _ = sign_up(client)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    r = client.delete("/api/v1/auth/sessions/current", headers=auth(token))
    assert r.status_code == 204
    assert r.content == b""
    assert_error(client.get("/api/v1/me", headers=auth(token)), 401, "token_expired")
    assert client.delete("/api/v1/auth/sessions/current", headers=auth(token)).status_code == 401


def test_sign_out_needs_a_token(client):
    assert_error(client.delete("/api/v1/auth/sessions/current"), 401, "unauthorized")


def test_list_sessions_and_devices(client):
    device = {
        "model": "HUAWEI Mate 60",
        "os_version": "HarmonyOS 4.0",
        "device_id": "dev-abc-123",
        "network_type": "wifi",
    }
    token, user = sign_up(client, **device)
    code = fresh_code(client)
    r = sign_in(client, code=code, device={**device, "network_type": "5g"})
    assert r.status_code == 201
    second = r.json()["token"]
    code = fresh_code(client)
    r = sign_in(
        client,
        code=code,
        device={"model": "iPhone 15", "os_version": "iOS 17.5", "device_id": "ios-xyz", "network_type": "4g"},
    )
    assert r.status_code == 201

    sessions = client.get("/api/v1/me/sessions", headers=auth(token)).json()
    assert len(sessions) == 3
    assert [s["current"] for s in sessions].count(True) == 1
    current = next(s for s in sessions if s["current"])
    assert current["device"]["model"] == "HUAWEI Mate 60"
    assert current["login_ip"] == "testclient"
    for s in sessions:
        assert set(s) >= {
            "id",
            "current",
            "method",
            "device",
            "login_ip",
            "created_at",
            "last_seen_at",
            "expires_at",
        }
        assert "token" not in s and "token_hash" not in s

    devices = client.get("/api/v1/me/devices", headers=auth(second)).json()
    # the same device id is the same device, updated in place
    assert len(devices) == 2
    by_model = {d["model"]: d for d in devices}
    assert by_model["HUAWEI Mate 60"]["network_type"] == "5g"
    assert by_model["iPhone 15"]["os_version"] == "iOS 17.5"
    # the raw device identifier is never echoed back
    assert "dev-abc-123" not in client.get("/api/v1/me/devices", headers=auth(token)).text
    assert "dev-abc-123" not in client.get("/api/v1/me/sessions", headers=auth(token)).text
    assert user["id"]


def test_device_id_is_pseudonymised_in_storage(client, ctx):
    sign_up(
        client,
        model="Xiaomi 14",
        os_version="Android 14",
        device_id="imei-860000000000001",
        network_type="wifi",
    )
    with ctx.db.session() as s:
        row = s.scalars(select(Device)).one()
        assert row.device_hash != "imei-860000000000001"
        assert "860000000000001" not in row.device_hash
        assert row.model == "Xiaomi 14"
        auth_row = s.scalars(select(AuthSession)).one()
        assert auth_row.device_id == row.id
        assert auth_row.login_ip == "testclient"


def test_tokens_are_stored_hashed(client, ctx):
    token, _ = sign_up(client)
    with ctx.db.session() as s:
        rows = s.execute(text("SELECT * FROM auth_sessions")).mappings().all()
    for row in rows:
        assert all(token not in str(v) for v in row.values())


def test_revoke_one_session(client):
    first, _ = sign_up(client)
    code = fresh_code(client)
    second = sign_in(client, code=code).json()["token"]
    sessions = client.get("/api/v1/me/sessions", headers=auth(first)).json()
    other = next(s for s in sessions if not s["current"])
    r = client.delete(f"/api/v1/me/sessions/{other['id']}", headers=auth(first))
    assert r.status_code == 204
    assert client.get("/api/v1/me", headers=auth(second)).status_code == 401
    assert client.get("/api/v1/me", headers=auth(first)).status_code == 200
    # revoking it again: it is gone
    assert_error(
        client.delete(f"/api/v1/me/sessions/{other['id']}", headers=auth(first)), 404, "session_not_found"
    )
    remaining = client.get("/api/v1/me/sessions", headers=auth(first)).json()
    assert [s["id"] for s in remaining] == [next(s for s in sessions if s["current"])["id"]]


def test_revoking_another_users_session_is_404_like_a_missing_one(client):
    mine, _ = sign_up(client)
    clock.advance(timedelta(seconds=61))
    theirs, _ = sign_up(client, OTHER)
    their_id = client.get("/api/v1/me/sessions", headers=auth(theirs)).json()[0]["id"]
    foreign = assert_error(
        client.delete(f"/api/v1/me/sessions/{their_id}", headers=auth(mine)), 404, "session_not_found"
    )
    missing = assert_error(
        client.delete("/api/v1/me/sessions/doesnotexist000000000000", headers=auth(mine)),
        404,
        "session_not_found",
    )
    assert foreign == missing
    assert client.get("/api/v1/me", headers=auth(theirs)).status_code == 200


def test_revoke_all_sessions(client):
    first, _ = sign_up(client)
    second = sign_in(client, code=fresh_code(client)).json()["token"]
    third = sign_in(client, code=fresh_code(client)).json()["token"]
    clock.advance(timedelta(seconds=61))
    other, _ = sign_up(client, OTHER)
    assert client.delete("/api/v1/me/sessions", headers=auth(second)).status_code == 204
    for token in [first, second, third]:
        assert client.get("/api/v1/me", headers=auth(token)).status_code == 401
    assert client.get("/api/v1/me", headers=auth(other)).status_code == 200
    # a fresh sign-in works again
    assert sign_in(client, code=fresh_code(client)).status_code == 201


def test_session_expires_after_30_days(client):
    token, _ = sign_up(client)
    # In use (never idle for HRK_SESSION_IDLE_MINUTES, 14 days), a session still ends after 30 days.
    for days in (13, 13, 3):
        clock.advance(timedelta(days=days))
        assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    clock.advance(timedelta(days=2))
    assert_error(client.get("/api/v1/me", headers=auth(token)), 401, "token_expired")


def test_expired_sessions_are_not_listed(client):
    old, _ = sign_up(client)
    clock.advance(timedelta(days=20))
    new = sign_in(client, code=fresh_code(client)).json()["token"]
    clock.advance(timedelta(days=11))
    sessions = client.get("/api/v1/me/sessions", headers=auth(new)).json()
    assert len(sessions) == 1 and sessions[0]["current"]
    assert client.get("/api/v1/me", headers=auth(old)).status_code == 401


def test_session_token_of_deleted_row_is_invalid(client):
    assert_error(client.get("/api/v1/me", headers=auth("x" * 43)), 401, "invalid_token")


# --- account enumeration and guessing (P10) ---------------------------------------------------------


def test_sign_in_does_not_reveal_whether_a_number_is_registered(client):
    """Without a correct code, a registered and an unregistered number get the same answer."""
    sign_up(client)  # PHONE has an account, OTHER has none
    clock.advance(timedelta(seconds=61))
    for phone in (PHONE, OTHER):
        assert request_code(client, phone).status_code == 202
    registered = sign_in(client, PHONE, "000000" if latest_code(client, PHONE) != "000000" else "000001")
    unregistered = sign_in(client, OTHER, "000000" if latest_code(client, OTHER) != "000000" else "000001")
    assert registered.status_code == 400
    assert (unregistered.status_code, unregistered.json()["error"]["code"]) == (
        registered.status_code,
        registered.json()["error"]["code"],
    ), "a wrong code tells whether the number has an account (428 for new numbers, 400 for members)"
    # the correct code for a new number still asks for the policy, and still is not burned
    code = latest_code(client, OTHER)
    assert_error(sign_in(client, OTHER, code), 428, "policy_consent_required")
    assert sign_in(client, OTHER, code, accept_policy_version=policy_version(client)).status_code == 201


def test_sign_in_without_any_code_requested_reveals_nothing(client):
    sign_up(client)
    a = sign_in(client, PHONE, "123456")
    b = sign_in(client, OTHER, "123456")
    assert (a.status_code, a.json()["error"]["code"]) == (b.status_code, b.json()["error"]["code"])


def test_password_guessing_is_limited_per_account_and_address(client):
    """10 wrong passwords an hour per (account, address) pair (password_account_hourly_limit); the
    owner elsewhere is not locked out with the guesser (tests/accounts/test_sms_abuse.py goes on)."""
    token, _ = sign_up(client)
    assert (
        client.put("/api/v1/me/password", json={"password": "secret123"}, headers=auth(token)).status_code
        == 204
    )
    guesser = TestClient(client.app, client=("10.1.0.7", 40000))
    statuses = []
    for i in range(11):
        r = guesser.post("/api/v1/auth/sessions", json={"phone": PHONE, "password": f"guess{i:04d}x"})
        statuses.append(r.status_code)
    assert statuses == [400] * 10 + [429], statuses
    assert "Retry-After" in r.headers
    # the right password from the guesser's address waits too; from another address it works
    r = guesser.post("/api/v1/auth/sessions", json={"phone": PHONE, "password": "secret123"})
    assert r.status_code == 429
    owner = TestClient(client.app, client=("10.2.0.9", 40000))
    r = owner.post("/api/v1/auth/sessions", json={"phone": PHONE, "password": "secret123"})
    assert r.status_code == 201, r.text


def test_a_burst_of_writers_never_starves_the_request_threads(settings):
    """Writers wait for SQLite's writer outside the request threads, and the console provider records
    its outbox inside the issuing transaction: with two request threads and a dozen writers at once,
    every request completes (a writer that waited in a request thread while the one ahead of it needed
    a thread to commit used to stall the burst until the busy timeout)."""
    from concurrent.futures import ThreadPoolExecutor

    from huirongke.app import create_app
    from huirongke.context import build_context

    tight = settings.model_copy(update={"request_threads": 2, "sms_ip_hourly_limit": 1000})
    ctx = build_context(tight, immediate_jobs=True)
    _empty(ctx)
    phones = [f"1390000{i:04d}" for i in range(12)]
    with TestClient(create_app(ctx=ctx), base_url="http://testserver") as client:

        def issue(phone: str) -> int:
            return client.post("/api/v1/auth/sms-codes", json={"phone": phone}).status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(issue, phones))
        # A starved burst only ends at the busy timeout, with 503 `busy`: every request answered 202 is
        # the proof, with no clock in the test.
        assert statuses == [202] * 12
        for phone in phones:
            assert latest_code(client, phone)
    ctx.db.dispose()
