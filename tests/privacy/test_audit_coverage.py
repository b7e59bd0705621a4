"""Every state-changing operation of the API leaves an audit event (P10, R10), or is exempt here with a
reason. Each operation is driven for real, with valid input, and the events its request wrote are
counted. An operation added to the API without an entry below fails `test_every_operation_is_listed`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from privacy_support import (
    GUARDIAN_PHONE,
    grant,
    image_bytes,
    publish,
    sign_in_again,
    years_ago,
)
from sqlalchemy import select

from conftest import auth, latest_code, sign_up
from huirongke.kit.clock import clock
from huirongke.privacy.models import AuditEvent

#: Operations that change no person's data, so they write no audit event. Each sends a one-time SMS
#: code: the code row is keyed by a phone blind index, expires in minutes and is rate-limited, and no
#: account, consent or right changes until the code is used, by an operation that is audited.
EXEMPT: dict[tuple[str, str], str] = {
    (
        "POST",
        "/api/v1/auth/sms-codes",
    ): "发送登录验证码：只生成短期验证码，账户数据不变；使用验证码登录时审计",
    ("POST", "/api/v1/me/guardian/sms-codes"): "向监护人发送验证码：监护同意在提交验证码时审计",
    ("POST", "/api/v1/me/step-up/sms-codes"): "向本人手机发送安全验证码：验证成功或失败在提交验证码时审计",
    ("POST", "/api/v1/guardian/sms-codes"): "向已登记的监护人发送验证码：其请求在提交验证码时审计",
    (
        "POST",
        "/api/v1/me/guardian/revocation/sms-codes",
    ): "向监护人发送解除关联的验证码：解除关联在提交验证码时审计",
    ("POST", "/api/v1/me/cases/{case_id}/verification-code"): "重发申请验证码：申请的验证在提交验证码时审计",
}


@dataclass
class Call:
    """One request, made after its set-up, and what it must answer and record."""

    send: Callable[[], Any]
    status: int
    action: str


Driver = Callable[[Any, Any], Call]


def _user(client: Any) -> tuple[str, dict[str, Any]]:
    return sign_up(client)


def _patch_me(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    return Call(
        lambda: client.patch("/api/v1/me", json={"nickname": "林小满"}, headers=auth(token)),
        200,
        "profile.updated",
    )


def _sign_in(client: Any, ctx: Any) -> Call:
    phone = "13800138000"
    assert client.post("/api/v1/auth/sms-codes", json={"phone": phone}).status_code == 202
    version = client.get("/api/v1/privacy/policy").json()["version"]
    body = {
        "phone": phone,
        "code": latest_code(client, phone),
        "accept_policy_version": version,
        "age": {"adult": True},
    }
    return Call(lambda: client.post("/api/v1/auth/sessions", json=body), 201, "account.registered")


def _sign_out(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    return Call(
        lambda: client.delete("/api/v1/auth/sessions/current", headers=auth(token)), 204, "session.signed_out"
    )


def _revoke_all(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    return Call(
        lambda: client.delete("/api/v1/me/sessions", headers=auth(token)), 204, "sessions.revoked_all"
    )


def _revoke_one(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    r = sign_in_again(client, "13800138000")
    assert r.status_code == 201, r.text
    sessions = client.get("/api/v1/me/sessions", headers=auth(token)).json()
    [other] = [s["id"] for s in sessions if not s["current"]]
    return Call(
        lambda: client.delete(f"/api/v1/me/sessions/{other}", headers=auth(token)), 204, "session.revoked"
    )


def _password(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    body = {"password": "correct horse battery"}
    return Call(
        lambda: client.put("/api/v1/me/password", json=body, headers=auth(token)), 204, "password.set"
    )


def _privacy_settings(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    return Call(
        lambda: client.patch("/api/v1/me/privacy-settings", json={"show_phone": True}, headers=auth(token)),
        200,
        "privacy_settings.updated",
    )


def _real_name(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    grant(client, token, "real_name")
    body = {"name": "张三丰", "id_number": "11010519491231002X"}
    return Call(
        lambda: client.post("/api/v1/me/real-name", json=body, headers=auth(token)),
        201,
        "real_name.submitted",
    )


def _agree(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    version = publish(ctx)
    return Call(
        lambda: client.post(
            "/api/v1/privacy/policy-agreements", json={"version": version}, headers=auth(token)
        ),
        201,
        "policy.agreed",
    )


def _consent(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    return Call(
        lambda: client.put(
            "/api/v1/privacy/consents/personalization", json={"granted": True}, headers=auth(token)
        ),
        200,
        "consent.granted",
    )


def _permission(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    return Call(
        lambda: client.post(
            "/api/v1/privacy/permissions/camera/events", json={"event": "granted"}, headers=auth(token)
        ),
        201,
        "permission.granted",
    )


def _export(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    return Call(lambda: client.post("/api/v1/me/data-exports", headers=auth(token)), 202, "export.requested")


def _cancel(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    return Call(
        lambda: client.post("/api/v1/me/account-cancellation", headers=auth(token)),
        202,
        "cancellation.requested",
    )


def _withdraw_cancellation(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    assert client.post("/api/v1/me/account-cancellation", headers=auth(token)).status_code == 202
    return Call(
        lambda: client.delete("/api/v1/me/account-cancellation", headers=auth(token)),
        204,
        "cancellation.withdrawn",
    )


def _open_case(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    body = {"kind": "contact", "description": "我的昵称被他人冒用，请核实处理。"}
    return Call(
        lambda: client.post("/api/v1/me/cases", json=body, headers=auth(token)), 201, "case.contact.opened"
    )


def _verify_case(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    body = {"kind": "contact", "description": "我的昵称被他人冒用，请核实处理。"}
    r = client.post("/api/v1/me/cases", json=body, headers=auth(token))
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    code = latest_code(client, "13800138000")  # the case's code is the newest message
    return Call(
        lambda: client.post(
            f"/api/v1/me/cases/{case_id}/verification", json={"code": code}, headers=auth(token)
        ),
        200,
        "case.verified",
    )


def _minor(client: Any) -> str:
    token, _ = _user(client)
    r = client.patch("/api/v1/me", json={"birthday": years_ago(17).isoformat()}, headers=auth(token))
    assert r.status_code == 200, r.text
    return token


def _guardian_consent(client: Any, ctx: Any) -> Call:
    return _guardian_consent_of(client, _minor(client))


def _guardian_consent_of(client: Any, token: str) -> Call:
    body = {"guardian_phone": GUARDIAN_PHONE}
    assert client.post("/api/v1/me/guardian/sms-codes", json=body, headers=auth(token)).status_code == 202
    body["code"] = latest_code(client, GUARDIAN_PHONE)
    return Call(
        lambda: client.post("/api/v1/me/guardian/consent", json=body, headers=auth(token)),
        201,
        "guardian.consented",
    )


def _guardian_request(client: Any, ctx: Any) -> Call:
    r = _guardian_consent(client, ctx).send()
    assert r.status_code == 201, r.text
    clock.advance(timedelta(seconds=61))
    assert (
        client.post("/api/v1/guardian/sms-codes", json={"guardian_phone": GUARDIAN_PHONE}).status_code == 202
    )
    body = {"guardian_phone": GUARDIAN_PHONE, "code": latest_code(client, GUARDIAN_PHONE), "kind": "export"}
    return Call(lambda: client.post("/api/v1/guardian/requests", json=body), 202, "export.requested")


def _guardian_revoke(client: Any, ctx: Any) -> Call:
    token = _minor(client)
    r = _guardian_consent_of(client, token).send()
    assert r.status_code == 201, r.text
    assert client.post("/api/v1/me/guardian/revocation/sms-codes", headers=auth(token)).status_code == 202
    body = {"code": latest_code(client, GUARDIAN_PHONE)}
    return Call(
        lambda: client.request("DELETE", "/api/v1/me/guardian", json=body, headers=auth(token)),
        204,
        "guardian.revoked",
    )


def _step_up(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    assert client.post("/api/v1/me/step-up/sms-codes", headers=auth(token)).status_code == 202
    body = {"code": latest_code(client, "13800138000")}
    return Call(
        lambda: client.post("/api/v1/me/step-up", json=body, headers=auth(token)), 200, "step_up.verified"
    )


def _upload(client: Any, ctx: Any) -> Call:
    token, _ = _user(client)
    files = {"file": ("a.png", image_bytes(), "image/png")}
    return Call(lambda: client.post("/api/v1/media", files=files, headers=auth(token)), 201, "media.uploaded")


AUDITED: dict[tuple[str, str], Driver] = {
    ("PATCH", "/api/v1/me"): _patch_me,
    ("POST", "/api/v1/auth/sessions"): _sign_in,
    ("DELETE", "/api/v1/auth/sessions/current"): _sign_out,
    ("DELETE", "/api/v1/me/sessions"): _revoke_all,
    ("DELETE", "/api/v1/me/sessions/{session_id}"): _revoke_one,
    ("PUT", "/api/v1/me/password"): _password,
    ("PATCH", "/api/v1/me/privacy-settings"): _privacy_settings,
    ("POST", "/api/v1/me/real-name"): _real_name,
    ("POST", "/api/v1/privacy/policy-agreements"): _agree,
    ("PUT", "/api/v1/privacy/consents/{purpose}"): _consent,
    ("POST", "/api/v1/privacy/permissions/{permission}/events"): _permission,
    ("POST", "/api/v1/me/data-exports"): _export,
    ("POST", "/api/v1/me/account-cancellation"): _cancel,
    ("DELETE", "/api/v1/me/account-cancellation"): _withdraw_cancellation,
    ("POST", "/api/v1/me/cases"): _open_case,
    ("POST", "/api/v1/me/cases/{case_id}/verification"): _verify_case,
    ("POST", "/api/v1/me/guardian/consent"): _guardian_consent,
    ("POST", "/api/v1/guardian/requests"): _guardian_request,
    ("DELETE", "/api/v1/me/guardian"): _guardian_revoke,
    ("POST", "/api/v1/media"): _upload,
    ("POST", "/api/v1/me/step-up"): _step_up,
}


def _operations(client: Any) -> set[tuple[str, str]]:
    paths = client.app.openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops if method != "get"}


def test_every_operation_is_listed(client):
    operations = _operations(client)
    unknown = operations - AUDITED.keys() - EXEMPT.keys()
    assert not unknown, f"operations with neither an audit check nor an exemption: {sorted(unknown)}"
    stale = (AUDITED.keys() | EXEMPT.keys()) - operations
    assert not stale, f"listed operations the API no longer has: {sorted(stale)}"
    assert not AUDITED.keys() & EXEMPT.keys()
    assert all(reason.strip() for reason in EXEMPT.values())


def _last_seq(ctx: Any) -> int:
    with ctx.db.session(write=False) as s:
        return s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0


@pytest.mark.parametrize("operation", sorted(AUDITED), ids=[f"{m} {p}" for m, p in sorted(AUDITED)])
def test_a_successful_operation_writes_its_audit_event(client, ctx, operation):
    call = AUDITED[operation](client, ctx)
    before = _last_seq(ctx)
    r = call.send()
    assert r.status_code == call.status, r.text
    with ctx.db.session(write=False) as s:
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.seq > before)))
    assert call.action in actions, actions
