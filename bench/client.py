"""A small keep-alive HTTP/1.1 client on asyncio (on uvloop when installed) and the API flows the bench
drives: sign-up of the bench user, pre-creating SMS codes, and the concurrent sign-in bursts.

A hand-rolled client rather than httpx: the load generator shares the machine's cores with the server,
so it should cost as little CPU per request as possible."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

HOST = "127.0.0.1"
_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


class HttpError(Exception):
    pass


class Conn:
    """One keep-alive connection to 127.0.0.1:port."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._r: asyncio.StreamReader | None = None
        self._w: asyncio.StreamWriter | None = None
        self._answered = 0  # responses received on the current socket
        self.stale_retries = 0

    async def open(self) -> None:
        self._r, self._w = await asyncio.open_connection(HOST, self.port)
        self._answered = 0

    async def close(self) -> None:
        if self._w is not None:
            self._w.close()
            with contextlib.suppress(OSError):
                await self._w.wait_closed()
            self._r = self._w = None

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(self._request(method, path, body, headers), self.timeout)
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
            # A kept-alive socket the server closed after its previous response (uvicorn does so after
            # an unhandled exception): nothing of this request was answered, so send it again, once, on a
            # new connection, as HTTP clients do. Counted, and reported with the results.
            partial = getattr(exc, "partial", b"")
            if not self._answered or partial:
                raise
            await self.close()
            self.stale_retries += 1
            return await asyncio.wait_for(self._request(method, path, body, headers), self.timeout)

    async def _request(
        self, method: str, path: str, body: Any, headers: dict[str, str] | None
    ) -> tuple[int, bytes]:
        if self._w is None:
            await self.open()
        assert self._r is not None and self._w is not None
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._w.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        await self._w.drain()
        head = await self._r.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        hdrs = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            data = await self._r.readexactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            data = await self._read_chunked()
        else:
            data = b""
        self._answered += 1
        if hdrs.get("connection", "").lower() == "close":
            await self.close()
        return status, data

    async def _read_chunked(self) -> bytes:
        assert self._r is not None
        out = bytearray()
        while True:
            size = int((await self._r.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._r.readuntil(b"\r\n")
                return bytes(out)
            out += await self._r.readexactly(size)
            await self._r.readexactly(2)


async def _json(conn: Conn, method: str, path: str, body: Any = None, *, expect: int) -> Any:
    status, data = await conn.request(method, path, body)
    if status != expect:
        raise HttpError(f"{method} {path} -> {status}: {data[:300].decode(errors='replace')}")
    return json.loads(data) if data else None


# --- Flows -----------------------------------------------------------------------------------------


def bench_phones(count: int, prefix: str = "139") -> list[str]:
    """Distinct valid mainland mobile numbers (national form), never a real person's on purpose."""
    return [f"{prefix}{i:08d}" for i in range(count)]


async def policy_version(conn: Conn) -> int:
    return int((await _json(conn, "GET", "/api/v1/privacy/policy", expect=200))["version"])


async def _outbox(conn: Conn, phone: str) -> list[dict[str, Any]]:
    outbox = await _json(conn, "GET", f"/api/v1/dev/sms-outbox?phone={quote(phone)}", expect=200)
    return list(outbox["messages"])  # newest first


async def fresh_code(conn: Conn, phone: str) -> str:
    """Request a code through the real API, then read that new code back from the dev outbox.

    The outbox row is written by an after-commit hook, possibly after the 202 has been sent, so the newest
    message can still be the previous code: wait (bounded) for a message that was not there before."""
    before = {(m["sent_at"], m["text"]) for m in await _outbox(conn, phone)}
    await _json(conn, "POST", "/api/v1/auth/sms-codes", {"phone": phone}, expect=202)
    for _ in range(100):
        new = [m for m in await _outbox(conn, phone) if (m["sent_at"], m["text"]) not in before]
        if new:
            match = _CODE.search(new[0]["text"])
            if not match:
                raise HttpError(f"no code in the outbox text for {phone}")
            return match.group(1)
        await asyncio.sleep(0.02)
    raise HttpError(f"the new code never reached the dev outbox for {phone}")


async def sign_up(port: int, phone: str) -> dict[str, Any]:
    """Register (or sign in) one user with the policy accepted; return the session response."""
    conn = Conn(port)
    try:
        version = await policy_version(conn)
        code = await fresh_code(conn, phone)
        body = {"phone": phone, "code": code, "accept_policy_version": version, "age": {"adult": True}}
        session: dict[str, Any] = await _json(conn, "POST", "/api/v1/auth/sessions", body, expect=201)
        # The session may not be committed yet when the 201 arrives (FastAPI runs the exit code of
        # `yield` dependencies, where the session commits, after sending the response): retry, bounded,
        # and record how often the new token was refused.
        session["bench_me_401s"] = 0
        for _ in range(100):
            status, data = await conn.request(
                "GET", "/api/v1/me", headers={"Authorization": f"Bearer {session['token']}"}
            )
            if status != 401:
                break
            session["bench_me_401s"] += 1
            await asyncio.sleep(0.01)
        if status != 200 or json.loads(data)["id"] != session["user"]["id"]:
            raise HttpError(f"GET /api/v1/me -> {status}: {data[:300].decode(errors='replace')}")
        return session
    finally:
        await conn.close()


async def _pool(
    port: int, items: Iterable[T], concurrency: int, work: Callable[[Conn, T], Awaitable[Any]]
) -> tuple[list[Any], float, int]:
    """Run `work` over items on `concurrency` keep-alive connections.

    Returns the results (an exception where an item failed), the wall time, and how many requests had
    to be re-sent because the server had closed a kept-alive connection."""
    queue = list(items)
    results: list[Any] = [None] * len(queue)
    next_index = 0

    conns = [Conn(port) for _ in range(max(1, concurrency))]
    # Open the connections before the clock starts: connection setup is not what is measured.
    await asyncio.gather(*(c.open() for c in conns))

    async def worker(conn: Conn) -> None:
        nonlocal next_index
        try:
            while next_index < len(queue):
                i = next_index
                next_index += 1
                try:
                    results[i] = await work(conn, queue[i])
                except (OSError, asyncio.IncompleteReadError, TimeoutError, HttpError, ValueError) as exc:
                    results[i] = exc
                    await conn.close()  # a broken connection is reopened by the next request
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    return results, time.perf_counter() - started, sum(c.stale_retries for c in conns)


async def prepare_codes(port: int, phones: list[str], concurrency: int) -> tuple[list[str], float]:
    results, elapsed, _ = await _pool(port, phones, concurrency, fresh_code)
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise HttpError(f"{len(failed)} of {len(phones)} codes could not be prepared; first: {failed[0]}")
    return [str(r) for r in results], elapsed


@dataclass
class Burst:
    attempted: int
    ok: int
    elapsed_s: float
    statuses: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    stale_connection_retries: int = 0
    outcomes: list[Any] = field(default_factory=list)  # per item: the status code, or the exception

    @property
    def per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None

        return {
            "attempted": self.attempted,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 3),
            "per_s": round(self.per_s, 1),
            "statuses": self.statuses,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "stale_connection_retries": self.stale_connection_retries,
        }


async def sign_in_burst(
    port: int, phones: list[str], codes: list[str], concurrency: int, accept_policy_version: int | None
) -> Burst:
    """Fire one POST /api/v1/auth/sessions per (phone, code), `concurrency` at a time; count the 201s."""
    latencies: list[float] = []

    async def one(conn: Conn, item: tuple[str, str]) -> int:
        body: dict[str, Any] = {"phone": item[0], "code": item[1]}
        if accept_policy_version is not None:
            body["accept_policy_version"] = accept_policy_version
            body["age"] = {"adult": True}  # the age gate of a registration; a returning user sends none
        t0 = time.perf_counter()
        status, data = await conn.request("POST", "/api/v1/auth/sessions", body)
        latencies.append((time.perf_counter() - t0) * 1000)
        if status == 201 and b'"token"' not in data:
            raise HttpError("201 without a token")
        return status

    items = list(zip(phones, codes, strict=True))
    results, elapsed, retries = await _pool(port, items, concurrency, one)
    statuses = Counter(str(r) if isinstance(r, int) else type(r).__name__ for r in results)
    ok = statuses.get("201", 0)
    return Burst(len(results), ok, elapsed, dict(statuses), latencies, retries, results)
