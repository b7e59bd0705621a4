"""The HTTP protocol `serve` runs: uvicorn's httptools protocol with two limits it lacks.

- **Header size.** uvicorn bounds headers only with h11 (`h11_max_incomplete_event_size`); with
  httptools a request line plus headers may grow without end. Past `HRK_HEADER_MAX_BYTES` the
  connection gets 431 `headers_too_large` and is closed.
- **Half-open connections.** uvicorn's keep-alive timer runs only after a response. A client that
  connects and sends nothing, or trickles its headers a byte at a time, held a connection (and a file
  descriptor) for ever. Now the headers of every request must be complete within
  `HRK_HEADER_TIMEOUT_SECONDS` of the connection opening or of the request's first byte, or the
  connection is closed.

Bodies are bounded per route, and in time, by `kit/limits.py`; connections in total by uvicorn's
`limit_concurrency` (`HRK_MAX_CONNECTIONS`), idle keep-alive ones by `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from huirongke.kit.errors import error_body

_TOO_LARGE = json.dumps(
    error_body("headers_too_large", "请求头过大"), ensure_ascii=False, separators=(",", ":")
).encode()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_max_bytes = 16 * 1024
    header_timeout_seconds = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_seconds, self._headers_late)

    def _disarm(self) -> None:
        timer, self._header_timer = self._header_timer, None
        if timer is not None:
            timer.cancel()

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.header_max_bytes and not self._refused:
            self._refused = True
            self._disarm()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\n"
                b"content-length: " + str(len(_TOO_LARGE)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + _TOO_LARGE
            )
            self.transport.close()
            raise ConnectionAbortedError("request headers too large")

    def send_400_response(self, msg: str) -> None:
        if self._refused:  # the parser reports the abort above as a bad request: answered already
            return
        super().send_400_response(msg)


def guarded_protocol(header_max_bytes: int, header_timeout_seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class to pass as uvicorn's `http=`, with these limits."""
    return type(
        "HrkHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_max_bytes": header_max_bytes, "header_timeout_seconds": header_timeout_seconds},
    )


def uvicorn_options(settings: Any) -> dict[str, Any]:
    """The uvicorn options `serve` uses for the limits above (and uvicorn's own)."""
    return {
        "http": guarded_protocol(settings.header_max_bytes, settings.header_timeout_seconds),
        "h11_max_incomplete_event_size": settings.header_max_bytes,  # if run with http="h11"
        "timeout_keep_alive": settings.keep_alive_seconds,
        "limit_concurrency": settings.max_connections,
    }
