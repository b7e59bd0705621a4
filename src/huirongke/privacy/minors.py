"""Minors (P42, R09): users under 18 are restricted until a guardian's consent is verified by an SMS
code sent to the guardian's phone. The guardian can then ask for the child's data or its deletion.

- Only a minor can link a guardian (an adult gets 403 `not_a_minor`), and only one at a time.
- A guardian's powers end on the child's 18th birthday: every check computes the age again
  (`accounts/age.py`), no job has to run.
- The user sees the linked guardian (masked number) and may unlink them: while a minor, only with the
  guardian's agreement (a code sent to the guardian's phone, which the guardian passes on); once an
  adult, at will (the link is stale).
- The endpoints a guardian uses without an account answer alike for every number: the same status,
  body and work (the SMS budgets are checked and spent for any number; only the text is sent to a
  guardian of a minor alone), so they cannot tell who is a guardian.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from huirongke.accounts import age, sealed_profile
from huirongke.accounts.models import User
from huirongke.accounts.signin import check_code, parse_phone, request_code
from huirongke.context import AppContext
from huirongke.kit.challenge import Answer
from huirongke.kit.clock import china_today, utcnow
from huirongke.kit.crypto import sha256_hex
from huirongke.kit.errors import AppError, Conflict, Forbidden, Invalid, NotFound, Unauthorized
from huirongke.kit.phone import mask
from huirongke.privacy import audit, erasure, export
from huirongke.privacy.models import DataExport, GuardianConsent

GUARDIAN_TOKEN_MAX = 64
_PHONE_COLUMN = "guardian_consents.guardian_phone_enc"


# --- the user's age ------------------------------------------------------------------------------


def counted_birthday(ctx: AppContext, session: Session, user: User) -> date | None:
    """The birthday the user's age is counted from (`age.counted_birthday`)."""
    if user.birthday_enc is None and user.birth_month_enc is None:
        return None
    return age.birthday_from_sealed(
        ctx.keys.cipher(session, user.id), user.birthday_enc, user.birth_month_enc
    )


def is_minor(ctx: AppContext, session: Session, user: User) -> bool:
    return age.is_minor_on(counted_birthday(ctx, session, user), china_today())


def restricted(ctx: AppContext, session: Session, user: User) -> bool:
    return age.restricted_on(counted_birthday(ctx, session, user), user.guardian_consent_at, china_today())


# --- the user's side: link, see, unlink ----------------------------------------------------------


def active_link(session: Session, user_id: str) -> GuardianConsent | None:
    return session.scalar(
        select(GuardianConsent)
        .where(GuardianConsent.user_id == user_id, GuardianConsent.revoked_at.is_(None))
        .order_by(GuardianConsent.consented_at.desc())
        .limit(1)
    )


def _may_link(ctx: AppContext, session: Session, user: User, bidx: str) -> None:
    if not is_minor(ctx, session, user):
        raise Forbidden("您已年满 18 周岁，无需也不能关联监护人", code="not_a_minor")
    if bidx == user.phone_bidx:
        raise Invalid("请填写监护人本人的手机号码，而不是您自己的", code="guardian_phone_is_own")
    if active_link(session, user.id) is not None:
        # Linking another guardian would unlink the first without their agreement.
        raise Conflict("您已关联监护人；如需更换，请先在监护人同意下解除关联", code="guardian_already_linked")


def send_guardian_code(
    ctx: AppContext,
    session: Session,
    user: User,
    raw_phone: str,
    ip: str | None,
    challenge: Answer | None = None,
) -> None:
    phone = parse_phone(raw_phone)
    _may_link(ctx, session, user, ctx.phone_bidx(phone))
    request_code(ctx, session, phone, ip, purpose="guardian", challenge=challenge)


def confirm_guardian(
    ctx: AppContext, session: Session, user: User, raw_phone: str, code: str
) -> GuardianConsent:
    phone = parse_phone(raw_phone)
    bidx = ctx.phone_bidx(phone)
    _may_link(ctx, session, user, bidx)
    check_code(ctx, session, bidx, code, purpose="guardian")
    cipher = ctx.keys.cipher(session, user.id)
    row = GuardianConsent(user_id=user.id, guardian_phone_bidx=bidx, consented_at=utcnow())
    row.guardian_phone_enc = cipher.encrypt(_PHONE_COLUMN, phone)
    session.add(row)
    user.guardian_consent_at = row.consented_at
    session.flush()
    audit.record(
        session,
        "guardian.consented",
        actor_type="guardian",
        actor_id=None,
        subject_id=user.id,
        fields=[_PHONE_COLUMN],
        purpose="account",
    )
    return row


@dataclass(frozen=True)
class GuardianView:
    """What `GET /me/guardian` shows the user."""

    minor: bool
    restricted: bool
    guardian_consented_at: str | None
    #: The linked guardian's number, masked (138****8000), and since when; None when none is linked.
    guardian_phone: str | None
    guardian_linked_at: str | None
    #: The guardian's powers hold: linked, and the user is under 18.
    guardian_active: bool
    #: The 18th birthday, when a minor's restriction and a guardian's powers end (None for an adult).
    guardian_until: date | None
    #: Unlinking needs the guardian's code (a minor with a guardian).
    revocation_needs_guardian: bool


def view(ctx: AppContext, session: Session, user: User) -> GuardianView:
    born = counted_birthday(ctx, session, user)
    minor = age.is_minor_on(born, china_today())
    link = active_link(session, user.id)
    phone = None
    if link is not None:
        phone = mask(ctx.keys.cipher(session, user.id).decrypt(_PHONE_COLUMN, link.guardian_phone_enc))
    return GuardianView(
        minor=minor,
        restricted=age.restricted_on(born, user.guardian_consent_at, china_today()),
        guardian_consented_at=user.guardian_consent_at.isoformat() if user.guardian_consent_at else None,
        guardian_phone=phone,
        guardian_linked_at=link.consented_at.isoformat() if link else None,
        guardian_active=minor and link is not None,
        guardian_until=age.adult_from(born) if minor and born else None,
        revocation_needs_guardian=minor and link is not None,
    )


def _linked(session: Session, user: User) -> GuardianConsent:
    link = active_link(session, user.id)
    if link is None:
        raise NotFound("您没有关联监护人", code="guardian_not_linked")
    return link


def send_revocation_code(
    ctx: AppContext, session: Session, user: User, ip: str | None, challenge: Answer | None = None
) -> None:
    """A minor asks to unlink: a code goes to the guardian's phone; the guardian agrees by passing it on."""
    link = _linked(session, user)
    if not is_minor(ctx, session, user):
        raise Conflict(
            "您已年满 18 周岁，可直接解除关联，无需监护人验证码", code="guardian_agreement_not_needed"
        )
    phone = ctx.keys.cipher(session, user.id).decrypt(_PHONE_COLUMN, link.guardian_phone_enc)
    request_code(ctx, session, phone, ip, purpose="guardian_revoke", challenge=challenge)


def revoke(ctx: AppContext, session: Session, user: User, code: str | None) -> None:
    """Unlink the guardian: a minor needs the code sent to the guardian (`send_revocation_code`), and
    is then restricted again until a guardian consents; an adult removes a stale link at will."""
    link = _linked(session, user)
    minor = is_minor(ctx, session, user)
    if minor:
        if not code:
            raise AppError(
                "您未满 18 周岁，解除监护关联需要监护人同意："
                "请先向监护人手机发送验证码，并填写监护人告知您的验证码",
                code="guardian_agreement_required",
                status=403,
            )
        check_code(ctx, session, link.guardian_phone_bidx, code, purpose="guardian_revoke")
    link.revoked_at = utcnow()
    user.guardian_consent_at = None
    user.updated_at = link.revoked_at
    session.flush()
    audit.record(
        session,
        "guardian.revoked",
        # A minor's unlinking is the guardian's decision as much as the user's; the event names both.
        actor_type="guardian" if minor else "user",
        actor_id=None if minor else user.id,
        subject_id=user.id,
        fields=["guardian_consents.revoked_at", "users.guardian_consent_at"],
        purpose="account",
    )


# --- the guardian's side, without an account -----------------------------------------------------


def _children(ctx: AppContext, session: Session, bidx: str) -> list[User]:
    """The accounts this number is the linked guardian of, and which are still under 18."""
    q = (
        select(User)
        .join(GuardianConsent, GuardianConsent.user_id == User.id)
        .where(
            GuardianConsent.guardian_phone_bidx == bidx,
            GuardianConsent.revoked_at.is_(None),
            User.status == "active",
        )
    )
    return [u for u in session.scalars(q).unique() if is_minor(ctx, session, u)]


def send_code_to_known_guardian(
    ctx: AppContext, session: Session, raw_phone: str, ip: str | None, challenge: Answer | None = None
) -> None:
    """The same work and answer for every number (budgets and challenges checked and spent, a code row
    issued); the text goes out only to the guardian of a minor."""
    phone = parse_phone(raw_phone)
    known = bool(_children(ctx, session, ctx.phone_bidx(phone)))
    request_code(ctx, session, phone, ip, purpose="guardian", challenge=challenge, deliver=known)


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
    children = _children(ctx, session, bidx)
    if not children:
        # Only the holder of a code sent to a guardian gets here: the child turned 18 (or unlinked)
        # since the code was sent.
        raise _rights_ended()
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


def _rights_ended() -> AppError:
    return Forbidden(
        "该号码关联的用户已年满 18 周岁或已解除监护关联，监护人不能再代为申请", code="guardian_rights_ended"
    )


def guardian_export(ctx: AppContext, session: Session, export_id: str, token: str | None) -> DataExport:
    """The export a guardian asked for, to its token's holder, while the child is a minor still linked
    to a guardian. No token, or a wrong one, is 401 (the API's convention for missing credentials)."""
    invalid = Unauthorized("下载凭证无效", code="invalid_guardian_token")
    if not token or len(token) > GUARDIAN_TOKEN_MAX:
        raise invalid
    row = session.get(DataExport, export_id)
    if (
        row is None
        or not row.guardian_token_hash
        or not secrets.compare_digest(row.guardian_token_hash, sha256_hex(token))
    ):
        raise invalid
    child = session.get(User, row.user_id)
    if (
        child is None
        or child.status != "active"
        or child.guardian_consent_at is None
        or not is_minor(ctx, session, child)
    ):
        raise _rights_ended()
    return row
