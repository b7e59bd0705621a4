"""Sign-in (P04, P10): SMS codes, password sign-in, sessions and devices."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from huirongke.accounts import age as age_rules
from huirongke.accounts.models import AuthSession, Device, SmsCode, User
from huirongke.accounts.schemas import AgeIn, DeviceIn
from huirongke.context import AppContext
from huirongke.kit.challenge import Answer
from huirongke.kit.challenge import issue as issue_challenge
from huirongke.kit.challenge import verify as verify_challenge
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
    # A minor asks to unlink their guardian (privacy/minors.py): the guardian agrees by passing on the code.
    "guardian_revoke": (
        "guardian_code",
        "【汇容客】您监护的未成年用户申请解除与您的监护关联。如您同意，请将验证码 {code} 告知该用户，"
        "{minutes} 分钟内有效；如不同意，请勿告知他人。",
    ),
}


def request_code(
    ctx: AppContext,
    session: Session,
    raw_phone: str,
    ip: str | None,
    purpose: str = "login",
    *,
    challenge: Answer | None = None,
    device_id: str | None = None,
    owner: bool = False,
    deliver: bool = True,
) -> SmsCode:
    """Issue a code for `purpose` to `raw_phone`, within the budgets of docs/abuse.md.

    `owner`: the requester is proven to hold the number (a signed-in user's own phone, e.g. step-up),
    as is a requester presenting the `device_id` of a device that signed in to the number's account:
    neither is held to the number's ceiling nor asked for a challenge."""
    s = ctx.settings
    phone = parse_phone(raw_phone)
    bidx = ctx.phone_bidx(phone)
    now = utcnow()
    ip_hash = sha256_hex(ip) if ip else None
    refunds: list[str] = []
    if ip_hash:
        enforce(ctx.limiter, f"sms-ip:{ip_hash}", s.sms_ip_hourly_limit, 3600)
        refunds.append(f"sms-ip:{ip_hash}")
    budget = _SmsBudget.read(session, bidx, ip_hash, purpose, now)
    # The requester's own budgets: one code a minute per purpose (a sign-in code must not block a
    # verification code), and a daily number, both for this (number, address) pair only, so nobody
    # else can use them up.
    if budget.pair_last is not None:
        wait = s.sms_resend_seconds - (now - budget.pair_last).total_seconds()
        if wait > 0:
            raise RateLimited(int(wait) + 1, "验证码发送过于频繁，请稍后再试")
    if len(budget.pair_today) >= s.sms_daily_limit:
        raise RateLimited(_until_a_day_after(budget.pair_today[0], now), _DAILY_MESSAGE)
    if not (owner or (device_id and known_device(ctx, session, bidx, device_id))):
        # The number's own ceiling across every address (SMS bombing, pumping), and a challenge once
        # this pair or the number has asked a few times today.
        if len(budget.phone_today) >= s.sms_phone_daily_limit:
            raise RateLimited(_until_a_day_after(budget.phone_today[0], now), _DAILY_MESSAGE)
        # Challenges count this purpose's codes only: the codes a signed-in owner asks for (step-up,
        # cases) never make a sign-in from the same address harder.
        extra = max(
            len(budget.pair_purpose) - s.sms_challenge_after,
            len(budget.phone_purpose) - s.sms_phone_challenge_after,
        )
        if extra >= 0:
            bits = min(s.sms_challenge_bits + extra, s.sms_challenge_max_bits)
            scope = f"sms:{bidx}:{ip_hash or '-'}"
            if challenge is None or not verify_challenge(ctx.ring, ctx.limiter, scope, challenge, bits):
                raise ChallengeRequired(issue_challenge(ctx.ring, scope, bits), retried=challenge is not None)

    code = f"{secrets.randbelow(1_000_000):06d}"
    # Any earlier code this requester was sent for the number stops working once a new one is issued;
    # codes that others asked for stay valid (an attacker's request must not void the owner's code).
    voided = list(
        session.scalars(
            select(SmsCode.id).where(
                SmsCode.phone_bidx == bidx,
                SmsCode.purpose == purpose,
                _same_address(ip_hash),
                SmsCode.consumed_at.is_(None),
            )
        )
    )
    if voided:
        session.execute(update(SmsCode).where(SmsCode.id.in_(voided)).values(consumed_at=now))
    row = SmsCode(
        phone_bidx=bidx,
        purpose=purpose,
        code_hash=ctx.ring.mac("sms", bidx, code),
        ip_hash=ip_hash,
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
    if not deliver:
        # Everything but the text itself: an endpoint that must answer alike whether or not a number is
        # on file (the guardian's, privacy/minors.py) does the same work, budgets included, for both.
        return row
    ctx.sms.stage(session, message)
    after_commit(session, lambda: _deliver(ctx, message, _Issued(row.id, now, voided, refunds)))
    return row


_DAILY_MESSAGE = "今日验证码发送次数已达上限，请明天再试"


def _until_a_day_after(first: datetime, now: datetime) -> int:
    return int((first + timedelta(days=1) - now).total_seconds()) + 1


def _same_address(ip_hash: str | None) -> ColumnElement[bool]:
    return SmsCode.ip_hash == ip_hash if ip_hash else SmsCode.ip_hash.is_(None)


@dataclass
class _SmsBudget:
    """Today's codes for a number, oldest first: of every purpose (the daily budgets) and of this
    purpose (the challenges), all of them and this (number, address) pair's."""

    phone_today: list[datetime]
    pair_today: list[datetime]
    phone_purpose: list[datetime]
    pair_purpose: list[datetime]

    @property
    def pair_last(self) -> datetime | None:
        """This pair's last code of this purpose (the resend interval)."""
        return self.pair_purpose[-1] if self.pair_purpose else None

    @classmethod
    def read(
        cls, session: Session, bidx: str, ip_hash: str | None, purpose: str, now: datetime
    ) -> _SmsBudget:
        rows = session.execute(
            select(SmsCode.created_at, SmsCode.ip_hash, SmsCode.purpose)
            .where(SmsCode.phone_bidx == bidx, SmsCode.created_at > now - timedelta(days=1))
            .order_by(SmsCode.created_at)
        ).all()
        pair = [r for r in rows if r.ip_hash == ip_hash]
        return cls(
            [r.created_at for r in rows],
            [r.created_at for r in pair],
            [r.created_at for r in rows if r.purpose == purpose],
            [r.created_at for r in pair if r.purpose == purpose],
        )


class ChallengeRequired(AppError):
    """429 `challenge_required`: retry the same request with `challenge: {id, solution}` (kit/challenge)."""

    def __init__(self, challenge: dict[str, object], *, retried: bool) -> None:
        message = "验证未通过，请重新完成验证" if retried else "请求较多，请先完成安全验证"
        super().__init__(
            message,
            code="challenge_required",
            status=429,
            details={"challenge": challenge},
            headers={"Retry-After": "1"},
        )


def known_device(ctx: AppContext, session: Session, bidx: str, device_id: str) -> bool:
    """Whether the device with this identifier signed in to the (active) account of this number."""
    device_hash = ctx.ring.blind_index("device", device_id)
    found = session.scalar(
        select(Device.id)
        .join(User, User.id == Device.user_id)
        .where(User.phone_bidx == bidx, User.status == "active", Device.device_hash == device_hash)
        .limit(1)
    )
    return found is not None


@dataclass(frozen=True)
class _Issued:
    code_id: str
    at: datetime
    voided: list[str]  # the requester's earlier codes this one replaced
    refunds: list[str]  # the limiter hits it used


def _deliver(ctx: AppContext, message: SmsMessage, issued: _Issued) -> None:
    try:
        ctx.sms.send(message)
    except SmsSendError as exc:
        log.error("sms_send_failed", code_id=issued.code_id, provider=ctx.sms.name, reason=str(exc))
        _refund(ctx, issued)
        raise AppError("短信发送失败，请稍后重试", code="sms_unavailable", status=503) from None


def _refund(ctx: AppContext, issued: _Issued) -> None:
    """A text that was never sent uses no budget: the code goes, the codes it voided come back."""
    for key in issued.refunds:
        ctx.limiter.refund(key)
    with ctx.db.session() as session:
        session.execute(delete(SmsCode).where(SmsCode.id == issued.code_id))
        if issued.voided:
            session.execute(
                update(SmsCode)
                .where(SmsCode.id.in_(issued.voided), SmsCode.consumed_at == issued.at)
                .values(consumed_at=None)
            )


def check_code(
    ctx: AppContext,
    session: Session,
    bidx: str,
    code: str,
    purpose: str = "login",
    *,
    consume: bool = True,
    ip: str | None = None,
    device_id: str | None = None,
) -> str:
    """Consume a valid code (or only check it) and return its id, or raise 400 invalid_code.

    Any live code of the number is accepted, whoever asked for it, so an attacker's request never voids
    the owner's code. Wrong tries count per (number, address) pair: five void the requester's own code
    (the row's `attempts`) and end the pair's tries at the number's newest code. Across addresses a
    number takes `sms_phone_failures_hourly` wrong tries an hour; past that only a device that signed in
    to the account before may try (429 for the others): guessing from many addresses stays hopeless,
    and the owner's phone is never locked out (docs/abuse.md)."""
    s = ctx.settings
    now = utcnow()
    ip_hash = sha256_hex(ip) if ip else None
    recent = session.execute(_RECENT_CODES, {"bidx": bidx, "purpose": purpose, "now": now}).all()
    rows = [r for r in recent if r.consumed_at is None]
    invalid = BadRequest("验证码错误或已失效，请重新获取", code="invalid_code")
    if not rows:
        raise invalid  # nothing to guess: not counted, so nobody can run the number's budget down free
    phone_key = f"code-fail:{purpose}:{bidx}"
    retry = ctx.limiter.blocked(phone_key, s.sms_phone_failures_hourly, 3600)
    if retry and not (device_id and known_device(ctx, session, bidx, device_id)):
        raise RateLimited(retry, "该号码验证码错误次数过多，请稍后再试，或在常用设备上登录")
    # The pair's tries are counted against its own newest code (a new code of its own starts afresh),
    # or, for an address that asked for none, against none: five tries per code lifetime either way.
    # (A caller that names no address counts against the newest code, as every caller once did.)
    own = next((r for r in recent if r.ip_hash == ip_hash), None) if ip else rows[0]
    pair_key = f"code-fail:{purpose}:{bidx}:{ip_hash or '-'}:{own.id if own else '-'}"
    if ctx.limiter.blocked(pair_key, s.sms_max_attempts, s.sms_code_ttl_seconds):
        invalid.details = {"attempts_left": 0}
        raise invalid
    wanted = ctx.ring.mac("sms", bidx, code.strip())
    matched = [r for r in rows if secrets.compare_digest(r.code_hash, wanted)]
    if matched:
        if consume:
            consume_code(session, matched[0].id)
        return str(matched[0].id)
    ctx.limiter.hit(pair_key, s.sms_max_attempts, s.sms_code_ttl_seconds)
    ctx.limiter.hit(phone_key, s.sms_phone_failures_hourly, 3600)
    if own is not None and own.consumed_at is None:
        attempts = own.attempts + 1
        voided = now if attempts >= s.sms_max_attempts else None
        session.execute(_FAILED_TRY, {"code_id": own.id, "attempts": attempts, "voided": voided})
        # The failed try must be remembered even though the request fails.
        session.commit()
        invalid.details = {"attempts_left": max(0, s.sms_max_attempts - attempts)}
    raise invalid


def consume_code(session: Session, code_id: str) -> None:
    session.execute(_CONSUME_CODE, {"code_id": code_id, "now": utcnow()})


# Built once: sign-in is the busiest writer, and building statements costs more than running them here.
# The number's unexpired codes, newest first, used or not (a used or voided code still names the
# requester's own tries): at most a few requesters' codes are live at once.
_RECENT_CODES = (
    select(SmsCode.id, SmsCode.code_hash, SmsCode.attempts, SmsCode.ip_hash, SmsCode.consumed_at)
    .where(
        SmsCode.phone_bidx == bindparam("bidx"),
        SmsCode.purpose == bindparam("purpose"),
        SmsCode.expires_at > bindparam("now"),
    )
    .order_by(SmsCode.created_at.desc())
    .limit(10)
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
        _password_attempt(ctx, session, user, bidx, password, ip, device.device_id if device else None)
    elif code is not None:
        method = "sms"
        # The code is checked first, so a wrong code answers the same whether or not the number
        # has an account; only the holder of a valid code learns that registration needs consent.
        device_id = device.device_id if device else None
        code_id = check_code(ctx, session, bidx, code, consume=False, ip=ip, device_id=device_id)
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


_PASSWORD_LIMITED = "密码错误次数过多，请稍后再试，或使用短信验证码登录"


def _password_attempt(
    ctx: AppContext,
    session: Session,
    user: User | None,
    bidx: str,
    password: str,
    ip: str | None,
    device_id: str | None,
) -> None:
    """Wrong passwords count per (account, address) pair, per address, and per account across
    addresses (docs/abuse.md). Only failures count, and none of these budgets locks the account for
    everyone: another address has its own pair budget, past the account's ceiling a device that signed
    in to the account before still signs in, and an SMS code always does. An unknown number is counted
    the same way, so the answers do not tell which numbers have accounts."""
    s = ctx.settings
    ip_hash = sha256_hex(ip) if ip else "-"
    budgets = [
        (f"pw:{bidx}:{ip_hash}", s.password_account_hourly_limit, 3600),
        (f"pw-ip:{ip_hash}", s.password_ip_hourly_limit, 3600),
    ]
    for key, limit, window in budgets:
        retry = ctx.limiter.blocked(key, limit, window)
        if retry:
            raise RateLimited(retry, _PASSWORD_LIMITED)
    account = (f"pw-account:{bidx}", s.password_account_daily_limit, 86400)
    retry = ctx.limiter.blocked(*account)
    if retry and not (device_id and known_device(ctx, session, bidx, device_id)):
        raise RateLimited(retry, _PASSWORD_LIMITED)
    try:
        _check_password(user, password)
    except AppError:
        for key, limit, window in [*budgets, account]:
            ctx.limiter.hit(key, limit, window)
        raise


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
