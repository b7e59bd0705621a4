"""The dev outbox endpoint. Mounted only when HRK_ENV=dev; in any other mode the path is a 404."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from huirongke.accounts.deps import DB, READ, Ctx, UnitRoute
from huirongke.accounts.signin import parse_phone
from huirongke.devtools.outbox import DevSmsOutbox

router = APIRouter(prefix="/api/v1/dev", tags=["dev"], route_class=UnitRoute)


class OutboxMessage(BaseModel):
    phone: str
    text: str
    sent_at: datetime


class Outbox(BaseModel):
    messages: list[OutboxMessage]


@router.get("/sms-outbox", response_model=Outbox, **READ)
def sms_outbox(ctx: Ctx, session: DB, phone: str = Query(max_length=32)) -> Outbox:
    e164 = parse_phone(phone)
    rows = session.scalars(
        select(DevSmsOutbox)
        .where(DevSmsOutbox.phone_bidx == ctx.phone_bidx(e164))
        .order_by(DevSmsOutbox.sent_at.desc())
        .limit(50)
    )
    return Outbox(messages=[OutboxMessage(phone=e164, text=r.text, sent_at=r.sent_at) for r in rows])
