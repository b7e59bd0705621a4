"""Request limits (issue 8): bodies per route (413 `payload_too_large`, by Content-Length and as they
stream), a deadline for a body trickled slowly (408 `request_timeout`), header size (431) and
half-open connections (closed), through the uvicorn protocol `serve` runs."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from conftest import auth, sign_up
from huirongke.app import create_app
from huirongke.kit.httpserver import uvicorn_options


def _asgi(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], receive: Any
) -> list[dict[str, Any]]:
    """Drive the app directly, with a `receive` of the test's making (what a slow or lying client
    sends), and return the messages it sent back."""
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    return messages


def _answer(messages: list[dict[str, Any]]) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body)


def test_a_json_body_over_the_limit_is_413_from_its_content_length(client):
    big = {"phone": "13800138000", "padding": "x" * (70 * 1024)}
    r = client.post("/api/v1/auth/sms-codes", json=big)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert r.headers["connection"] == "close"


def test_a_streamed_body_is_cut_off_at_the_limit(client, settings):
    sent = {"bytes": 0}

    async def receive() -> dict[str, Any]:  # chunked, no Content-Length: 8 KiB at a time, for ever
        sent["bytes"] += 8192
        return {"type": "http.request", "body": b" " * 8192, "more_body": True}

    headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    messages = _asgi(client.app, "POST", "/api/v1/auth/sms-codes", headers, receive)
    status, response_headers, body = _answer(messages)
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert response_headers[b"connection"] == b"close"
    assert sent["bytes"] <= settings.json_body_max_bytes + 8192  # not one chunk more than needed


def test_a_body_that_does_not_arrive_in_time_is_408(client, settings):
    settings.body_timeout_seconds = 0.2
    app = create_app(ctx=client.app.state.ctx)  # built with the short deadline
    token, _ = sign_up(client)
    first = {"sent": False}

    async def receive() -> dict[str, Any]:  # one byte, then nothing more (a trickling client)
        if not first["sent"]:
            first["sent"] = True
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"40"),
        (b"authorization", auth(token)["Authorization"].encode()),
    ]
    messages = _asgi(app, "PATCH", "/api/v1/me/privacy-settings", headers, receive)
    status, response_headers, body = _answer(messages)
    assert status == 408
    assert body["error"]["code"] == "request_timeout"
    assert response_headers[b"connection"] == b"close"


def test_an_upload_route_takes_its_own_larger_limit(client):
    import io

    from PIL import Image

    token, _ = sign_up(client)
    out = io.BytesIO()
    Image.frombytes("RGB", (200, 200), bytes(range(256)) * 468 + bytes(192)).save(out, format="BMP")
    assert len(out.getvalue()) > 64 * 1024  # over the JSON limit, under the image limit
    files = {"file": ("a.bmp", out.getvalue(), "image/bmp")}
    r = client.post("/api/v1/media", files=files, headers=auth(token))
    assert r.status_code == 201, r.text


# --- the server protocol ----------------------------------------------------------------------------


@pytest.fixture
def server(ctx) -> Iterator[int]:
    ctx.settings.header_max_bytes = 4096
    ctx.settings.header_timeout_seconds = 0.5
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(ctx=ctx), log_config=None, access_log=False, **uvicorn_options(ctx.settings)
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    ready = threading.Event()
    for _ in range(3000):
        if srv.started:
            break
        ready.wait(0.01)
    assert srv.started
    yield sock.getsockname()[1]
    srv.should_exit = True
    thread.join()
    sock.close()


def _connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port))
    conn.settimeout(30)  # a safety net only: the assertions wait for the server's answer or close
    return conn


def _read_all(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def test_a_normal_request_is_served(server):
    with _connect(server) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(conn).startswith(b"HTTP/1.1 200")


def test_headers_over_the_limit_are_431_and_the_connection_closes(server):
    with _connect(server) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 8000 + b"\r\n\r\n")
        answer = _read_all(conn)
    assert answer.startswith(b"HTTP/1.1 431")
    assert b'"headers_too_large"' in answer


def test_a_connection_that_never_sends_its_headers_is_closed(server):
    with _connect(server) as conn:
        assert conn.recv(1) == b""  # closed by the server, nothing sent
    with _connect(server) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        assert _read_all(conn) == b""


def test_headers_trickled_a_byte_at_a_time_do_not_hold_the_connection(server):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 2000
    pause = threading.Event()
    with _connect(server) as conn:
        for byte in request:  # one byte every 10 ms: 2 s in all, far past the 0.5 s allowed
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                break  # closed by the server
            pause.wait(0.01)
        else:
            pytest.fail("the server read 2 KB of headers a byte at a time without closing")
