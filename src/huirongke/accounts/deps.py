"""Request dependencies: the DB session, the signed-in user, and the policy gate (P01, P41)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from huirongke.accounts.models import AuthSession, User
from huirongke.accounts.signin import hash_token
from huirongke.context import AppContext
from huirongke.kit.clock import utcnow
from huirongke.kit.errors import AppError, PreconditionRequired, Unauthorized
from huirongke.privacy import consent
from huirongke.privacy.models import PolicyAgreement
from huirongke.privacy.purposes import PURPOSES


async def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(
    request: Request, ctx: Annotated[AppContext, Depends(get_ctx)]
) -> AsyncIterator[Session]:
    """One unit of work per request. Opening a read session does no I/O, so only writers (which
    take SQLite's write lock at BEGIN) and the final commit go through the thread pool."""
    write = request.method not in _READS
    unit = ctx.db.session(write=write)
    session = await run_in_threadpool(unit.__enter__) if write else unit.__enter__()
    try:
        yield session
    except BaseException as exc:
        await run_in_threadpool(unit.__exit__, type(exc), exc, exc.__traceback__)
        raise
    await run_in_threadpool(unit.__exit__, None, None, None)


Ctx = Annotated[AppContext, Depends(get_ctx)]
# scope="function": commit when the handler returns, before the response is sent, so a client
# never sees success for a transaction that then failed to commit.
DB = Annotated[Session, Depends(get_session, scope="function")]


@dataclass
class Principal:
    user: User
    auth: AuthSession
    policy_agreed: bool
    policy_version: int  # the current version when the request started


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("请先登录", code="unauthorized")
    return token.strip()


def _principal(request: Request, ctx: Ctx, session: DB) -> Principal:
    token = _bearer(request)
    current = ctx.policy.current(session)
    agreed = (
        select(PolicyAgreement.id)
        .where(PolicyAgreement.user_id == User.id, PolicyAgreement.version == current.version)
        .exists()
    )
    # One round trip: the session, its user, and whether the current policy version is agreed.
    row = session.execute(
        select(AuthSession, User, agreed)
        .join(User, User.id == AuthSession.user_id)
        .where(AuthSession.token_hash == hash_token(token))
    ).first()
    now = utcnow()
    if row is None:
        raise Unauthorized("登录状态无效，请重新登录", code="invalid_token")
    auth, user, has_agreed = row
    if auth.revoked_at is not None or auth.expires_at <= now or user.status != "active":
        raise Unauthorized("登录已过期，请重新登录", code="token_expired")
    if now - auth.last_seen_at > timedelta(minutes=5):
        auth.last_seen_at = now
    request.state.user_id = user.id
    return Principal(user, auth, bool(has_agreed), current.version)


async def any_principal(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    """Signed in, whether or not the current policy is agreed: only the rights endpoints use this."""
    return principal


async def agreed_principal(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    """Signed in and agreed to the current policy (P01, P41)."""
    if not principal.policy_agreed:
        raise AppError(
            "隐私政策已更新，请阅读并同意后继续使用",
            code="policy_update_required",
            status=428,
            details={"current_version": principal.policy_version},
        )
    return principal


async def principal(principal: Annotated[Principal, Depends(agreed_principal)]) -> Principal:
    """Agreed, and not a minor still waiting for a guardian's consent (P42)."""
    from huirongke.privacy.minors import restricted

    if restricted(principal.user):
        raise AppError(
            "您未满 18 周岁，需要监护人同意后才能使用此功能",
            code="guardian_consent_required",
            status=403,
        )
    return principal


AnyUser = Annotated[Principal, Depends(any_principal)]
#: What a minor may still use before a guardian consents: their profile and the guardian flow.
#: (Consents are not among them: a minor's consent needs the guardian's first.)
AgreedUser = Annotated[Principal, Depends(agreed_principal)]
CurrentUser = Annotated[Principal, Depends(principal)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def require_consent(purpose_key: str) -> Callable[[Principal, Session], Principal]:
    """A route dependency: 428 consent_required unless the signed-in user granted the purpose.
    Use as `Annotated[Principal, Depends(require_consent("real_name"))]`."""
    purpose = PURPOSES[purpose_key]

    def check(user: CurrentUser, session: DB) -> Principal:
        if not consent.is_granted(session, user.user.id, purpose_key):
            raise PreconditionRequired(
                f"使用此功能需要您同意「{purpose.label}」：{purpose.description}",
                code="consent_required",
                details={"purpose": purpose_key, "label": purpose.label, "basis": purpose.basis},
            )
        return user

    return check
