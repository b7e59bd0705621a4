"""Request body limits, per route, in size and in time (pure ASGI).

- A body larger than its route's limit gets 413 `payload_too_large`: refused from `Content-Length`
  before any byte is read, and counted as it streams when there is none (chunked) or it lies. JSON
  routes take `HRK_JSON_BODY_MAX_BYTES` (64 KiB); a route that takes files declares its own limit.
- A body that has not fully arrived `HRK_BODY_TIMEOUT_SECONDS` after the request's headers gets 408
  `request_timeout` (a client trickling its body a byte at a time no longer holds a request open).

Both answers carry `Connection: close`: the rest of the body is never read. Header size and
half-open connections are bounded by the server protocol (`kit/httpserver.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huirongke.kit.errors import error_body

CLOSE = {"Connection": "close"}


@dataclass(frozen=True)
class BodyLimit:
    """A route's body limit, and the error it answers with past it."""

    bytes: int
    code: str = "payload_too_large"
    message: str = "请求内容过大"


class LimitExceeded(HTTPException):
    """Raised from `receive`, so it reaches the app's handlers wherever the body is read (FastAPI
    re-raises an HTTPException from its body parsing, where any other error would become a 400)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, headers=CLOSE)
        self.error_code = code
        self.error_message = message


def _too_large(limit: BodyLimit) -> LimitExceeded:
    return LimitExceeded(413, limit.code, limit.message)


def _too_slow() -> LimitExceeded:
    return LimitExceeded(408, "request_timeout", "请求超时，请检查网络后重试")


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, default: int, routes: Mapping[str, BodyLimit] | None = None, timeout: float = 60.0
    ) -> None:
        """`routes`: exact paths with a limit other than `default` (an upload route's)."""
        self.app = app
        self.default = BodyLimit(default)
        self.routes = dict(routes or {})
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get(scope["path"], self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit.bytes:
            await _refuse(send, 413, limit.code, limit.message)
            return
        deadline = anyio.current_time() + self.timeout
        received = 0
        done = False

        async def limited() -> Message:
            nonlocal received, done
            if done:
                return await receive()  # past the body: only a disconnect is left to hear
            with anyio.move_on_at(deadline):
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit.bytes:
                        raise _too_large(limit)
                    done = not message.get("more_body", False)
                return message
            raise _too_slow()

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(code, message), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
