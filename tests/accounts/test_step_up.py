"""Step-up verification (issue 8, API.md "Step-up verification"): exporting, cancelling, attaching a
guardian, setting a password and submitting a real name need a proof of the phone within 10 minutes; a
session created by an SMS code counts as one at its creation, a password session does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import auth, latest_code, sign_up
from huirongke.kit.clock import clock, utcnow
from privacy.privacy_support import ID_NUMBER, REAL_NAME, assert_error, count, grant, rows, step_up

PHONE = "13800138000"
PASSWORD = "secret123"
STALE = timedelta(minutes=11)


def _password_session(client: Any, sms_token: str, phone: str = PHONE) -> str:
    """A session signed in with the password (set first, with the SMS session, if none is set)."""
    if not client.get("/api/v1/me", headers=auth(sms_token)).json()["has_password"]:
        r = client.put("/api/v1/me/password", json={"password": PASSWORD}, headers=auth(sms_token))
        assert r.status_code == 204, r.text
    r = client.post("/api/v1/auth/sessions", json={"phone": phone, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _export(client: Any, token: str) -> Any:
    return client.post("/api/v1/me/data-exports", headers=auth(token))


def _gated_calls(client: Any, token: str) -> dict[str, Any]:
    h = auth(token)
    real_name = {"name": REAL_NAME, "id_number": ID_NUMBER}
    return {
        "export": lambda: client.post("/api/v1/me/data-exports", headers=h),
        "cancellation": lambda: client.post("/api/v1/me/account-cancellation", headers=h),
        "password": lambda: client.put("/api/v1/me/password", json={"password": "other1234"}, headers=h),
        "real_name": lambda: client.post("/api/v1/me/real-name", json=real_name, headers=h),
        "guardian": lambda: client.post(
            "/api/v1/me/guardian/sms-codes", json={"guardian_phone": "13900139000"}, headers=h
        ),
    }


def test_a_fresh_sms_session_counts_as_verified(client):
    token, _ = sign_up(client)
    assert _export(client, token).status_code == 202


def test_every_gated_action_needs_a_verification_within_ten_minutes(client):
    token, _ = sign_up(client)
    grant(client, token, "real_name")
    clock.advance(STALE)
    for name, call in _gated_calls(client, token).items():
        error = assert_error(call(), 403, "step_up_required")
        assert "验证" in error["message"], name
        assert error["details"]["request_code"] == "/api/v1/me/step-up/sms-codes"
        assert error["details"]["verify"] == "/api/v1/me/step-up"
        assert error["details"]["window_seconds"] == 600
    # Nothing happened meanwhile.
    assert count(client.app.state.ctx, "data_exports") == 0
    assert count(client.app.state.ctx, "account_cancellations") == 0
    assert count(client.app.state.ctx, "real_name_verifications") == 0


def test_step_up_opens_the_gate_for_ten_minutes(client):
    token, _ = sign_up(client)
    clock.advance(STALE)
    assert_error(_export(client, token), 403, "step_up_required")
    before = utcnow()
    out = step_up(client, token)
    until = datetime.fromisoformat(out["verified_until"])
    assert until.tzinfo is not None and until.utcoffset() == timedelta(0)
    assert before + timedelta(minutes=10) <= until <= utcnow() + timedelta(minutes=10)
    clock.advance(timedelta(minutes=9))
    assert _export(client, token).status_code == 202
    clock.advance(timedelta(minutes=2))
    assert_error(client.post("/api/v1/me/account-cancellation", headers=auth(token)), 403, "step_up_required")


def test_a_password_session_is_not_verified_until_it_steps_up(client):
    sms_token, _ = sign_up(client)
    token = _password_session(client, sms_token)
    assert_error(_export(client, token), 403, "step_up_required")
    step_up(client, token)
    assert _export(client, token).status_code == 202


def test_a_verification_belongs_to_its_session(client):
    first, _ = sign_up(client)
    second = _password_session(client, first)
    clock.advance(STALE)
    step_up(client, second)
    assert _export(client, second).status_code == 202
    assert_error(client.post("/api/v1/me/account-cancellation", headers=auth(first)), 403, "step_up_required")


def test_the_identity_cache_serves_no_stale_verification(client):
    """A cached identity (served without the database) neither withholds a fresh verification nor
    keeps an old one alive: the gate reads the session row and the clock."""
    token, _ = sign_up(client)
    ctx = client.app.state.ctx
    clock.advance(STALE)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200  # cached now
    assert_error(_export(client, token), 403, "step_up_required")
    step_up(client, token)
    assert _export(client, token).status_code == 202
    clock.advance(STALE)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    hits = ctx.identities.hits
    r = client.post("/api/v1/me/account-cancellation", headers=auth(token))
    assert ctx.identities.hits == hits + 1  # the identity came from the cache, the gate still refused
    assert_error(r, 403, "step_up_required")


def test_a_wrong_code_is_refused_audited_and_five_void_the_code(client):
    token, user = sign_up(client)
    ctx = client.app.state.ctx
    clock.advance(STALE)
    assert client.post("/api/v1/me/step-up/sms-codes", headers=auth(token)).status_code == 202
    right = latest_code(client, PHONE)
    wrong = "000000" if right != "000000" else "111111"
    for left in (4, 3, 2, 1, 0):
        r = client.post("/api/v1/me/step-up", json={"code": wrong}, headers=auth(token))
        assert assert_error(r, 400, "invalid_code")["details"]["attempts_left"] == left
    assert count(ctx, "audit_events", "action = 'step_up.failed' AND subject_id = :u", u=user["id"]) == 5
    # The code is void: even the right one no longer verifies.
    assert_error(
        client.post("/api/v1/me/step-up", json={"code": right}, headers=auth(token)), 400, "invalid_code"
    )
    assert_error(_export(client, token), 403, "step_up_required")
    assert count(ctx, "audit_events", "action = 'step_up.verified'") == 0


def test_success_is_audited_and_stored_on_the_session(client):
    token, user = sign_up(client)
    ctx = client.app.state.ctx
    clock.advance(STALE)
    step_up(client, token)
    events = rows(
        ctx,
        "SELECT fields, purpose FROM audit_events WHERE action = 'step_up.verified' AND subject_id = :u",
        u=user["id"],
    )
    assert len(events) == 1
    assert "auth_sessions.verified_at" in str(events[0].fields)
    assert events[0].purpose == "security"
    assert count(ctx, "auth_sessions", "verified_at IS NOT NULL AND user_id = :u", u=user["id"]) == 1


def test_a_sign_in_code_does_not_verify_and_step_up_codes_keep_their_limits(client):
    token, _ = sign_up(client)
    clock.advance(STALE)
    # A sign-in code for the same phone is another purpose: it does not step up.
    assert client.post("/api/v1/auth/sms-codes", json={"phone": PHONE}).status_code == 202
    login_code = latest_code(client, PHONE)
    assert_error(
        client.post("/api/v1/me/step-up", json={"code": login_code}, headers=auth(token)), 400, "invalid_code"
    )
    # The sign-in code machinery's limits apply: one code a minute.
    assert client.post("/api/v1/me/step-up/sms-codes", headers=auth(token)).status_code == 202
    r = client.post("/api/v1/me/step-up/sms-codes", headers=auth(token))
    assert_error(r, 429, "rate_limited")
    assert "Retry-After" in r.headers
    message = client.get("/api/v1/dev/sms-outbox", params={"phone": PHONE}).json()["messages"][0]["text"]
    assert "安全验证" in message


def test_step_up_needs_a_session(client):
    assert_error(client.post("/api/v1/me/step-up/sms-codes"), 401)
    assert_error(client.post("/api/v1/me/step-up", json={"code": "123456"}), 401)


@pytest.mark.parametrize("body", [{}, {"code": 123456}, {"code": "12"}, {"code": "123456", "x": 1}])
def test_step_up_rejects_bad_bodies(client, body):
    token, _ = sign_up(client)
    assert_error(client.post("/api/v1/me/step-up", json=body, headers=auth(token)), 422)


# --- after a password change, sign out the other devices ---------------------------------------


def test_setting_a_password_can_sign_out_the_other_sessions(client):
    token, user = sign_up(client)
    other = _password_session(client, token)
    third = _password_session(client, token)
    ctx = client.app.state.ctx
    for t in (token, other, third):
        assert client.get("/api/v1/me", headers=auth(t)).status_code == 200  # cached identities
    body = {"password": "newpass123", "current_password": PASSWORD, "sign_out_others": True}
    assert client.put("/api/v1/me/password", json=body, headers=auth(token)).status_code == 204
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    for t in (other, third):
        assert_error(client.get("/api/v1/me", headers=auth(t)), 401, "token_expired")
    assert (
        count(ctx, "audit_events", "action = 'sessions.revoked_others' AND subject_id = :u", u=user["id"])
        == 1
    )


def test_setting_a_password_keeps_the_other_sessions_unless_asked(client):
    token, _ = sign_up(client)
    other = _password_session(client, token)
    body = {"password": "newpass123", "current_password": PASSWORD}
    assert client.put("/api/v1/me/password", json=body, headers=auth(token)).status_code == 204
    assert client.get("/api/v1/me", headers=auth(other)).status_code == 200


@pytest.mark.parametrize("value", ["true", "yes", 1, 0, "1", None])
def test_sign_out_others_is_a_strict_boolean(client, value):
    token, _ = sign_up(client)
    other = _password_session(client, token)
    body = {"password": "newpass123", "current_password": PASSWORD, "sign_out_others": value}
    assert_error(client.put("/api/v1/me/password", json=body, headers=auth(token)), 422)
    assert client.get("/api/v1/me", headers=auth(other)).status_code == 200


def test_verified_until_is_utc_iso():
    # The wire format is ISO 8601 with an explicit UTC offset (pydantic renders UTC as "Z").
    from huirongke.accounts.schemas import StepUpOut

    out = StepUpOut(verified_until=datetime(2026, 12, 2, 8, 0, tzinfo=UTC)).model_dump_json()
    assert '"verified_until":"2026-12-02T08:00:00Z"' in out
