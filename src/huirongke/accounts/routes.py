"""Accounts HTTP API: thin handlers that parse, call the services and return."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from huirongke.accounts import profile, signin, stepup
from huirongke.accounts.deps import (
    DB,
    READ,
    WRITE,
    AgreedIdentity,
    AgreedUser,
    AnyUser,
    Ctx,
    CurrentUser,
    Principal,
    UnitRoute,
    client_ip,
    require_consent,
)
from huirongke.accounts.models import AuthSession, Device
from huirongke.accounts.schemas import (
    DeviceOut,
    MeOut,
    MePatch,
    PasswordSet,
    PrivacySettings,
    PrivacySettingsPatch,
    PublicProfile,
    RealNameOut,
    RealNameSubmit,
    SessionInfo,
    SessionOut,
    SignInRequest,
    SmsCodeRequest,
    SmsCodeSent,
    StepUpIn,
    StepUpOut,
)
from huirongke.accounts.stepup import StepUpCurrentUser, require_step_up
from huirongke.context import AppContext
from huirongke.kit.challenge import Answer
from huirongke.kit.clock import utcnow
from huirongke.kit.db import Writer
from huirongke.kit.errors import NotFound
from huirongke.privacy import audit

router = APIRouter(prefix="/api/v1", tags=["accounts"], route_class=UnitRoute)
# R02: the ID number is sensitive data, so real-name needs its own, separate consent.
RealNameConsent = Annotated[Principal, Depends(require_consent("real_name"))]
# Issue 8: the ID number (and the birthday it sets) only after a fresh proof of the phone.
RealNameStepUp = Annotated[Principal, Depends(require_step_up(RealNameConsent))]


@router.get("/me", response_model=MeOut)
async def get_me(request: Request, who: AgreedIdentity) -> Response:
    # The hottest read, declared first because routes are matched in order. Served from the identity
    # cache's rendered view while nothing about the user changed (any commit touching the user drops
    # it), else rendered in one thread-pool hop.
    ctx: AppContext = request.app.state.ctx
    body = ctx.identities.view(who.user_id, "me", who.policy_version)
    if body is None:
        body = await run_in_threadpool(profile.render_me, ctx, who.user_id, who.policy_version)
    return Response(body, media_type="application/json")


@router.post("/auth/sms-codes", status_code=202, response_model=SmsCodeSent, **WRITE)
def request_sms_code(body: SmsCodeRequest, request: Request, ctx: Ctx, session: DB) -> SmsCodeSent:
    signin.request_code(
        ctx,
        session,
        body.phone,
        client_ip(request),
        challenge=Answer(body.challenge.id, body.challenge.solution) if body.challenge else None,
        device_id=body.device.device_id if body.device else None,
    )
    return SmsCodeSent(
        expires_in=ctx.settings.sms_code_ttl_seconds, resend_after=ctx.settings.sms_resend_seconds
    )


@router.post("/auth/sessions", status_code=201, response_model=SessionOut)
async def create_session(body: SignInRequest, request: Request) -> Response:
    # Busy at peaks: the whole unit of work in one thread-pool hop, serialised once.
    ctx: AppContext = request.app.state.ctx
    writer = await ctx.db.claim_writer_async()
    try:
        out = await run_in_threadpool(_sign_in, ctx, body, client_ip(request), writer)
    finally:
        writer.release()  # idempotent: the unit of work has normally released it already
    return Response(out, status_code=201, media_type="application/json")


def _sign_in(ctx: AppContext, body: SignInRequest, ip: str | None, writer: Writer | None = None) -> bytes:
    with ctx.db.session(writer=writer) as session:
        result = signin.sign_in(
            ctx,
            session,
            raw_phone=body.phone,
            code=body.code,
            password=body.password,
            accept_policy_version=body.accept_policy_version,
            device=body.device,
            ip=ip,
            age=body.age,
        )
        version = None if result.policy_update_required else ctx.policy.current(session).version
        out = SessionOut(
            token=result.token,
            user=profile.me_out(
                ctx, session, result.user, version, phone=result.phone, new_user=result.created
            ),
            policy_update_required=result.policy_update_required,
        )
    return out.model_dump_json().encode()


@router.delete("/auth/sessions/current", status_code=204, **WRITE)
def sign_out(user: AnyUser, session: DB) -> Response:
    signin.revoke_sessions(session, user.user.id, only=user.session_id)
    audit.user_action(session, user.user.id, "session.signed_out")
    return Response(status_code=204)


@router.get("/me/sessions", response_model=list[SessionInfo], **READ)
def list_sessions(user: CurrentUser, ctx: Ctx, session: DB) -> list[SessionInfo]:
    now = utcnow()
    idle = timedelta(minutes=ctx.settings.session_idle_minutes)
    rows = session.execute(
        select(AuthSession, Device)
        .outerjoin(Device, Device.id == AuthSession.device_id)
        .where(
            AuthSession.user_id == user.user.id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
            AuthSession.last_seen_at > now - idle,  # lapsed unused (the idle timeout)
        )
        .order_by(AuthSession.last_seen_at.desc())
    ).all()
    return [
        SessionInfo(
            id=a.id,
            current=a.id == user.session_id,
            method=a.method,
            device=DeviceOut.model_validate(d, from_attributes=True) if d else None,
            login_ip=a.login_ip,
            created_at=a.created_at,
            last_seen_at=a.last_seen_at,
            expires_at=a.expires_at,
        )
        for a, d in rows
    ]


@router.delete("/me/sessions/{session_id}", status_code=204, **WRITE)
def revoke_session(session_id: str, user: CurrentUser, session: DB) -> Response:
    if not signin.revoke_sessions(session, user.user.id, only=session_id):
        raise NotFound("找不到该登录会话", code="session_not_found")
    audit.user_action(
        session, user.user.id, "session.revoked", ["auth_sessions.revoked_at"], purpose="account"
    )
    return Response(status_code=204)


@router.delete("/me/sessions", status_code=204, **WRITE)
def revoke_all_sessions(user: AnyUser, session: DB) -> Response:
    """Sign out everywhere, this device included."""
    signin.revoke_sessions(session, user.user.id)
    audit.user_action(
        session, user.user.id, "sessions.revoked_all", ["auth_sessions.revoked_at"], purpose="account"
    )
    return Response(status_code=204)


@router.get("/me/devices", response_model=list[DeviceOut], **READ)
def list_devices(user: CurrentUser, session: DB) -> list[DeviceOut]:
    rows = session.scalars(
        select(Device).where(Device.user_id == user.user.id).order_by(Device.last_seen_at.desc())
    )
    return [DeviceOut.model_validate(d, from_attributes=True) for d in rows]


@router.patch("/me", response_model=MeOut, **WRITE)
def patch_me(body: MePatch, user: AgreedUser, ctx: Ctx, session: DB) -> MeOut:
    profile.update_profile(ctx, session, user.user, body)
    session.flush()
    return profile.me_out(ctx, session, user.user, ctx.policy.current(session).version)


@router.put("/me/password", status_code=204, **WRITE)
def set_password(body: PasswordSet, user: StepUpCurrentUser, session: DB) -> Response:
    signin.set_password(session, user.user, body.password, body.current_password)
    if body.sign_out_others:
        signin.revoke_sessions(session, user.user.id, keep=user.session_id)
        audit.user_action(
            session, user.user.id, "sessions.revoked_others", ["auth_sessions.revoked_at"], purpose="account"
        )
    return Response(status_code=204)


@router.post("/me/step-up/sms-codes", status_code=202, response_model=SmsCodeSent, **WRITE)
def request_step_up_code(request: Request, user: AnyUser, ctx: Ctx, session: DB) -> SmsCodeSent:
    """A code to the account's own phone (reachable before agreeing to a new policy, like the data
    rights that need it)."""
    stepup.send_code(ctx, session, user, client_ip(request))
    return SmsCodeSent(
        expires_in=ctx.settings.sms_code_ttl_seconds, resend_after=ctx.settings.sms_resend_seconds
    )


@router.post("/me/step-up", response_model=StepUpOut, **WRITE)
def step_up(body: StepUpIn, request: Request, user: AnyUser, ctx: Ctx, session: DB) -> StepUpOut:
    return StepUpOut(verified_until=stepup.verify(ctx, session, user, body.code, client_ip(request)))


@router.get("/me/privacy-settings", response_model=PrivacySettings, **READ)
def get_privacy_settings(user: CurrentUser, session: DB) -> PrivacySettings:
    return profile.privacy_settings(session, user.user)


@router.patch("/me/privacy-settings", response_model=PrivacySettings, **WRITE)
def patch_privacy_settings(body: PrivacySettingsPatch, user: CurrentUser, session: DB) -> PrivacySettings:
    profile.update_privacy_settings(session, user.user, body, user.policy_version)
    return profile.privacy_settings(session, user.user)


@router.get("/me/real-name", response_model=RealNameOut | None, **READ)
def get_real_name(user: CurrentUser, ctx: Ctx, session: DB) -> RealNameOut | None:
    return profile.real_name_out(ctx, session, user.user.id)


@router.post("/me/real-name", status_code=201, response_model=RealNameOut, **WRITE)
def submit_real_name(body: RealNameSubmit, user: RealNameStepUp, ctx: Ctx, session: DB) -> RealNameOut:
    profile.submit_real_name(ctx, session, user.user, body.name, body.id_number)
    out = profile.real_name_out(ctx, session, user.user.id)
    assert out is not None
    return out


@router.get("/users/{user_id}", response_model=PublicProfile, response_model_exclude_unset=True, **READ)
def get_public_profile(user_id: str, _: CurrentUser, ctx: Ctx, session: DB) -> PublicProfile:
    return profile.public_profile(ctx, session, user_id)
