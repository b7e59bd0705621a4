"""`Cache-Control: no-store` on answers that must never be kept by a browser, a proxy or an app's HTTP
cache (issue 8): every answer to a request that carries credentials (`Authorization`), and every JSON
answer under `/api/`. A shared device's cache must not keep someone's profile, phone number or export
status, and a proxy must not serve one user's answer to another.

Pure ASGI, like `kit/middleware.py`: it rewrites the response's start message only, so streaming
answers and background work are untouched. Static files (fingerprinted, cached immutably) and public
media stay cacheable: they are neither under a credential nor JSON under `/api/`.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_STORE = b"no-store"
API_PREFIX = "/api/"


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json" or media_type.endswith(b"+json")
    return False


class NoStoreMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentialed = any(name == b"authorization" for name, _ in scope.get("headers", []))
        api = str(scope.get("path", "")).startswith(API_PREFIX)
        if not (credentialed or api):
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if credentialed or _is_json(headers):
                    headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
                    headers.append((b"cache-control", NO_STORE))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)
