"""Request dependencies: the DB session, the signed-in user, and the policy gate (P01, P41)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal, cast

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.utils import get_typed_signature
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from huirongke.accounts import identity
from huirongke.accounts.identity import Identity
from huirongke.accounts.models import User
from huirongke.accounts.signin import hash_token
from huirongke.context import AppContext
from huirongke.kit.client_address import client_address
from huirongke.kit.db import Unit as DbUnit
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
    """One unit of work per request, of the kind the route declares. Opening it does no I/O (the session
    begins at its first statement); a writer first waits for the right to write without holding a
    request thread (see `Database.claim_writer_async`). The route's handler then reads, writes and
    commits in one thread-pool hop (`UnitRoute`); only a handler that does not run that way (an
    `async def` one) is committed here, in a hop of its own."""
    kind = declared_unit(request)
    write = kind == "write"
    writer = await ctx.db.claim_writer_async() if write else None
    unit = ctx.db.unit(write=write, writer=writer)
    request.scope[_UNIT] = (kind, unit)
    try:
        yield unit.session
    except BaseException:
        if not unit.closed:
            # Rolling back a transaction that has begun is I/O: not on the event loop.
            await (run_in_threadpool(unit.abort) if unit.session.in_transaction() else _now(unit.abort))
        raise
    if not unit.closed:
        await _write_late(ctx, await run_in_threadpool(_end, ctx, kind, unit))


_UNIT = "hrk_unit"  # request.scope: (kind, Unit) of the request's unit of work
_BEFORE = "hrk_before_handler"  # session.info: checks to run in the handler's thread, before it


async def _now(fn: Callable[[], None]) -> None:
    fn()


def _end(ctx: AppContext, kind: Unit, unit: DbUnit) -> list[Any]:
    """Commit the unit. An audited read's events are then written in a short writing unit of their
    own, here if the right to write is free at once, else returned for `_write_late`."""
    events = audit.take_pending(unit.session) if kind == "audited_read" else []
    unit.finish()
    if events and (writer := ctx.db.try_claim_writer()) is not None:
        _write_events(ctx, writer, events)
        return []
    return events


async def _write_late(ctx: AppContext, events: list[Any]) -> None:
    if events:
        writer = await ctx.db.claim_writer_async()
        await run_in_threadpool(_write_events, ctx, writer, events)


def _write_events(ctx: AppContext, writer: Writer, events: list[Any]) -> None:
    with ctx.db.session(writer=writer) as session:
        audit.put_pending(session, events)


def _one_hop(request: Request) -> bool:
    return bool(getattr(request.scope.get("route"), "one_hop", False))


async def before_handler(request: Request, session: Session, check: Callable[[], Any]) -> None:
    """Run `check` (database I/O a dependency needs) in the thread that will run the handler, just
    before it, when the route runs in one hop; else now, in a hop of its own."""
    if _one_hop(request):
        session.info.setdefault(_BEFORE, []).append(check)
    else:
        await run_in_threadpool(check)


def _run_in_unit(
    ctx: AppContext, kind: Unit, unit: DbUnit, route: APIRoute, endpoint: Callable[..., Any], kwargs: Any
) -> tuple[Any, list[Any]]:
    """A request's database work in one worker thread: the dependencies' deferred checks (the
    principal's user row, consents), the handler, the response model's validation (while the session
    is open: it may read attributes), and the commit. Any error rolls the unit back."""
    try:
        for check in unit.session.info.pop(_BEFORE, ()):
            check()
        result = endpoint(**kwargs)
        field = route.response_field
        if field is not None and not isinstance(result, Response):
            result, errors = field.validate(result, {}, loc=("response",))
            if errors:
                raise ResponseValidationError(errors=errors, body=result)
    except BaseException:
        unit.abort()
        raise
    return result, _end(ctx, kind, unit)


_REQUEST = "_hrk_unit_request"


def _in_one_hop(endpoint: Callable[..., Any], route: APIRoute) -> Callable[..., Any]:
    """`endpoint` (a `def` handler) as an `async def` one that runs it with its unit of work in one
    thread-pool hop. Each hop waits behind every ready request on the event loop: a writing request
    that made four or five (open, principal, handler, validation, commit) took 130-300 ms under a
    saturating read load instead of 7 ms, and on SQLite held the single writer across all of them."""
    signature = inspect.signature(endpoint)
    # FastAPI hands the request to one parameter only: the handler's own, else one added here.
    own = [
        p.name
        for p in get_typed_signature(endpoint).parameters.values()
        if isinstance(p.annotation, type) and issubclass(p.annotation, Request)
    ]
    name = own[0] if own else _REQUEST
    params = list(signature.parameters.values())
    if not own:
        params.append(inspect.Parameter(_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request))

    @functools.wraps(endpoint)
    async def run(**kwargs: Any) -> Any:
        request: Request = kwargs[name] if own else kwargs.pop(name)
        claimed = request.scope.get(_UNIT)
        if claimed is None:  # the route declares a unit but took no session
            return await run_in_threadpool(endpoint, **kwargs)
        ctx: AppContext = request.app.state.ctx
        kind, unit = claimed
        result, late = await run_in_threadpool(_run_in_unit, ctx, kind, unit, route, endpoint, kwargs)
        await _write_late(ctx, late)
        return result

    run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return run


class UnitRoute(APIRoute):
    """The route class of every router (`APIRouter(route_class=UnitRoute)`): a `def` handler of a route
    that declares its unit of work runs in one thread-pool hop with it (see `_in_one_hop`)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        declared = (kwargs.get("openapi_extra") or {}).get(UNIT_OF_WORK) is not None
        self.one_hop = declared and not inspect.iscoroutinefunction(endpoint)
        super().__init__(path, _in_one_hop(endpoint, self) if self.one_hop else endpoint, **kwargs)


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


class Principal:
    """An identity with its user row, read in the request's unit of work (for handlers that read or
    change the user): in the handler's thread, just before the handler (see `before_handler`)."""

    __slots__ = ("_user", "identity", "session")

    def __init__(self, identity: Identity, session: Session) -> None:
        self.identity = identity
        self.session = session
        self._user: User | None = None

    @property
    def user(self) -> User:
        user = self._user
        if user is None:
            user = self.session.get(User, self.identity.user_id)
            if user is None or user.status != "active":  # changed since the identity was read
                raise Unauthorized("登录已过期，请重新登录", code="token_expired")
            self._user = user
        return user

    def load(self) -> None:
        self.user  # noqa: B018  (reads the row, or raises)

    @property
    def session_id(self) -> str:
        return self.identity.session_id

    @property
    def policy_version(self) -> int:
        return self.identity.policy_version


async def _with_user(request: Request, who: Identity, session: Session) -> Principal:
    principal = Principal(who, session)
    await before_handler(request, session, principal.load)
    return principal


async def _any_principal(request: Request, who: AnyIdentity, session: DB) -> Principal:
    return await _with_user(request, who, session)


async def _agreed_principal(request: Request, who: AgreedIdentity, session: DB) -> Principal:
    return await _with_user(request, who, session)


async def _principal(request: Request, who: CurrentIdentity, session: DB) -> Principal:
    return await _with_user(request, who, session)


AnyUser = Annotated[Principal, Depends(_any_principal)]
AgreedUser = Annotated[Principal, Depends(_agreed_principal)]
CurrentUser = Annotated[Principal, Depends(_principal)]


def client_ip(request: Request) -> str | None:
    """The client's address: the peer, or through trusted proxies only (`kit/client_address.py`)."""
    peer = request.client.host if request.client else None
    spec = request.app.state.ctx.settings.forwarded_allow_ips
    return client_address(spec, peer, request.headers.getlist("x-forwarded-for"))


def require_consent(purpose_key: str) -> Callable[[Principal, Request], Awaitable[Principal]]:
    """A route dependency: 428 consent_required unless the signed-in user granted the purpose (P05).
    Use as `Annotated[Principal, Depends(require_consent("real_name"))]`. The consent states travel
    with the cached identity: the first gated request after a load reads them (in the handler's
    thread), the next ones do not."""
    purpose = PURPOSES[purpose_key]

    def check_granted(ctx: AppContext, user: Principal) -> None:
        if purpose_key not in identity.consents(ctx, user.identity):
            raise PreconditionRequired(
                f"使用此功能需要您同意「{purpose.label}」：{purpose.description}",
                code="consent_required",
                details={"purpose": purpose_key, "label": purpose.label, "basis": purpose.basis},
            )

    async def check(user: CurrentUser, request: Request) -> Principal:
        if purpose.needs_consent:
            ctx: AppContext = request.app.state.ctx
            if user.identity.granted is not None:  # known: no I/O
                check_granted(ctx, user)
            else:
                await before_handler(request, user.session, functools.partial(check_granted, ctx, user))
        return user

    return check
