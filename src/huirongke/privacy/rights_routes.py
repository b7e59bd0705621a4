"""Data-rights endpoints (R05, R06, P36). Reachable before agreeing to a new policy version. Starting an
export or a cancellation needs a recent step-up verification (`accounts/stepup.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel

from huirongke.accounts.deps import AUDITED_READ, DB, READ, WRITE, AnyUser, Ctx, UnitRoute
from huirongke.accounts.stepup import StepUpAnyUser
from huirongke.kit.clock import utcnow
from huirongke.privacy import erasure, export
from huirongke.privacy.models import AccountCancellation, DataExport

router = APIRouter(prefix="/api/v1/me", tags=["data-rights"], route_class=UnitRoute)


class ExportOut(BaseModel):
    id: str
    status: Literal["pending", "running", "ready", "failed"]
    progress: int
    download_url: str | None
    created_at: datetime
    expires_at: datetime | None
    size: int | None
    expired: bool = False


def _export_out(row: DataExport) -> ExportOut:
    expired = row.expires_at is not None and row.expires_at <= utcnow()
    ready = row.status == "ready" and not expired
    return ExportOut(
        id=row.id,
        status=row.status,
        progress=row.progress,
        download_url=f"/api/v1/me/data-exports/{row.id}/download" if ready else None,
        created_at=row.created_at,
        expires_at=row.expires_at,
        size=row.size,
        expired=expired,
    )


@router.post("/data-exports", status_code=202, response_model=ExportOut, **WRITE)
def create_export(user: StepUpAnyUser, ctx: Ctx, session: DB) -> ExportOut:
    return _export_out(export.request_export(ctx, session, user.user.id))


@router.get("/data-exports", response_model=list[ExportOut], **READ)
def list_exports(user: AnyUser, session: DB) -> list[ExportOut]:
    from sqlalchemy import select

    rows = session.scalars(
        select(DataExport)
        .where(DataExport.user_id == user.user.id)
        .order_by(DataExport.created_at.desc())
        .limit(10)
    )
    return [_export_out(r) for r in rows]


@router.get("/data-exports/{export_id}", response_model=ExportOut, **READ)
def get_export(export_id: str, user: AnyUser, session: DB) -> ExportOut:
    return _export_out(export.get_export(session, user.user.id, export_id))


@router.get(
    "/data-exports/{export_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
    **AUDITED_READ,
)
def download_export(export_id: str, user: AnyUser, ctx: Ctx, session: DB) -> Response:
    row = export.get_export(session, user.user.id, export_id)
    data = export.open_archive(ctx, session, row)
    name = f"huirongke-export-{row.created_at:%Y%m%d}.zip"
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


class CancellationOut(BaseModel):
    status: Literal["cooling_off", "withdrawn", "erasing", "erased"]
    erase_after: datetime
    requested_at: datetime
    cooling_off_days: int


def _cancel_out(ctx: Ctx, row: AccountCancellation) -> CancellationOut:
    return CancellationOut(
        status=row.status,
        erase_after=row.erase_after,
        requested_at=row.requested_at,
        cooling_off_days=ctx.settings.cancellation_cooling_off_days,
    )


@router.post("/account-cancellation", status_code=202, response_model=CancellationOut, **WRITE)
def cancel_account(user: StepUpAnyUser, ctx: Ctx, session: DB) -> CancellationOut:
    return _cancel_out(ctx, erasure.request_cancellation(ctx, session, user.user))


@router.get("/account-cancellation", response_model=CancellationOut | None, **READ)
def get_cancellation(user: AnyUser, ctx: Ctx, session: DB) -> CancellationOut | None:
    row = erasure.current_cancellation(session, user.user.id)
    return _cancel_out(ctx, row) if row else None


@router.delete("/account-cancellation", status_code=204, **WRITE)
def withdraw_cancellation(user: AnyUser, session: DB) -> Response:
    erasure.withdraw_cancellation(session, user.user.id)
    return Response(status_code=204)
