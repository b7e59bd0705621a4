"""Guardian consent for minors (P42, R09), and the guardian's own requests for the child's data."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from huirongke.accounts.deps import AUDITED_READ, DB, READ, WRITE, AgreedUser, Ctx, UnitRoute, client_ip
from huirongke.accounts.schemas import ChallengeAnswer
from huirongke.accounts.stepup import StepUpAgreedUser
from huirongke.context import AppContext
from huirongke.kit.challenge import Answer
from huirongke.privacy import export, minors
from huirongke.privacy.rights_routes import ExportOut, _export_out

router = APIRouter(prefix="/api/v1", tags=["minors"], route_class=UnitRoute)


class GuardianPhoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    guardian_phone: str = Field(max_length=32)


class GuardianCodeIn(GuardianPhoneIn):
    #: The answer to the challenge a previous 429 `challenge_required` gave (docs/abuse.md).
    challenge: ChallengeAnswer | None = None


class ChallengeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge: ChallengeAnswer | None = None


def _answer(body: GuardianCodeIn | ChallengeIn | None) -> Answer | None:
    c = body.challenge if body else None
    return Answer(c.id, c.solution) if c else None


class GuardianConfirmIn(GuardianPhoneIn):
    code: str = Field(min_length=4, max_length=8)


class GuardianStatus(BaseModel):
    minor: bool
    restricted: bool
    guardian_consented_at: str | None
    #: The linked guardian's number, masked (138****8000), and when it was linked; null when none is.
    guardian_phone: str | None = None
    guardian_linked_at: str | None = None
    #: The guardian's powers hold (a guardian is linked and the user is under 18).
    guardian_active: bool = False
    #: The 18th birthday, when the restriction and the guardian's powers end by themselves.
    guardian_until: date | None = None
    #: Unlinking needs a code sent to the guardian (`POST /me/guardian/revocation/sms-codes`).
    revocation_needs_guardian: bool = False


class GuardianRevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    #: The code sent to the guardian's phone; needed while the user is under 18.
    code: str | None = Field(default=None, min_length=4, max_length=8)


class GuardianRequestIn(GuardianConfirmIn):
    kind: Literal["export", "deletion"]


class GuardianChildResult(BaseModel):
    child_id: str
    nickname: str | None
    export_id: str | None
    download_token: str | None
    erase_after: str | None


def _status(user: AgreedUser, ctx: AppContext, session: Session) -> GuardianStatus:
    return GuardianStatus(**asdict(minors.view(ctx, session, user.user)))


@router.get("/me/guardian", response_model=GuardianStatus, **READ)
def guardian_status(user: AgreedUser, ctx: Ctx, session: DB) -> GuardianStatus:
    return _status(user, ctx, session)


@router.post("/me/guardian/sms-codes", status_code=202, **WRITE)
def guardian_code(
    body: GuardianCodeIn, request: Request, user: StepUpAgreedUser, ctx: Ctx, session: DB
) -> dict[str, int]:
    minors.send_guardian_code(ctx, session, user.user, body.guardian_phone, client_ip(request), _answer(body))
    return {"expires_in": ctx.settings.sms_code_ttl_seconds, "resend_after": ctx.settings.sms_resend_seconds}


@router.post("/me/guardian/consent", status_code=201, response_model=GuardianStatus, **WRITE)
def guardian_consent(body: GuardianConfirmIn, user: AgreedUser, ctx: Ctx, session: DB) -> GuardianStatus:
    minors.confirm_guardian(ctx, session, user.user, body.guardian_phone, body.code)
    return _status(user, ctx, session)


@router.post("/me/guardian/revocation/sms-codes", status_code=202, **WRITE)
def guardian_revocation_code(
    request: Request, user: AgreedUser, ctx: Ctx, session: DB, body: ChallengeIn | None = None
) -> dict[str, int]:
    """A minor asks to unlink their guardian: a code goes to the guardian's phone."""
    minors.send_revocation_code(ctx, session, user.user, client_ip(request), _answer(body))
    return {"expires_in": ctx.settings.sms_code_ttl_seconds, "resend_after": ctx.settings.sms_resend_seconds}


@router.delete("/me/guardian", status_code=204, **WRITE)
def guardian_revoke(
    user: AgreedUser, ctx: Ctx, session: DB, body: GuardianRevokeIn | None = None
) -> Response:
    """Unlink the guardian: with the guardian's code while under 18, at will once an adult."""
    minors.revoke(ctx, session, user.user, body.code if body else None)
    return Response(status_code=204)


@router.post("/guardian/sms-codes", status_code=202, **WRITE)
def known_guardian_code(body: GuardianCodeIn, request: Request, ctx: Ctx, session: DB) -> dict[str, int]:
    """For a guardian without an account: the same answer and work for any number; a code arrives only
    if the number is the linked guardian of a minor."""
    minors.send_code_to_known_guardian(ctx, session, body.guardian_phone, client_ip(request), _answer(body))
    return {"expires_in": ctx.settings.sms_code_ttl_seconds, "resend_after": ctx.settings.sms_resend_seconds}


@router.post("/guardian/requests", status_code=202, response_model=list[GuardianChildResult], **WRITE)
def guardian_request(body: GuardianRequestIn, ctx: Ctx, session: DB) -> list[GuardianChildResult]:
    results = minors.guardian_request(ctx, session, body.guardian_phone, body.code, body.kind)
    return [GuardianChildResult(**r.__dict__) for r in results]


#: Optional in the schema so that a missing token is 401 (no credentials), not a 422.
GuardianToken = Annotated[str | None, Header(alias="X-Guardian-Token")]


@router.get("/guardian/exports/{export_id}", response_model=ExportOut, **READ)
def guardian_export_status(export_id: str, ctx: Ctx, session: DB, token: GuardianToken = None) -> ExportOut:
    out = _export_out(minors.guardian_export(ctx, session, export_id, token))
    if out.download_url:
        out.download_url = f"/api/v1/guardian/exports/{export_id}/download"
    return out


@router.get(
    "/guardian/exports/{export_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "the zip archive"}},
    **AUDITED_READ,
)
def guardian_export_download(export_id: str, ctx: Ctx, session: DB, token: GuardianToken = None) -> Response:
    row = minors.guardian_export(ctx, session, export_id, token)
    data = export.open_archive(ctx, session, row, actor="guardian")
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": 'attachment; filename="huirongke-child-export.zip"',
            "Cache-Control": "no-store",
        },
    )
