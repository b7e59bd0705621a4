"""Policy versions (P01, P24, P41): publishing (service and CLI) gates every authenticated endpoint
except reading and agreeing to the policy, data export, account cancellation, the contact/complaint
channel and sign-out. (The gate's sign-in behaviour is in test_policy_gate.py.)"""

from __future__ import annotations

import pytest
from privacy_support import (
    OTHER_PHONE,
    assert_error,
    count,
    newest_code,
    publish,
    run_cli,
)

from conftest import auth, sign_up


def test_publish_with_the_cli(client, ctx, settings, monkeypatch, tmp_path):
    token, _ = sign_up(client)
    policy = tmp_path / "policy-v2.md"
    policy.write_text("# 汇容客隐私政策（第二版）\n\n我们新增了「客源管理」的说明。", encoding="utf-8")
    result = run_cli(
        monkeypatch, settings, "privacy", "publish-policy", str(policy), "--changes", "新增客源管理说明"
    )
    assert result.exit_code == 0, result.output
    assert "第 2 版" in result.output
    # Each process caches the current version for up to 2 s (monotonic time, not the test clock).
    ctx.policy.invalidate()
    p = client.get("/api/v1/privacy/policy").json()
    assert p["version"] == 2
    assert p["changes"] == "新增客源管理说明"
    assert "客源管理" in p["text"]
    assert_error(client.get("/api/v1/me", headers=auth(token)), 428, "policy_update_required")
    assert (
        client.post("/api/v1/privacy/policy-agreements", json={"version": 2}, headers=auth(token)).status_code
        == 201
    )
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200


def test_cli_refuses_a_missing_file_and_an_empty_policy(ctx, settings, monkeypatch, tmp_path):
    result = run_cli(
        monkeypatch, settings, "privacy", "publish-policy", str(tmp_path / "nope.md"), "--changes", "x"
    )
    assert result.exit_code != 0
    empty = tmp_path / "empty.md"
    empty.write_text("   \n", encoding="utf-8")
    result = run_cli(monkeypatch, settings, "privacy", "publish-policy", str(empty), "--changes", "x")
    assert result.exit_code != 0
    assert count(ctx, "policy_versions", "version > 1") == 0


def test_agreement_history_is_kept_across_versions(client, ctx):
    token, _ = sign_up(client)
    for v in (2, 3):
        publish(ctx, f"# 第{v}版", f"第{v}版变更")
        assert_error(client.get("/api/v1/me", headers=auth(token)), 428, "policy_update_required")
        r = client.post("/api/v1/privacy/policy-agreements", json={"version": v}, headers=auth(token))
        assert r.status_code == 201
    history = client.get("/api/v1/privacy/policy-agreements", headers=auth(token)).json()
    assert [a["version"] for a in history] == [1, 2, 3]
    assert history[0]["channel"] == "sign_in" and history[1]["channel"] == "app"


def _case(client, token):
    r = client.post(
        "/api/v1/me/cases",
        json={"kind": "complaint", "description": "新版政策看不懂，想投诉"},
        headers=auth(token),
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_the_rights_channels_stay_open_with_an_outdated_agreement(client, ctx):
    token, _ = sign_up(client)
    publish(ctx)
    h = auth(token)
    assert client.get("/api/v1/me", headers=h).status_code == 428

    assert client.get("/api/v1/privacy/policy", headers=h).status_code == 200

    # data export
    r = client.post("/api/v1/me/data-exports", headers=h)
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    assert client.get("/api/v1/me/data-exports", headers=h).status_code == 200
    status = client.get(f"/api/v1/me/data-exports/{export_id}", headers=h)
    assert status.status_code == 200 and status.json()["status"] == "ready"
    assert client.get(status.json()["download_url"], headers=h).status_code == 200

    # contact / complaint channel
    case = _case(client, token)
    assert client.get("/api/v1/me/cases", headers=h).status_code == 200
    assert client.get(f"/api/v1/me/cases/{case['id']}", headers=h).status_code == 200
    r = client.post(
        f"/api/v1/me/cases/{case['id']}/verification",
        json={"code": newest_code(client, "13800138000")},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open"

    # account cancellation
    r = client.post("/api/v1/me/account-cancellation", headers=h)
    assert r.status_code == 202, r.text
    assert client.get("/api/v1/me/account-cancellation", headers=h).status_code == 200
    assert client.delete("/api/v1/me/account-cancellation", headers=h).status_code == 204

    # sign-out
    assert client.delete("/api/v1/auth/sessions/current", headers=h).status_code == 204
    assert client.get("/api/v1/privacy/policy", headers=h).status_code == 200  # needs no token


GATED = [
    ("GET", "/api/v1/me", None),
    ("PATCH", "/api/v1/me", {"nickname": "新昵称"}),
    ("GET", "/api/v1/me/sessions", None),
    ("GET", "/api/v1/me/devices", None),
    ("GET", "/api/v1/me/privacy-settings", None),
    ("PATCH", "/api/v1/me/privacy-settings", {"show_phone": True}),
    ("GET", "/api/v1/me/real-name", None),
    ("GET", "/api/v1/privacy/consents", None),
    ("PUT", "/api/v1/privacy/consents/location", {"granted": True}),
    ("GET", "/api/v1/privacy/permissions", None),
    ("POST", "/api/v1/privacy/permissions/camera/events", {"event": "granted"}),
    ("GET", "/api/v1/users/{other}", None),
    ("GET", "/api/v1/me/guardian", None),
    ("POST", "/api/v1/me/guardian/sms-codes", {"guardian_phone": "13700137000"}),
    ("POST", "/api/v1/me/guardian/consent", {"guardian_phone": "13700137000", "code": "123456"}),
]


@pytest.mark.parametrize(("method", "path", "body"), GATED, ids=[f"{m} {p}" for m, p, _ in GATED])
def test_everything_else_is_gated_until_the_new_version_is_agreed(client, ctx, method, path, body):
    """API.md: every other authenticated endpoint answers 428 policy_update_required. Nothing is
    collected meanwhile (P01), e.g. no guardian phone, no consent event, no permission event."""
    token, _ = sign_up(client)
    _, other = sign_up(client, OTHER_PHONE)
    publish(ctx)
    before = {
        t: count(ctx, t) for t in ("consent_events", "permission_events", "sms_codes", "guardian_consents")
    }
    r = client.request(method, path.format(other=other["id"]), json=body, headers=auth(token))
    err = assert_error(r, 428, "policy_update_required")
    assert err["details"]["current_version"] == 2
    after = {t: count(ctx, t) for t in before}
    assert after == before


def test_the_gate_lifts_for_every_session_once_agreed(client, ctx):
    token, _ = sign_up(client)
    publish(ctx)
    assert (
        client.post("/api/v1/privacy/policy-agreements", json={"version": 2}, headers=auth(token)).status_code
        == 201
    )
    for method, path, body in GATED[:12]:
        r = client.request(method, path.format(other="x" * 32), json=body, headers=auth(token))
        assert r.status_code != 428, (method, path, r.text)
