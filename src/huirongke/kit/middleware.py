"""Pure-ASGI middleware: request ids, an access log that names route templates (never raw paths or
query strings), and security headers."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huirongke.kit.logging import count_dropped

log = structlog.get_logger("huirongke.access")

# P18: strict transport and content security for the web client.
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"geolocation=(), camera=(), microphone=(), clipboard-read=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_QUIET = {"/healthz", "/readyz"}


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if "\x00" in path:  # no route has a NUL in it, and some databases cannot even compare one
            scope = dict(scope, path="/__invalid_path__")
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                # The API docs page too: it loads nothing from elsewhere (kit/apidocs.py).
                headers.extend(SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                if path not in _QUIET:
                    user_id: Any = scope.get("state", {}).get("user_id")
                    try:
                        log.info(
                            "request",
                            method=scope["method"],
                            path=route_template(scope),
                            status=status,
                            ms=round((time.perf_counter() - start) * 1000, 1),
                            user_id=user_id,
                        )
                    except Exception:  # a full disk, a closed stream: never the request's problem
                        count_dropped()


UNMATCHED = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The matched route's template (`/api/v1/users/{user_id}`), never the raw path: a path can name
    another user (their id), carry a media key (a capability URL to someone's photo) or anything a
    client typed. A path that matched no route is logged as `UNMATCHED`."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    template = getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            rid = value.decode("latin-1")[:64]
            return rid if rid.replace("-", "").isalnum() else None
    return None
