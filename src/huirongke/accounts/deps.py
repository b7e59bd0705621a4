"""Request dependencies: the DB session, the signed-in user, and the policy gate (P01, P41)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from huirongke.accounts import identity
from huirongke.accounts.identity import Identity
from huirongke.accounts.models import User
from huirongke.accounts.signin import hash_token
from huirongke.context import AppContext
from huirongke.kit.client_address import client_address
from huirongke.kit.db import Writer
from huirongke.kit.errors import AppError, PreconditionRequired, Unauthorized
from huirongke.privacy import audit
from huirongke.privacy.purposes import PURPOSES


async def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Unit = Literal["read", "write", "audited_read"]
UNIT_OF_WORK = "x-unit-of-work"


def unit(kind: Unit) -> dict[str, Any]:
    """Route keyword arguments that declare the unit of work a route's `DB` session is:
    `@router.get(path, **READ)`. Shown in the OpenAPI description as `x-unit-of-work`.

    - `read`: a read-only session (on SQLite it runs beside the writer); any write in it raises;
    - `write`: the request holds the right to write, and commits before the response is sent;
    - `audited_read`: reads like `read`, and the audit events it records (a download, a staff read) are
      written afterwards in a short unit of their own, so a read never turns into a writer midway.
    """
    return {"openapi_extra": {UNIT_OF_WORK: kind}}


READ, WRITE, AUDITED_READ = unit("read"), unit("write"), unit("audited_read")


def declared_unit(request: Request) -> Unit:
    route = request.scope.get("route")
    kind = (getattr(route, "openapi_extra", None) or {}).get(UNIT_OF_WORK)
    if kind not in ("read", "write", "audited_read"):
        path = getattr(route, "path", "?")
        raise RuntimeError(f"route {path} uses a DB session but declares no unit of work (READ/WRITE/...)")
    return cast(Unit, kind)


async def get_session(
    request: Request, ctx: Annotated[AppContext, Depends(get_ctx)]
) -> AsyncIterator[Session]:
    """One unit of work per request, of the kind the route declares. Opening a read session does no
    I/O, so only writers (which take SQLite's write lock at BEGIN) and the final commit go through the
    thread pool. A writer first waits for the right to write without holding a request thread (see
    `Database.claim_writer_async`)."""
    kind = declared_unit(request)
    write = kind == "write"
    writer = await ctx.db.claim_writer_async() if write else None
    try:
        unit = ctx.db.session(write=write, writer=writer)
        session = await run_in_threadpool(unit.__enter__) if write else unit.__enter__()
    except BaseException:
        if writer is not None:
            writer.release()
        raise
    try:
        yield session
    except BaseException as exc:
        await run_in_threadpool(unit.__exit__, type(exc), exc, exc.__traceback__)
        raise
    events = audit.take_pending(session) if kind == "audited_read" else []
    await run_in_threadpool(unit.__exit__, None, None, None)
    if events:
        writer = await ctx.db.claim_writer_async()
        await run_in_threadpool(_write_events, ctx, writer, events)


def _write_events(ctx: AppContext, writer: Writer, events: list[Any]) -> None:
    with ctx.db.session(writer=writer) as session:
        audit.put_pending(session, events)


Ctx = Annotated[AppContext, Depends(get_ctx)]
# scope="function": commit when the handler returns, before the response is sent, so a client
# never sees success for a transaction that then failed to commit.
DB = Annotated[Session, Depends(get_session, scope="function")]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("请先登录", code="unauthorized")
    return token.strip()


async def _identify(request: Request) -> Identity:
    """The token's identity: from memory when recently seen and unchanged, else one thread-pool hop."""
    ctx: AppContext = request.app.state.ctx
    token_hash = hash_token(_bearer(request))
    who = ctx.identities.get(token_hash, ctx.policy.cached_version())
    if who is None:
        who = await run_in_threadpool(identity.load, ctx, token_hash)
    request.state.user_id = who.user_id
    return who


def _check_agreed(who: Identity) -> Identity:
    """Agreed to the current policy (P01, P41)."""
    if not who.policy_agreed:
        raise AppError(
            "隐私政策已更新，请阅读并同意后继续使用",
            code="policy_update_required",
            status=428,
            details={"current_version": who.policy_version},
        )
    return who


def _check_unrestricted(who: Identity) -> Identity:
    """Not a minor still waiting for a guardian's consent (P42)."""
    if who.restricted:
        raise AppError(
            "您未满 18 周岁，需要监护人同意后才能使用此功能",
            code="guardian_consent_required",
            status=403,
        )
    return who


# One dependency per gate rather than a chain: each level of dependency costs the hot path.
async def _signed_in(request: Request) -> Identity:
    return await _identify(request)


async def _agreed(request: Request) -> Identity:
    return _check_agreed(await _identify(request))


async def _unrestricted(request: Request) -> Identity:
    return _check_unrestricted(_check_agreed(await _identify(request)))


#: Signed in, whether or not the current policy is agreed: only the rights endpoints use this.
AnyIdentity = Annotated[Identity, Depends(_signed_in)]
#: What a minor may still use before a guardian consents: their profile and the guardian flow.
#: (Consents are not among them: a minor's consent needs the guardian's first.)
AgreedIdentity = Annotated[Identity, Depends(_agreed)]
CurrentIdentity = Annotated[Identity, Depends(_unrestricted)]


@dataclass
class Principal:
    """An identity with its user row, loaded in the request's unit of work (for handlers that read or
    change the user)."""

    identity: Identity
    user: User

    @property
    def session_id(self) -> str:
        return self.identity.session_id

    @property
    def policy_version(self) -> int:
        return self.identity.policy_version


def _with_user(who: Identity, session: Session) -> Principal:
    user = session.get(User, who.user_id)
    if user is None or user.status != "active":  # changed since the identity was read
        raise Unauthorized("登录已过期，请重新登录", code="token_expired")
    return Principal(who, user)


def _any_principal(who: AnyIdentity, session: DB) -> Principal:
    return _with_user(who, session)


def _agreed_principal(who: AgreedIdentity, session: DB) -> Principal:
    return _with_user(who, session)


def _principal(who: CurrentIdentity, session: DB) -> Principal:
    return _with_user(who, session)


AnyUser = Annotated[Principal, Depends(_any_principal)]
AgreedUser = Annotated[Principal, Depends(_agreed_principal)]
CurrentUser = Annotated[Principal, Depends(_principal)]


def client_ip(request: Request) -> str | None:
    """The client's address: the peer, or through trusted proxies only (`kit/client_address.py`)."""
    peer = request.client.host if request.client else None
    spec = request.app.state.ctx.settings.forwarded_allow_ips
    return client_address(spec, peer, request.headers.getlist("x-forwarded-for"))


def require_consent(purpose_key: str) -> Callable[[Principal, Request], Principal]:
    """A route dependency: 428 consent_required unless the signed-in user granted the purpose (P05).
    Use as `Annotated[Principal, Depends(require_consent("real_name"))]`. The consent states travel
    with the cached identity: the first gated request after a load reads them, the next ones do not."""
    purpose = PURPOSES[purpose_key]

    def check(user: CurrentUser, request: Request) -> Principal:
        if purpose.needs_consent and purpose_key not in identity.consents(
            request.app.state.ctx, user.identity
        ):
            raise PreconditionRequired(
                f"使用此功能需要您同意「{purpose.label}」：{purpose.description}",
                code="consent_required",
                details={"purpose": purpose_key, "label": purpose.label, "basis": purpose.basis},
            )
        return user

    return check
