"""Guardian consent for minors (P42, R09), and the guardian's own requests for the child's data."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from huirongke.accounts.deps import AUDITED_READ, DB, READ, WRITE, AgreedUser, Ctx, client_ip
from huirongke.accounts.stepup import StepUpAgreedUser
from huirongke.context import AppContext
from huirongke.privacy import export, minors
from huirongke.privacy.rights_routes import ExportOut, _export_out

router = APIRouter(prefix="/api/v1", tags=["minors"])


class GuardianPhoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    guardian_phone: str = Field(max_length=32)


class GuardianConfirmIn(GuardianPhoneIn):
    code: str = Field(min_length=4, max_length=8)


class GuardianStatus(BaseModel):
    minor: bool
    restricted: bool
    guardian_consented_at: str | None


class GuardianRequestIn(GuardianConfirmIn):
    kind: Literal["export", "deletion"]


class GuardianChildResult(BaseModel):
    child_id: str
    nickname: str | None
    export_id: str | None
    download_token: str | None
    erase_after: str | None


def _status(user: AgreedUser, ctx: AppContext, session: Session) -> GuardianStatus:
    u = user.user
    return GuardianStatus(
        minor=minors.is_minor(ctx, session, u),
        restricted=minors.restricted(ctx, session, u),
        guardian_consented_at=u.guardian_consent_at.isoformat() if u.guardian_consent_at else None,
    )


@router.get("/me/guardian", response_model=GuardianStatus, **READ)
def guardian_status(user: AgreedUser, ctx: Ctx, session: DB) -> GuardianStatus:
    return _status(user, ctx, session)


@router.post("/me/guardian/sms-codes", status_code=202, **WRITE)
def guardian_code(
    body: GuardianPhoneIn, request: Request, user: StepUpAgreedUser, ctx: Ctx, session: DB
) -> dict[str, int]:
    minors.send_guardian_code(ctx, session, user.user, body.guardian_phone, client_ip(request))
    return {"expires_in": ctx.settings.sms_code_ttl_seconds, "resend_after": ctx.settings.sms_resend_seconds}


@router.post("/me/guardian/consent", status_code=201, response_model=GuardianStatus, **WRITE)
def guardian_consent(body: GuardianConfirmIn, user: AgreedUser, ctx: Ctx, session: DB) -> GuardianStatus:
    minors.confirm_guardian(ctx, session, user.user, body.guardian_phone, body.code)
    return _status(user, ctx, session)


@router.post("/guardian/sms-codes", status_code=202, **WRITE)
def known_guardian_code(body: GuardianPhoneIn, request: Request, ctx: Ctx, session: DB) -> dict[str, int]:
    """For a guardian without an account: a code arrives only if the number is on file as a guardian."""
    minors.send_code_to_known_guardian(ctx, session, body.guardian_phone, client_ip(request))
    return {"expires_in": ctx.settings.sms_code_ttl_seconds, "resend_after": ctx.settings.sms_resend_seconds}


@router.post("/guardian/requests", status_code=202, response_model=list[GuardianChildResult], **WRITE)
def guardian_request(body: GuardianRequestIn, ctx: Ctx, session: DB) -> list[GuardianChildResult]:
    results = minors.guardian_request(ctx, session, body.guardian_phone, body.code, body.kind)
    return [GuardianChildResult(**r.__dict__) for r in results]


GuardianToken = Annotated[str, Header(alias="X-Guardian-Token", max_length=64)]


@router.get("/guardian/exports/{export_id}", response_model=ExportOut, **READ)
def guardian_export_status(export_id: str, token: GuardianToken, session: DB) -> ExportOut:
    out = _export_out(minors.guardian_export(session, export_id, token))
    if out.download_url:
        out.download_url = f"/api/v1/guardian/exports/{export_id}/download"
    return out


@router.get(
    "/guardian/exports/{export_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "the zip archive"}},
    **AUDITED_READ,
)
def guardian_export_download(export_id: str, token: GuardianToken, ctx: Ctx, session: DB) -> Response:
    row = minors.guardian_export(session, export_id, token)
    data = export.open_archive(ctx, session, row, actor="guardian")
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": 'attachment; filename="huirongke-child-export.zip"',
            "Cache-Control": "no-store",
        },
    )
