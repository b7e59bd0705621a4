"""Sign-in (P04, P10): SMS codes, password sign-in, sessions and devices."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, timedelta

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from huirongke.accounts import age as age_rules
from huirongke.accounts.models import AuthSession, Device, SmsCode, User
from huirongke.accounts.schemas import AgeIn, DeviceIn
from huirongke.context import AppContext
from huirongke.kit.clock import china_today, utcnow
from huirongke.kit.crypto import sha256_hex
from huirongke.kit.db import after_commit, table
from huirongke.kit.errors import AppError, BadRequest, Invalid, PreconditionRequired, RateLimited
from huirongke.kit.ids import new_id
from huirongke.kit.phone import InvalidPhone, normalize
from huirongke.kit.ratelimit import enforce
from huirongke.kit.sms.base import SmsMessage, SmsSendError
from huirongke.privacy import audit, changes
from huirongke.privacy.models import PolicyAgreement

log = structlog.get_logger(__name__)
_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


def parse_phone(raw: str) -> str:
    try:
        return normalize(raw)
    except InvalidPhone:
        raise Invalid("请输入有效的中国大陆手机号码", code="invalid_phone") from None


def hash_token(token: str) -> str:
    return sha256_hex(token)


_CODE_TEXTS = {
    "login": ("login_code", "【汇容客】您的登录验证码为 {code}，{minutes} 分钟内有效。请勿告诉他人。"),
    "case": ("verify_code", "【汇容客】您正在提交个人信息相关申请，验证码为 {code}，{minutes} 分钟内有效。"),
    # Step-up verification (accounts/stepup.py) uses the operator's general verification template.
    "step_up": (
        "verify_code",
        "【汇容客】您正在进行安全验证，验证码为 {code}，{minutes} 分钟内有效。如非本人操作请忽略。",
    ),
    "guardian": (
        "guardian_code",
        "【汇容客】您正在以监护人身份确认，验证码为 {code}，{minutes} 分钟内有效。如非本人操作请忽略。",
    ),
}


def request_code(
    ctx: AppContext, session: Session, raw_phone: str, ip: str | None, purpose: str = "login"
) -> SmsCode:
    s = ctx.settings
    phone = parse_phone(raw_phone)
    bidx = ctx.phone_bidx(phone)
    now = utcnow()
    if ip:
        enforce(ctx.limiter, f"sms-ip:{sha256_hex(ip)}", s.sms_ip_hourly_limit, 3600)
    # One code a minute per purpose (a sign-in code must not block a verification code), and a
    # daily cap across all purposes against SMS bombing.
    last = session.scalar(
        select(func.max(SmsCode.created_at)).where(SmsCode.phone_bidx == bidx, SmsCode.purpose == purpose)
    )
    if last is not None:
        wait = s.sms_resend_seconds - (now - last).total_seconds()
        if wait > 0:
            raise RateLimited(int(wait) + 1, "验证码发送过于频繁，请稍后再试")
    day_ago = now - timedelta(days=1)
    q = select(SmsCode.created_at).where(SmsCode.phone_bidx == bidx, SmsCode.created_at > day_ago)
    sent_today = sorted(session.scalars(q))
    if len(sent_today) >= s.sms_daily_limit:
        retry = (sent_today[0] + timedelta(days=1) - now).total_seconds()
        raise RateLimited(int(retry) + 1, "今日验证码发送次数已达上限，请明天再试")

    code = f"{secrets.randbelow(1_000_000):06d}"
    # Any earlier code for this number stops working once a new one is issued.
    session.execute(
        update(SmsCode)
        .where(SmsCode.phone_bidx == bidx, SmsCode.purpose == purpose, SmsCode.consumed_at.is_(None))
        .values(consumed_at=now)
    )
    row = SmsCode(
        phone_bidx=bidx,
        purpose=purpose,
        code_hash=ctx.ring.mac("sms", bidx, code),
        ip_hash=sha256_hex(ip) if ip else None,
        created_at=now,
        expires_at=now + timedelta(seconds=s.sms_code_ttl_seconds),
    )
    session.add(row)
    session.flush()
    minutes = s.sms_code_ttl_seconds // 60
    template, text = _CODE_TEXTS[purpose]
    message = SmsMessage(
        phone=phone, template=template, params={"code": code}, text=text.format(code=code, minutes=minutes)
    )
    ctx.sms.stage(session, message)
    after_commit(session, lambda: _deliver(ctx, message, row.id))
    return row


def _deliver(ctx: AppContext, message: SmsMessage, code_id: str) -> None:
    try:
        ctx.sms.send(message)
    except SmsSendError as exc:
        log.error("sms_send_failed", code_id=code_id, provider=ctx.sms.name, reason=str(exc))
        raise AppError("短信发送失败，请稍后重试", code="sms_unavailable", status=503) from None


def check_code(
    ctx: AppContext, session: Session, bidx: str, code: str, purpose: str = "login", *, consume: bool = True
) -> str:
    """Consume a valid code (or only check it) and return its id, or raise 400 invalid_code. Five wrong
    tries void the code."""
    now = utcnow()
    row = session.execute(_LIVE_CODE, {"bidx": bidx, "purpose": purpose, "now": now}).first()
    invalid = BadRequest("验证码错误或已失效，请重新获取", code="invalid_code")
    if row is None:
        raise invalid
    if not secrets.compare_digest(row.code_hash, ctx.ring.mac("sms", bidx, code.strip())):
        attempts = row.attempts + 1
        voided = now if attempts >= ctx.settings.sms_max_attempts else None
        session.execute(_FAILED_TRY, {"code_id": row.id, "attempts": attempts, "voided": voided})
        # The failed try must be remembered even though the request fails.
        session.commit()
        invalid.details = {"attempts_left": max(0, ctx.settings.sms_max_attempts - attempts)}
        raise invalid
    if consume:
        consume_code(session, row.id)
    return str(row.id)


def consume_code(session: Session, code_id: str) -> None:
    session.execute(_CONSUME_CODE, {"code_id": code_id, "now": utcnow()})


# Built once: sign-in is the busiest writer, and building statements costs more than running them here.
_LIVE_CODE = (
    select(SmsCode.id, SmsCode.code_hash, SmsCode.attempts)
    .where(
        SmsCode.phone_bidx == bindparam("bidx"),
        SmsCode.purpose == bindparam("purpose"),
        SmsCode.consumed_at.is_(None),
        SmsCode.expires_at > bindparam("now"),
    )
    .order_by(SmsCode.created_at.desc())
    .limit(1)
)
_USER_AND_AGREEMENT = select(
    User,
    select(PolicyAgreement.id)
    .where(PolicyAgreement.user_id == User.id, PolicyAgreement.version >= bindparam("version"))
    .exists(),
).where(User.phone_bidx == bindparam("bidx"))


# Core statements on the tables themselves: no ORM bulk machinery, compiled once.
_INSERT_USER = insert(table(User))
_INSERT_SESSION = insert(table(AuthSession))
_CODES = table(SmsCode)
_CONSUME_CODE = update(_CODES).where(_CODES.c.id == bindparam("code_id")).values(consumed_at=bindparam("now"))
_FAILED_TRY = (
    update(_CODES)
    .where(_CODES.c.id == bindparam("code_id"))
    .values(
        attempts=bindparam("attempts"),
        consumed_at=func.coalesce(bindparam("voided", type_=_CODES.c.consumed_at.type), _CODES.c.consumed_at),
    )
)


@dataclass
class SignInResult:
    token: str
    user: User
    phone: str  # E.164, as signed in with: the response needs no decryption
    created: bool
    policy_update_required: bool


def sign_in(
    ctx: AppContext,
    session: Session,
    *,
    raw_phone: str,
    code: str | None,
    password: str | None,
    accept_policy_version: int | None,
    device: DeviceIn | None,
    ip: str | None,
    age: AgeIn | None = None,
) -> SignInResult:
    phone = parse_phone(raw_phone)
    bidx = ctx.phone_bidx(phone)
    if ip:
        enforce(ctx.limiter, f"signin-ip:{sha256_hex(ip)}", ctx.settings.signin_ip_hourly_limit, 3600)
    current = ctx.policy.current(session)
    # Agreed: to the latest version that asked for agreement, or to a later one (P41, P43).
    found = session.execute(_USER_AND_AGREEMENT, {"bidx": bidx, "version": current.consent_version}).first()
    user, had_agreed = (found[0], bool(found[1])) if found else (None, False)

    declared: tuple[str, date | None] | None = None  # the age gate's answer, for a registration
    if password is not None and code is None:
        method = "password"
        # Per account, across IPs: guessing one account's password from many addresses is limited too.
        enforce(ctx.limiter, f"pw-account:{bidx}", ctx.settings.password_account_hourly_limit, 3600)
        _check_password(user, password)
    elif code is not None:
        method = "sms"
        # The code is checked first, so a wrong code answers the same whether or not the number
        # has an account; only the holder of a valid code learns that registration needs consent.
        code_id = check_code(ctx, session, bidx, code, consume=False)
        if user is None and accept_policy_version != current.version:
            # Don't burn the code: the client shows the policy and retries with the same code.
            raise PreconditionRequired(
                "注册前请阅读并同意《汇容客隐私政策》",
                code="policy_consent_required",
                details={"current_version": current.version},
            )
        if user is None:  # P42: the age gate, also before the code is burnt
            declared = age_rules.declaration(
                age.adult if age else None, age.birth_month if age else None, china_today()
            )
        consume_code(session, code_id)
    else:
        raise Invalid("请提供验证码或密码", code="credentials_required")

    created = user is None
    if user is None:
        assert declared is not None  # a password never registers: `_check_password` refused it
        user = _register(ctx, session, phone, bidx, *declared)
    if user.status != "active":
        raise AppError("该账号已注销，无法登录", code="account_cancelled", status=403)

    if accept_policy_version is not None and accept_policy_version == current.version and not had_agreed:
        ctx.policy.agree(session, user.id, current.version, channel="sign_in", new_user=True)
    agreed = had_agreed or accept_policy_version == current.version

    now = utcnow()
    token = secrets.token_urlsafe(32)
    auth = {
        "id": new_id(),
        "user_id": user.id,
        "token_hash": hash_token(token),
        "method": method,
        "created_at": now,
        "last_seen_at": now,
        "expires_at": now + timedelta(days=ctx.settings.session_ttl_days),
        "login_ip": None,
        "device_id": None,
    }
    # P01/P03: device info and the login IP are collected only once the current policy is agreed.
    if agreed:
        auth["login_ip"] = ip
        if device is not None and device.device_id:
            auth["device_id"] = record_device(ctx, session, user.id, device).id
    session.execute(_INSERT_SESSION, auth, execution_options=changes.of(user.id))
    audit.user_action(
        session,
        user.id,
        "account.registered" if created else "session.created",
        (["auth_sessions.login_ip", "devices.model"] if agreed else [])
        + (age_rules.registered_columns(user) if created else []),
        purpose="account",
    )
    log.info("signed_in", user_id=user.id, method=method, created=created)
    return SignInResult(token, user, phone, created, not agreed)


def _check_password(user: User | None, password: str) -> None:
    wrong = BadRequest("手机号或密码错误", code="invalid_credentials")
    if user is None or not user.password_hash:
        _hasher.hash(password)  # same cost either way, so timing does not reveal accounts
        raise wrong
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise wrong from None


def _register(
    ctx: AppContext, session: Session, phone: str, bidx: str, declaration: str, birth_month: date | None
) -> User:
    """Insert the account (and its data key) with single statements, no unit-of-work flush: the
    busiest writer registers users. Returns the row as inserted, for the response. `declaration` and
    `birth_month` are the age gate's answer (`age.declaration`): a birth month under 18 makes the
    account a minor, restricted from its first request until a guardian consents (P42)."""
    now = utcnow()
    user_id = new_id()
    cipher = ctx.keys.create(session, user_id)
    values = {
        "id": user_id,
        "phone_bidx": bidx,
        "phone_enc": cipher.encrypt("users.phone_enc", phone),
        "status": "active",
        "show_phone": False,
        "show_region": False,
        "age_declaration": declaration,
        "birth_month_enc": age_rules.seal_birth_month(cipher, birth_month) if birth_month else None,
        "created_at": now,
        "updated_at": now,
    }
    session.execute(_INSERT_USER, values, execution_options=changes.of(user_id))
    return User(**values)


def record_device(ctx: AppContext, session: Session, user_id: str, device: DeviceIn) -> Device:
    now = utcnow()
    # P02: the raw device identifier is pseudonymised with a keyed hash before it is stored.
    device_hash = ctx.ring.blind_index("device", device.device_id or "")
    row = session.scalar(select(Device).where(Device.user_id == user_id, Device.device_hash == device_hash))
    if row is None:
        row = Device(user_id=user_id, device_hash=device_hash, first_seen_at=now)
        session.add(row)
    row.model, row.os_version, row.network_type = device.model, device.os_version, device.network_type
    row.last_seen_at = now
    session.flush()
    return row


def set_password(session: Session, user: User, password: str, current_password: str | None) -> None:
    if user.password_hash:
        if not current_password:
            raise BadRequest("请输入当前密码", code="current_password_required")
        try:
            _hasher.verify(user.password_hash, current_password)
        except (VerificationError, InvalidHashError):
            raise BadRequest("当前密码不正确", code="invalid_credentials") from None
    if password.isdigit() or password.isalpha():
        raise Invalid("密码需同时包含字母和数字", code="weak_password")
    user.password_hash = _hasher.hash(password)
    user.updated_at = utcnow()
    audit.user_action(session, user.id, "password.set", ["users.password_hash"], purpose="account")


def revoke_sessions(
    session: Session, user_id: str, *, only: str | None = None, keep: str | None = None
) -> int:
    q = update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
    if only:
        q = q.where(AuthSession.id == only)
    if keep:
        q = q.where(AuthSession.id != keep)
    result = session.execute(q.values(revoked_at=utcnow()), execution_options=changes.of(user_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
