"""Contact us, complaints, deletion and correction requests (P34, P35, P37). Reachable before agreeing
to a new policy version."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from huirongke.accounts.deps import DB, READ, WRITE, AnyUser, Ctx, UnitRoute, client_ip
from huirongke.context import AppContext
from huirongke.privacy import cases
from huirongke.privacy.models import PrivacyCase

router = APIRouter(prefix="/api/v1/me/cases", tags=["data-rights"], route_class=UnitRoute)
meta_router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"], route_class=UnitRoute)


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    kind: Literal["deletion", "correction", "complaint", "contact"]
    description: str = Field(min_length=5, max_length=2000)
    ground: Literal["unlawful_processing", "no_consent", "breach_of_agreement", "service_ended"] | None = None


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=4, max_length=8)


class CaseEventOut(BaseModel):
    status: str
    status_label: str
    at: datetime
    note: str | None


class CaseOut(BaseModel):
    id: str
    kind: str
    kind_label: str
    ground: str | None
    ground_label: str | None
    status: str
    status_label: str
    description: str
    created_at: datetime
    deadline: date | None
    resolution: str | None
    refusal_reason: str | None
    court_notice: str | None
    history: list[CaseEventOut]


def case_out(ctx: AppContext, session: Session, case: PrivacyCase) -> CaseOut:
    cipher = ctx.keys.cipher(session, case.user_id)
    return CaseOut(
        id=case.id,
        kind=case.kind,
        kind_label=cases.KINDS[case.kind],
        ground=case.ground,
        ground_label=cases.DELETION_GROUNDS.get(case.ground or ""),
        status=case.status,
        status_label=cases.STATUS_LABELS[case.status],
        description=cipher.decrypt("privacy_cases.description_enc", case.description_enc)
        if case.description_enc
        else "",
        created_at=case.created_at,
        deadline=case.deadline,
        resolution=cipher.decrypt("privacy_cases.resolution_enc", case.resolution_enc)
        if case.resolution_enc
        else None,
        refusal_reason=case.refusal_reason,
        court_notice=cases.COURT_NOTICE if case.status == "refused" else None,
        history=[
            CaseEventOut(status=e.status, status_label=cases.STATUS_LABELS[e.status], at=e.at, note=e.note)
            for e in cases.history(session, case.id)
        ],
    )


@router.post("", status_code=201, response_model=CaseOut, **WRITE)
def open_case(body: CaseIn, request: Request, user: AnyUser, ctx: Ctx, session: DB) -> CaseOut:
    case = cases.open_case(
        ctx, session, user.user, body.kind, body.description, body.ground, client_ip(request)
    )
    return case_out(ctx, session, case)


@router.get("", response_model=list[CaseOut], **READ)
def list_cases(user: AnyUser, ctx: Ctx, session: DB) -> list[CaseOut]:
    return [case_out(ctx, session, c) for c in cases.user_cases(session, user.user.id)]


@router.get("/{case_id}", response_model=CaseOut, **READ)
def get_case(case_id: str, user: AnyUser, ctx: Ctx, session: DB) -> CaseOut:
    return case_out(ctx, session, cases.get_case(session, user.user.id, case_id))


@router.post("/{case_id}/verification", response_model=CaseOut, **WRITE)
def verify(case_id: str, body: CodeIn, user: AnyUser, ctx: Ctx, session: DB) -> CaseOut:
    return case_out(ctx, session, cases.verify_case(ctx, session, user.user, case_id, body.code))


@router.post("/{case_id}/verification-code", status_code=202, **WRITE)
def resend_code(case_id: str, request: Request, user: AnyUser, ctx: Ctx, session: DB) -> dict[str, int]:
    case = cases.get_case(session, user.user.id, case_id)
    if case.status == "awaiting_verification":
        cases.send_verification(ctx, session, user.user, client_ip(request))
    return {"expires_in": ctx.settings.sms_code_ttl_seconds, "resend_after": ctx.settings.sms_resend_seconds}


@meta_router.get("/case-kinds")
def case_kinds() -> dict[str, dict[str, str]]:
    return {"kinds": cases.KINDS, "deletion_grounds": cases.DELETION_GROUNDS}
