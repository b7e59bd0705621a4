"""Policy endpoints (P01, P24, P41). Reading the policy needs no account."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from huirongke.accounts.deps import DB, AnyUser, Ctx

router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])


class PolicyOut(BaseModel):
    version: int
    published_at: datetime
    text: str
    changes: str


class AgreementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int


class AgreementOut(BaseModel):
    version: int
    agreed_at: datetime
    channel: str


@router.get("/policy", response_model=PolicyOut)
def get_policy(ctx: Ctx, session: DB) -> PolicyOut:
    p = ctx.policy.current(session)
    return PolicyOut(version=p.version, published_at=p.published_at, text=p.text, changes=p.changes)


@router.post("/policy-agreements", status_code=201, response_model=AgreementOut)
def agree(body: AgreementIn, user: AnyUser, ctx: Ctx, session: DB) -> AgreementOut:
    row = ctx.policy.agree(session, user.user.id, body.version)
    return AgreementOut(version=row.version, agreed_at=row.agreed_at, channel=row.channel)


@router.get("/policy-agreements", response_model=list[AgreementOut])
def agreements(user: AnyUser, ctx: Ctx, session: DB) -> list[AgreementOut]:
    return [
        AgreementOut(version=a.version, agreed_at=a.agreed_at, channel=a.channel)
        for a in ctx.policy.agreements(session, user.user.id)
    ]
