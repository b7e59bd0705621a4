"""Profile (P29, P30, P38, P39) and real-name verification (P32)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from huirongke.accounts import age, sealed_profile
from huirongke.accounts.models import RealNameVerification, User
from huirongke.accounts.schemas import (
    MeOut,
    MePatch,
    PrivacySettings,
    PrivacySettingsPatch,
    PublicProfile,
    RealNameOut,
)
from huirongke.context import AppContext
from huirongke.kit import idcard
from huirongke.kit.clock import china_today, utcnow
from huirongke.kit.errors import Conflict, Invalid, NotFound, Unauthorized
from huirongke.kit.phone import mask
from huirongke.media.models import Media
from huirongke.media.service import media_url, owned_image, release
from huirongke.privacy import audit, consent

CANCELLED_NAME = "已注销用户"
_NAME = re.compile(r"^[\u4e00-\u9fff·•A-Za-z ]{2,30}$")


def _clean_text(value: str, field: str) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise Invalid(f"{field}包含不可见字符", code="invalid_text", details={"field": field})
    return value


def decrypt_phone(ctx: AppContext, session: Session, user: User) -> str | None:
    if not user.phone_enc:
        return None
    return ctx.keys.cipher(session, user.id).decrypt("users.phone_enc", user.phone_enc)


def _avatar_url(session: Session, user: User) -> str | None:
    return media_url(session.get(Media, user.avatar_media_id)) if user.avatar_media_id else None


_REAL_NAME = select(RealNameVerification).where(RealNameVerification.user_id == bindparam("user_id"))


def real_name_out(ctx: AppContext, session: Session, user_id: str) -> RealNameOut | None:
    row = session.scalar(_REAL_NAME, {"user_id": user_id})
    if row is None:
        return None
    cipher = ctx.keys.cipher(session, user_id)
    name = cipher.decrypt("real_name_verifications.name_enc", row.name_enc)
    number = cipher.decrypt("real_name_verifications.id_number_enc", row.id_number_enc)
    return RealNameOut(
        status=row.status,
        name_masked=name[0] + "*" * (len(name) - 1),
        id_number_masked=idcard.mask(number),
        submitted_at=row.submitted_at,
        verified_at=row.verified_at,
    )


def me_out(
    ctx: AppContext,
    session: Session,
    user: User,
    policy_version: int | None = None,
    *,
    phone: str | None = None,
    new_user: bool = False,
) -> MeOut:
    """`phone`: the number when the caller already holds it in clear (sign-in); `new_user`: registered
    in this transaction, so there is no real-name row to look up."""
    fields = sealed_profile.read(ctx, session, user)
    return MeOut(
        id=user.id,
        phone=phone or decrypt_phone(ctx, session, user),
        nickname=fields.nickname,
        avatar_media_id=user.avatar_media_id,
        avatar_url=_avatar_url(session, user),
        gender=fields.gender,
        birthday=fields.birthday,
        tags=fields.tags,
        region=fields.region,
        has_password=bool(user.password_hash),
        real_name=None if new_user else real_name_out(ctx, session, user.id),
        policy_version=policy_version,
        created_at=user.created_at,
    )


def render_me(ctx: AppContext, user_id: str, policy_version: int) -> bytes:
    """The `/me` body as JSON bytes, kept in the identity cache until the user changes."""
    start = ctx.identities.mark()
    with ctx.db.session(write=False) as session:
        user = session.get(User, user_id)
        if user is None or user.status != "active":
            raise Unauthorized("登录已过期，请重新登录", code="token_expired")
        body = me_out(ctx, session, user, policy_version).model_dump_json().encode()
    ctx.identities.put_view(user_id, "me", policy_version, body, start)
    return body


def update_profile(ctx: AppContext, session: Session, user: User, patch: MePatch) -> list[str]:
    """Apply the fields present in the request; return the names of the columns that changed."""
    changes = patch.model_dump(exclude_unset=True)
    cipher = ctx.keys.cipher(session, user.id)
    current = {
        n: sealed_profile.open_field(cipher, n, getattr(user, f"{n}_enc")) for n in sealed_profile.FIELDS
    }
    current["avatar_media_id"] = user.avatar_media_id
    if "nickname" in changes:
        if changes["nickname"] is None:
            raise Invalid("昵称不能为空", code="invalid_nickname")
        changes["nickname"] = _clean_text(changes["nickname"], "昵称")
        if not 1 <= len(changes["nickname"]) <= 20:
            raise Invalid("昵称需为 1–20 个字符", code="invalid_nickname")
    if changes.get("birthday") is not None:
        born: date = changes["birthday"]
        if born > china_today() or born.year < 1900:
            raise Invalid("请填写真实的出生日期", code="invalid_birthday")
    if "birthday" in changes and changes["birthday"] != current["birthday"]:
        # P42: no edit lifts what protects a minor, nor changes a birthday taken from an ID number.
        age.check_birthday_edit(
            user.birthday_source,
            current["birthday"],
            age.open_birth_month(cipher, user.birth_month_enc),
            changes["birthday"],
            china_today(),
        )
    if "tags" in changes:
        tags: list[str] = []
        for raw in changes["tags"] or []:
            tag = _clean_text(raw, "标签")
            if not 1 <= len(tag) <= 12:
                raise Invalid("每个标签需为 1–12 个字符", code="invalid_tag")
            if tag not in tags:
                tags.append(tag)
        changes["tags"] = tags
    if changes.get("region") is not None:
        changes["region"] = _clean_text(changes["region"], "地区") or None
    if changes.get("avatar_media_id") is not None:
        owned_image(session, user.id, changes["avatar_media_id"])
    changed = [k for k, v in changes.items() if current[k] != v]
    columns = []
    if "birthday" in changed:
        user.birthday_source = age.DECLARED if changes["birthday"] is not None else None
        columns.append("users.birthday_source")
    for key in changed:
        if key in sealed_profile.FIELDS:
            sealed_profile.write(cipher, user, key, changes[key])
            columns.append(sealed_profile.column(key))
        else:
            setattr(user, key, changes[key])
            columns.append(f"users.{key}")
    if changed:
        user.updated_at = utcnow()
        audit.user_action(session, user.id, "profile.updated", columns, purpose="profile")
    if "avatar_media_id" in changed:
        release(ctx, session, current["avatar_media_id"])  # the replaced avatar's row and file go
    return columns


#: P05: the privacy-settings switch `personalized_recommendations` is not a setting of its own: it
#: reads and writes the `personalization` consent, so the two can never disagree (off for a new account).
PERSONALIZATION = "personalization"


def privacy_settings(session: Session, user: User) -> PrivacySettings:
    return PrivacySettings(
        show_phone=user.show_phone,
        show_region=user.show_region,
        personalized_recommendations=consent.is_granted(session, user.id, PERSONALIZATION),
    )


def update_privacy_settings(
    session: Session, user: User, patch: PrivacySettingsPatch, policy_version: int
) -> list[str]:
    wanted = {k: v for k, v in patch.model_dump(exclude_unset=True).items() if v is not None}
    personalized = wanted.pop("personalized_recommendations", None)
    if personalized is not None:
        # the consent ledger records it, with its own audit event (consent.granted / consent.withdrawn)
        consent.set_consent(
            session, user.id, PERSONALIZATION, personalized, policy_version, channel="settings"
        )
    changed = [k for k, v in wanted.items() if getattr(user, k) != v]
    for key in changed:
        setattr(user, key, wanted[key])
    if changed:
        user.updated_at = utcnow()
        audit.user_action(session, user.id, "privacy_settings.updated", [f"users.{k}" for k in changed])
    return changed


def public_profile(ctx: AppContext, session: Session, user_id: str) -> PublicProfile:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("用户不存在", code="user_not_found")
    if user.status != "active":
        return PublicProfile(
            id=user.id,
            nickname=CANCELLED_NAME,
            avatar_url=None,
            gender=None,
            tags=[],
            real_name_verified=False,
            cancelled=True,
        )
    verified = session.scalar(
        select(RealNameVerification.id).where(
            RealNameVerification.user_id == user.id, RealNameVerification.status == "verified"
        )
    )
    shown: dict[str, str | None] = {}
    # P38/P39: the keys are absent, not just empty, unless the owner switched them on; the region is
    # not even decrypted otherwise.
    names = ("nickname", "gender", "tags", "region") if user.show_region else ("nickname", "gender", "tags")
    fields = sealed_profile.read(ctx, session, user, names)
    if user.show_phone:
        shown["phone"] = decrypt_phone(ctx, session, user)
    if user.show_region:
        shown["region"] = fields.region
    return PublicProfile(
        id=user.id,
        nickname=fields.nickname or f"汇客{user.id[-4:]}",
        avatar_url=_avatar_url(session, user),
        gender=fields.gender,
        tags=fields.tags,
        real_name_verified=verified is not None,
        **shown,
    )


def masked_phone(ctx: AppContext, session: Session, user: User) -> str | None:
    phone = decrypt_phone(ctx, session, user)
    return mask(phone) if phone else None


def submit_real_name(ctx: AppContext, session: Session, user: User, name: str, id_number: str) -> None:
    row = session.scalar(select(RealNameVerification).where(RealNameVerification.user_id == user.id))
    if row is not None and row.status == "verified":
        raise Conflict("实名认证已通过，认证信息不可更改", code="real_name_locked")
    name = _clean_text(name, "姓名")
    if not _NAME.match(name):
        raise Invalid("请填写身份证上的真实姓名", code="invalid_name")
    number = idcard.normalize(id_number)
    if number is None:
        raise Invalid("身份证号码无效，请核对后重新输入", code="invalid_id_number")
    cipher = ctx.keys.cipher(session, user.id)
    # P42: the number's date of birth becomes the birthday, with authority (no profile edit changes
    # it); a minor is restricted at once (the commit drops the cached identity).
    born = idcard.birth_date(number)
    known = sealed_profile.open_field(cipher, "birthday", user.birthday_enc)
    age.check_id_birthday(known, age.open_birth_month(cipher, user.birth_month_enc), born, china_today())
    sealed_profile.write(cipher, user, "birthday", born)
    user.birthday_source, user.birth_month_enc = age.ID_NUMBER, None
    user.updated_at = utcnow()
    if row is None:
        row = RealNameVerification(user_id=user.id)
        session.add(row)
    row.name_enc = cipher.encrypt("real_name_verifications.name_enc", name)
    row.id_number_enc = cipher.encrypt("real_name_verifications.id_number_enc", number)
    row.id_number_bidx = ctx.ring.blind_index("id_number", number)
    row.status = "pending"
    row.submitted_at = utcnow()
    row.verified_at = None
    row.reviewer_note = None
    session.flush()
    audit.user_action(
        session,
        user.id,
        "real_name.submitted",
        [
            "real_name_verifications.name_enc",
            "real_name_verifications.id_number_enc",
            "users.birthday_enc",
            "users.birthday_source",
            "users.birth_month_enc",
        ],
        "real_name",
    )


def review_real_name(
    session: Session, user_id: str, approve: bool, note: str | None = None, staff_id: str = "cli"
) -> RealNameVerification:
    row = session.scalar(select(RealNameVerification).where(RealNameVerification.user_id == user_id))
    if row is None:
        raise NotFound("该用户没有实名认证申请", code="real_name_not_found")
    if row.status == "verified":
        raise Conflict("实名认证已通过，认证信息不可更改", code="real_name_locked")
    row.status = "verified" if approve else "rejected"
    row.verified_at = utcnow() if approve else None
    row.reviewer_note = note
    columns = ["real_name_verifications.status"]
    user = session.get(User, user_id)
    if not approve and user is not None and user.birthday_source == age.ID_NUMBER:
        # A refused number no longer vouches for the birthday: it stays, as if typed, so the user may
        # correct it (within what protects a minor, `age.check_birthday_edit`).
        user.birthday_source = age.DECLARED
        columns.append("users.birthday_source")
    session.flush()
    action = "real_name.verified" if approve else "real_name.rejected"
    audit.staff_action(session, staff_id, user_id, action, columns, "real_name")
    return row
