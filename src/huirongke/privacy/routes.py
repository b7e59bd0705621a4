"""Policy endpoints (P01, P24, P41). Reading the policy needs no account."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from huirongke.accounts.deps import DB, READ, WRITE, AnyUser, Ctx, CurrentUser, UnitRoute
from huirongke.kit.schemas import Flag
from huirongke.privacy import consent, lists
from huirongke.privacy.purposes import PURPOSES

router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"], route_class=UnitRoute)


class PolicyOut(BaseModel):
    version: int
    published_at: datetime
    text: str
    changes: str
    #: Whether this version asks everyone to agree again (False: only contact facts were updated).
    requires_consent: bool
    #: The latest version that asked for agreement: agreeing to it or to any later version is enough.
    consent_version: int


class AgreementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int


class AgreementOut(BaseModel):
    version: int
    agreed_at: datetime
    channel: str


@router.get("/policy", response_model=PolicyOut, **READ)
def get_policy(ctx: Ctx, session: DB) -> PolicyOut:
    p = ctx.policy.current(session)
    return PolicyOut(
        version=p.version,
        published_at=p.published_at,
        text=p.text,
        changes=p.changes,
        requires_consent=p.requires_consent,
        consent_version=p.consent_version,
    )


@router.post("/policy-agreements", status_code=201, response_model=AgreementOut, **WRITE)
def agree(body: AgreementIn, user: AnyUser, ctx: Ctx, session: DB) -> AgreementOut:
    row = ctx.policy.agree(session, user.user.id, body.version)
    return AgreementOut(version=row.version, agreed_at=row.agreed_at, channel=row.channel)


@router.get("/policy-agreements", response_model=list[AgreementOut], **READ)
def agreements(user: AnyUser, ctx: Ctx, session: DB) -> list[AgreementOut]:
    return [
        AgreementOut(version=a.version, agreed_at=a.agreed_at, channel=a.channel)
        for a in ctx.policy.agreements(session, user.user.id)
    ]


class ConsentOut(BaseModel):
    purpose: str
    granted: bool
    updated_at: datetime | None
    label: str
    description: str
    basis: str


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    granted: Flag  # consent is a clear true or false, never "yes" or 1


def _consent_out(s: consent.ConsentState) -> ConsentOut:
    return ConsentOut(
        purpose=s.purpose.key,
        granted=s.granted,
        updated_at=s.updated_at,
        label=s.purpose.label,
        description=s.purpose.description,
        basis=s.purpose.basis,
    )


@router.get("/consents", response_model=list[ConsentOut], **READ)
def list_consents(user: CurrentUser, session: DB) -> list[ConsentOut]:
    return [_consent_out(s) for s in consent.states(session, user.user.id)]


@router.put("/consents/{purpose}", response_model=ConsentOut, **WRITE)
def put_consent(purpose: str, body: ConsentIn, user: CurrentUser, ctx: Ctx, session: DB) -> ConsentOut:
    version = ctx.policy.current(session).version
    return _consent_out(consent.set_consent(session, user.user.id, purpose, body.granted, version))


class PermissionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: Literal["granted", "denied", "revoked"]


class PermissionOut(BaseModel):
    permission: str
    label: str
    state: str
    may_ask: bool
    ask_after: datetime | None


def _perm_out(p: consent.PermissionState) -> PermissionOut:
    return PermissionOut(
        permission=p.permission,
        label=consent.PERMISSIONS[p.permission],
        state=p.state,
        may_ask=p.may_ask,
        ask_after=p.ask_after,
    )


@router.get("/permissions", response_model=list[PermissionOut], **READ)
def list_permissions(user: CurrentUser, session: DB) -> list[PermissionOut]:
    return [_perm_out(consent.permission_state(session, user.user.id, p)) for p in consent.PERMISSIONS]


@router.get("/permissions/{permission}", response_model=PermissionOut, **READ)
def get_permission(permission: str, user: CurrentUser, session: DB) -> PermissionOut:
    """Whether the client may show the OS prompt now (never within 48 h of a refusal, R03)."""
    return _perm_out(consent.permission_state(session, user.user.id, permission))


@router.post("/permissions/{permission}/events", status_code=201, response_model=PermissionOut, **WRITE)
def report_permission(permission: str, body: PermissionIn, user: CurrentUser, session: DB) -> PermissionOut:
    return _perm_out(consent.record_permission(session, user.user.id, permission, body.event))


@router.get("/collection-list")
def get_collection_list(ctx: Ctx) -> dict[str, Any]:
    """已收集个人信息清单, generated from the data map (R01)."""
    return {"title": "已收集个人信息清单", "items": lists.collection_list(ctx.settings)}


@router.get("/sharing-list")
def get_sharing_list(ctx: Ctx) -> dict[str, Any]:
    """第三方信息共享清单, generated from the configured providers' declarations (R01)."""
    return {"title": "第三方信息共享清单", "items": lists.sharing_list(ctx)}


@router.get("/purposes")
def get_purposes() -> list[dict[str, Any]]:
    """The purposes catalogue with each legal basis (P13, P28)."""
    return [
        {
            "purpose": p.key,
            "label": p.label,
            "basis": p.basis,
            "description": p.description,
            "needs_consent": p.needs_consent,
        }
        for p in PURPOSES.values()
    ]
