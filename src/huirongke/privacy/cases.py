"""Requests handled by people (P34, P35, P37, R05, R14).

A case is opened by the user, confirmed with an SMS code to their own phone (identity
verification), and must be answered by its deadline: the earlier of 15 calendar days (the policy's
promise, "验证你的用户身份后的15天内予以回复") and 15 PRC working days (R05) after the day of that
verification in Beijing. A refusal states its reasons and tells the user they may go to court.
"""

from __future__ import annotations

import contextlib
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from huirongke.accounts.models import User
from huirongke.accounts.signin import check_code, request_code
from huirongke.context import AppContext
from huirongke.kit import workdays
from huirongke.kit.clock import china_today, utcnow
from huirongke.kit.errors import AppError, Conflict, Invalid, NotFound, RateLimited
from huirongke.privacy import audit
from huirongke.privacy.models import CaseEvent, PrivacyCase

#: The policy's reply period in calendar days, and R05's in PRC working days.
DEADLINE_DAYS = 15
DEADLINE_WORKDAYS = 15
KINDS = {
    "deletion": "删除个人信息申请",
    "correction": "更正个人信息申请",
    "complaint": "投诉举报",
    "contact": "联系我们",
}
#: P34: the four grounds on which the policy lets users ask for deletion.
DELETION_GROUNDS = {
    "unlawful_processing": "处理个人信息的行为违反法律法规",
    "no_consent": "收集、使用个人信息未征得同意",
    "breach_of_agreement": "处理个人信息的行为违反了与用户的约定",
    "service_ended": "汇容客终止服务及运营",
}
STATUS_LABELS = {
    "awaiting_verification": "待验证身份",
    "open": "处理中",
    "resolved": "已办结",
    "refused": "不予处理",
}
COURT_NOTICE = "如您对处理结果不满意，可以依法向有管辖权的人民法院提起诉讼。"


def reply_deadline(calendar: workdays.WorkdayCalendar, verified_on: date) -> date:
    """The earlier of 15 calendar days and 15 working days after `verified_on` (that day not counted).

    Fifteen working days never pass in fewer than fifteen calendar days, so today the calendar cap
    always decides; it also keeps the deadline on time in a year the calendar has no data for.
    """
    return min(
        verified_on + timedelta(days=DEADLINE_DAYS),
        calendar.add_workdays(verified_on, DEADLINE_WORKDAYS),
    )


def _event(session: Session, case: PrivacyCase, actor: str, note: str | None = None) -> None:
    session.add(CaseEvent(case_id=case.id, status=case.status, actor=actor, note=note, at=utcnow()))


def open_case(
    ctx: AppContext,
    session: Session,
    user: User,
    kind: str,
    description: str,
    ground: str | None = None,
    ip: str | None = None,
) -> PrivacyCase:
    if kind not in KINDS:
        raise Invalid("不支持的申请类型", code="invalid_case_kind")
    if kind == "deletion" and ground not in DELETION_GROUNDS:
        raise Invalid(
            "删除申请需选择一项理由",
            code="invalid_deletion_ground",
            details={"grounds": list(DELETION_GROUNDS)},
        )
    if kind != "deletion":
        ground = None
    description = description.strip()
    if not 5 <= len(description) <= 2000:
        raise Invalid("请用 5–2000 个字描述您的问题", code="invalid_description")
    cipher = ctx.keys.cipher(session, user.id)
    case = PrivacyCase(
        user_id=user.id, kind=kind, ground=ground, status="awaiting_verification", created_at=utcnow()
    )
    session.add(case)
    session.flush()
    case.description_enc = cipher.encrypt("privacy_cases.description_enc", description)
    _event(session, case, "user")
    audit.user_action(session, user.id, f"case.{kind}.opened", ["privacy_cases.description_enc"], "account")
    # If a code went out a moment ago the case still stands; the user asks again after the wait.
    with contextlib.suppress(RateLimited):
        send_verification(ctx, session, user, ip)
    return case


def send_verification(ctx: AppContext, session: Session, user: User, ip: str | None) -> None:
    from huirongke.accounts.profile import decrypt_phone

    phone = decrypt_phone(ctx, session, user)
    if phone is None:
        raise AppError("账号没有可用的手机号码", code="phone_missing", status=409)
    request_code(ctx, session, phone, ip, purpose="case", owner=True)


def verify_case(ctx: AppContext, session: Session, user: User, case_id: str, code: str) -> PrivacyCase:
    case = get_case(session, user.id, case_id)
    if case.status != "awaiting_verification":
        raise Conflict("该申请已完成身份验证", code="case_already_verified")
    assert user.phone_bidx
    check_code(ctx, session, user.phone_bidx, code, purpose="case")
    now = utcnow()
    case.status, case.verified_at = "open", now
    audit.user_action(
        session, user.id, "case.verified", ["privacy_cases.status", "privacy_cases.verified_at"], "account"
    )
    case.deadline = reply_deadline(workdays.load(ctx.settings.workday_calendar_file), china_today())
    _event(session, case, "user", "身份已验证")
    return case


def get_case(session: Session, user_id: str, case_id: str) -> PrivacyCase:
    case = session.scalar(
        select(PrivacyCase).where(PrivacyCase.id == case_id, PrivacyCase.user_id == user_id)
    )
    if case is None:
        raise NotFound("找不到该申请", code="case_not_found")
    return case


def user_cases(session: Session, user_id: str) -> list[PrivacyCase]:
    q = select(PrivacyCase).where(PrivacyCase.user_id == user_id).order_by(PrivacyCase.created_at.desc())
    return list(session.scalars(q))


def history(session: Session, case_id: str) -> list[CaseEvent]:
    return list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.at)))


# Staff actions (CLI now, the console later) --------------------------------------------------------


def staff_queue(session: Session) -> list[PrivacyCase]:
    q = select(PrivacyCase).where(PrivacyCase.status == "open").order_by(PrivacyCase.deadline)
    return list(session.scalars(q))


def _open_for_staff(session: Session, case_id: str) -> PrivacyCase:
    case = session.get(PrivacyCase, case_id)
    if case is None:
        raise NotFound("找不到该申请", code="case_not_found")
    if case.status != "open":
        raise Conflict(f"该申请当前状态为「{STATUS_LABELS[case.status]}」，不能处理", code="case_not_open")
    return case


def read_description(ctx: AppContext, session: Session, case: PrivacyCase, staff: str) -> str:
    """Staff reading the user's words is itself a logged access to personal data (P19)."""
    audit.staff_action(
        session, staff, case.user_id, "case.description.read", ["privacy_cases.description_enc"], "account"
    )
    if case.description_enc is None:
        return ""
    return ctx.keys.cipher(session, case.user_id).decrypt(
        "privacy_cases.description_enc", case.description_enc
    )


def resolve(ctx: AppContext, session: Session, case_id: str, staff: str, resolution: str) -> PrivacyCase:
    case = _open_for_staff(session, case_id)
    if not resolution.strip():
        raise Invalid("请填写处理结果", code="resolution_required")
    case.resolution_enc = ctx.keys.cipher(session, case.user_id).encrypt(
        "privacy_cases.resolution_enc", resolution
    )
    case.status, case.closed_at = "resolved", utcnow()
    _event(session, case, f"staff:{staff}")
    audit.staff_action(session, staff, case.user_id, "case.resolved", ["privacy_cases.status"], "account")
    return case


def refuse(session: Session, case_id: str, staff: str, reason: str) -> PrivacyCase:
    """R14: a refusal must give its reasons; the user is told they may go to court."""
    case = _open_for_staff(session, case_id)
    if len(reason.strip()) < 5:
        raise Invalid("拒绝时必须说明理由", code="refusal_reason_required")
    case.refusal_reason = reason.strip()
    case.status, case.closed_at = "refused", utcnow()
    _event(session, case, f"staff:{staff}", "已告知诉讼权利")
    audit.staff_action(session, staff, case.user_id, "case.refused", ["privacy_cases.status"], "account")
    return case


def overdue(session: Session, today: date | None = None) -> list[PrivacyCase]:
    today = today or china_today()
    q = select(PrivacyCase).where(PrivacyCase.status == "open", PrivacyCase.deadline < today)
    return list(session.scalars(q))
