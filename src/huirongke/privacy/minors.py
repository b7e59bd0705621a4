"""Minors (P42, R09): users under 18 are restricted until a guardian's consent is verified by an SMS
code sent to the guardian's phone. The guardian can then ask for the child's data or its deletion."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from huirongke.accounts import sealed_profile
from huirongke.accounts.identity import ADULT_AGE, age_on, restricted_on
from huirongke.accounts.models import User
from huirongke.accounts.signin import check_code, parse_phone, request_code
from huirongke.context import AppContext
from huirongke.kit.clock import china_today, utcnow
from huirongke.kit.crypto import sha256_hex
from huirongke.kit.errors import Invalid, NotFound, Unauthorized
from huirongke.privacy import audit, erasure, export
from huirongke.privacy.models import DataExport, GuardianConsent


def _birthday(ctx: AppContext, session: Session, user: User) -> date | None:
    return sealed_profile.read(ctx, session, user, ("birthday",)).birthday


def is_minor(ctx: AppContext, session: Session, user: User) -> bool:
    born = _birthday(ctx, session, user)
    return born is not None and age_on(born, china_today()) < ADULT_AGE


def restricted(ctx: AppContext, session: Session, user: User) -> bool:
    return restricted_on(_birthday(ctx, session, user), user.guardian_consent_at, china_today())


def send_guardian_code(ctx: AppContext, session: Session, user: User, raw_phone: str, ip: str | None) -> None:
    phone = parse_phone(raw_phone)
    if ctx.phone_bidx(phone) == user.phone_bidx:
        raise Invalid("请填写监护人本人的手机号码，而不是您自己的", code="guardian_phone_is_own")
    request_code(ctx, session, phone, ip, purpose="guardian")


def confirm_guardian(
    ctx: AppContext, session: Session, user: User, raw_phone: str, code: str
) -> GuardianConsent:
    phone = parse_phone(raw_phone)
    bidx = ctx.phone_bidx(phone)
    if bidx == user.phone_bidx:
        raise Invalid("请填写监护人本人的手机号码，而不是您自己的", code="guardian_phone_is_own")
    check_code(ctx, session, bidx, code, purpose="guardian")
    cipher = ctx.keys.cipher(session, user.id)
    row = GuardianConsent(user_id=user.id, guardian_phone_bidx=bidx, consented_at=utcnow())
    row.guardian_phone_enc = cipher.encrypt("guardian_consents.guardian_phone_enc", phone)
    session.add(row)
    user.guardian_consent_at = row.consented_at
    session.flush()
    audit.record(
        session,
        "guardian.consented",
        actor_type="guardian",
        actor_id=None,
        subject_id=user.id,
        fields=["guardian_consents.guardian_phone_enc"],
        purpose="account",
    )
    return row


def _children(session: Session, bidx: str) -> list[User]:
    q = (
        select(User)
        .join(GuardianConsent, GuardianConsent.user_id == User.id)
        .where(
            GuardianConsent.guardian_phone_bidx == bidx,
            GuardianConsent.revoked_at.is_(None),
            User.status == "active",
        )
    )
    return list(session.scalars(q).unique())


def send_code_to_known_guardian(ctx: AppContext, session: Session, raw_phone: str, ip: str | None) -> None:
    """Sends a code only to a phone on file as a guardian; the answer is the same either way."""
    phone = parse_phone(raw_phone)
    if _children(session, ctx.phone_bidx(phone)):
        request_code(ctx, session, phone, ip, purpose="guardian")


@dataclass
class GuardianResult:
    child_id: str
    nickname: str | None
    export_id: str | None = None
    download_token: str | None = None
    erase_after: str | None = None


def guardian_request(
    ctx: AppContext, session: Session, raw_phone: str, code: str, kind: str
) -> list[GuardianResult]:
    phone = parse_phone(raw_phone)
    bidx = ctx.phone_bidx(phone)
    check_code(ctx, session, bidx, code, purpose="guardian")
    children = _children(session, bidx)
    if not children:
        raise NotFound("没有与该号码关联的未成年人账号", code="no_children")
    results = []
    for child in children:
        r = GuardianResult(child.id, sealed_profile.read(ctx, session, child, ("nickname",)).nickname)
        if kind == "export":
            row = export.request_export(ctx, session, child.id, requested_by="guardian")
            token = secrets.token_urlsafe(24)
            row.guardian_token_hash = sha256_hex(token)
            r.export_id, r.download_token = row.id, token
        else:
            c = erasure.request_cancellation(ctx, session, child, actor="guardian")
            r.erase_after = c.erase_after.isoformat()
        results.append(r)
    return results


def guardian_export(session: Session, export_id: str, token: str) -> DataExport:
    row = session.get(DataExport, export_id)
    if (
        row is None
        or not row.guardian_token_hash
        or not secrets.compare_digest(row.guardian_token_hash, sha256_hex(token))
    ):
        raise Unauthorized("下载凭证无效", code="invalid_guardian_token")
    return row
