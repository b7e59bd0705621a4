"""Step-up verification (issue 8): a bearer token alone does not export, cancel, attach a guardian, set
a password or submit a real name. Those routes also need a proof of the account's phone within the last
`WINDOW`: the SMS code the session was created with, or a step-up code sent to the same phone.

The proof is kept on the session row (`auth_sessions.verified_at`); a session created by an SMS code
counts as verified at its creation, one created by password does not. The gate reads the session row in
the request's own unit of work, never from the identity cache, so a cached identity can neither grant
nor withhold a verification: the window is decided on the row as committed.
"""

# No `from __future__ import annotations` here: `require_step_up` builds a dependency whose parameter
# annotation is its argument, which FastAPI must see as an object, not a string to resolve.

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from huirongke.accounts import profile, signin
from huirongke.accounts.deps import AgreedUser, AnyUser, CurrentUser, Principal, before_handler
from huirongke.accounts.models import AuthSession
from huirongke.context import AppContext
from huirongke.kit.clock import utcnow
from huirongke.kit.errors import AppError, BadRequest
from huirongke.privacy import audit, changes

WINDOW = timedelta(minutes=10)
#: The SMS code purpose: its own resend clock and its own text, apart from sign-in codes.
PURPOSE = "step_up"
SEND_CODE_PATH = "/api/v1/me/step-up/sms-codes"
VERIFY_PATH = "/api/v1/me/step-up"

_SESSION = select(AuthSession.method, AuthSession.created_at, AuthSession.verified_at).where(
    AuthSession.id == bindparam("session_id")
)


def last_verified(method: str, created_at: datetime, verified_at: datetime | None) -> datetime | None:
    """When the session's holder last proved the phone: a step-up, or signing in with an SMS code."""
    at = created_at if method == "sms" else None
    if verified_at is not None and (at is None or verified_at > at):
        at = verified_at
    return at


def ensure_recent(session: Session, user: Principal) -> Principal:
    """403 `step_up_required` unless the session proved the phone within `WINDOW`."""
    row = session.execute(_SESSION, {"session_id": user.session_id}).first()
    at = last_verified(row.method, row.created_at, row.verified_at) if row is not None else None
    if at is None or utcnow() - at > WINDOW:
        raise AppError(
            "为保障您的账号安全，请先完成短信验证后再继续",
            code="step_up_required",
            status=403,
            details={
                "method": "sms",
                "request_code": SEND_CODE_PATH,
                "verify": VERIFY_PATH,
                "window_seconds": int(WINDOW.total_seconds()),
            },
        )
    return user


def require_step_up(gate: Any) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the principal `gate` gives (an `Annotated[Principal, Depends(...)]`), verified
    within `WINDOW`. Use as `Annotated[Principal, Depends(require_step_up(AnyUser))]`."""

    async def check(user: gate, request: Request) -> Principal:
        # Read in the handler's thread, after the principal's own row check (one hop, and a suspended
        # user is 401 before anything is said about verification).
        await before_handler(request, user.session, functools.partial(ensure_recent, user.session, user))
        return user

    return check


#: The gates with a recent verification. Data rights stay reachable before agreeing to a new policy.
StepUpAnyUser = Annotated[Principal, Depends(require_step_up(AnyUser))]
StepUpAgreedUser = Annotated[Principal, Depends(require_step_up(AgreedUser))]
StepUpCurrentUser = Annotated[Principal, Depends(require_step_up(CurrentUser))]


def send_code(ctx: AppContext, session: Session, user: Principal, ip: str | None) -> None:
    """A step-up code to the account's own phone, under the sign-in code limits."""
    phone = profile.decrypt_phone(ctx, session, user.user)
    if phone is None or user.user.phone_bidx is None:
        raise AppError("该账号没有可用的手机号码", code="phone_unavailable", status=409)
    signin.request_code(ctx, session, phone, ip, purpose=PURPOSE, owner=True)


def verify(ctx: AppContext, session: Session, user: Principal, code: str, ip: str | None) -> datetime:
    """Check the code; record the verification on this session and return when it lapses. A wrong code
    is 400 `invalid_code` (five wrong tries void it); both outcomes are audited."""
    user_id = user.user.id
    try:
        signin.check_code(ctx, session, user.user.phone_bidx or "", code, purpose=PURPOSE, ip=ip)
    except BadRequest as exc:
        if exc.code == "invalid_code":
            audit.user_action(session, user_id, "step_up.failed", purpose="security")
            session.commit()  # the failure is kept although the request fails
        raise
    now = utcnow()
    session.execute(
        update(AuthSession).where(AuthSession.id == user.session_id).values(verified_at=now),
        execution_options=changes.of(user_id),
    )
    audit.user_action(session, user_id, "step_up.verified", ["auth_sessions.verified_at"], purpose="security")
    return now + WINDOW
