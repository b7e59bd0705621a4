"""P01/P03/P41: until the current policy is agreed, nothing is collected and only reading the policy,
agreeing to it and leaving work. Device info and the login IP are recorded only after agreement."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text

from conftest import auth, latest_code, request_code_solving, sign_up
from huirongke.kit.clock import clock

PHONE = "13800138000"
DEVICE = {
    "model": "OPPO Find X7",
    "os_version": "ColorOS 14",
    "device_id": "oppo-device-1",
    "network_type": "wifi",
}


def publish(
    ctx, text_: str = "# 汇容客隐私政策（第二版）\n\n新增了说明。", changes: str = "新增：第二版说明"
) -> int:
    with ctx.db.session() as s:
        return ctx.policy.publish(s, text_, changes).version


def sign_in_again(client, phone: str = PHONE, **extra: Any):
    clock.advance(timedelta(seconds=61))
    assert request_code_solving(client, phone).status_code == 202  # a challenge after a few codes
    body = {"phone": phone, "code": latest_code(client, phone), **extra}
    return client.post("/api/v1/auth/sessions", json=body)


def count(ctx, table: str) -> int:
    with ctx.db.session() as s:
        return int(s.scalar(text(f"SELECT count(*) FROM {table}")))


def login_ips(ctx) -> list[str | None]:
    with ctx.db.session() as s:
        return list(s.scalars(text("SELECT login_ip FROM auth_sessions ORDER BY created_at")))


def assert_error(r, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def test_policy_is_public(client):
    r = client.get("/api/v1/privacy/policy")
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"version", "published_at", "text", "changes"}
    assert body["version"] == 1
    assert "隐私政策" in body["text"]


def test_new_policy_version_gates_everything_but_reading_agreeing_and_leaving(client, ctx):
    token, _ = sign_up(client)
    assert count(ctx, "devices") == 0
    new = publish(ctx)
    assert new == 2
    policy = client.get("/api/v1/privacy/policy").json()
    assert policy["version"] == 2
    assert policy["changes"] == "新增：第二版说明"

    # the old token now meets the gate
    err = assert_error(client.get("/api/v1/me", headers=auth(token)), 428, "policy_update_required")
    assert err["details"]["current_version"] == 2
    assert_error(
        client.patch("/api/v1/me", json={"nickname": "小王"}, headers=auth(token)),
        428,
        "policy_update_required",
    )
    assert_error(client.get("/api/v1/me/sessions", headers=auth(token)), 428, "policy_update_required")

    # signing in with a device but without accepting: nothing is collected
    ips_before = len(login_ips(ctx))
    r = sign_in_again(client, device=DEVICE)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["policy_update_required"] is True
    assert body["user"]["policy_version"] is None
    second = body["token"]
    assert count(ctx, "devices") == 0
    ips = login_ips(ctx)
    assert len(ips) == ips_before + 1
    assert ips[-1] is None
    assert_error(client.get("/api/v1/me", headers=auth(second)), 428, "policy_update_required")

    # agreeing to an old version is a conflict
    err = assert_error(
        client.post("/api/v1/privacy/policy-agreements", json={"version": 1}, headers=auth(second)),
        409,
        "policy_version_mismatch",
    )
    assert err["details"]["current_version"] == 2
    assert client.get("/api/v1/me", headers=auth(second)).status_code == 428

    r = client.post("/api/v1/privacy/policy-agreements", json={"version": 2}, headers=auth(second))
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2
    # agreement is per user, so every session of this user is released
    for t in (token, second):
        me = client.get("/api/v1/me", headers=auth(t))
        assert me.status_code == 200
        assert me.json()["policy_version"] == 2
    agreements = client.get("/api/v1/privacy/policy-agreements", headers=auth(second)).json()
    assert [a["version"] for a in agreements] == [1, 2]

    # from now on the device and IP are recorded
    r = sign_in_again(client, device=DEVICE)
    assert r.status_code == 201
    assert r.json()["policy_update_required"] is False
    assert count(ctx, "devices") == 1
    assert login_ips(ctx)[-1] == "testclient"


def test_sign_out_works_without_agreeing(client, ctx):
    token, _ = sign_up(client)
    publish(ctx)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 428
    assert client.delete("/api/v1/auth/sessions/current", headers=auth(token)).status_code == 204
    assert_error(client.get("/api/v1/me", headers=auth(token)), 401, "token_expired")


def test_reading_the_policy_works_with_an_outdated_agreement(client, ctx):
    token, _ = sign_up(client)
    publish(ctx)
    r = client.get("/api/v1/privacy/policy", headers=auth(token))
    assert r.status_code == 200 and r.json()["version"] == 2


def test_accepting_the_new_version_at_sign_in(client, ctx):
    sign_up(client)
    publish(ctx)
    r = sign_in_again(client, device=DEVICE, accept_policy_version=2)
    assert r.status_code == 201
    assert r.json()["policy_update_required"] is False
    assert r.json()["user"]["policy_version"] == 2
    assert count(ctx, "devices") == 1
    assert client.get("/api/v1/me", headers=auth(r.json()["token"])).status_code == 200


def test_accepting_an_outdated_version_at_sign_in_is_no_agreement(client, ctx):
    sign_up(client)
    publish(ctx)
    r = sign_in_again(client, device=DEVICE, accept_policy_version=1)
    assert r.status_code == 201
    assert r.json()["policy_update_required"] is True
    assert count(ctx, "devices") == 0
    assert login_ips(ctx)[-1] is None


def test_new_user_must_accept_the_current_version(client, ctx):
    publish(ctx)
    assert client.post("/api/v1/auth/sms-codes", json={"phone": PHONE}).status_code == 202
    code = latest_code(client, PHONE)
    r = client.post(
        "/api/v1/auth/sessions",
        json={"phone": PHONE, "code": code, "accept_policy_version": 1, "device": DEVICE},
    )
    err = assert_error(r, 428, "policy_consent_required")
    assert err["details"]["current_version"] == 2
    assert count(ctx, "users") == 0 and count(ctx, "devices") == 0
    r = client.post(
        "/api/v1/auth/sessions",
        json={
            "phone": PHONE,
            "code": code,
            "accept_policy_version": 2,
            "device": DEVICE,
            "age": {"adult": True},
        },
    )
    assert r.status_code == 201
    assert count(ctx, "devices") == 1
    assert login_ips(ctx) == ["testclient"]


def test_agreeing_twice_is_idempotent(client, ctx):
    token, _ = sign_up(client)
    for _ in range(2):
        r = client.post("/api/v1/privacy/policy-agreements", json={"version": 1}, headers=auth(token))
        assert r.status_code == 201
    assert count(ctx, "policy_agreements") == 1


def test_agreement_needs_a_token_and_a_valid_body(client):
    assert_error(client.post("/api/v1/privacy/policy-agreements", json={"version": 1}), 401, "unauthorized")
    token, _ = sign_up(client)
    r = client.post("/api/v1/privacy/policy-agreements", json={"version": "one"}, headers=auth(token))
    assert r.status_code == 422
    r = client.post(
        "/api/v1/privacy/policy-agreements", json={"version": 1, "extra": True}, headers=auth(token)
    )
    assert r.status_code == 422
    assert_error(
        client.post("/api/v1/privacy/policy-agreements", json={"version": 99}, headers=auth(token)),
        409,
        "policy_version_mismatch",
    )
