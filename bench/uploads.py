"""Sign-in latency while other users upload 40-megapixel images (issue 8, "uploads never stall others").

Starts a real `huirongke serve` (as `bench.run` does), then measures a burst of sign-ins twice: on an
idle server, and while a few users keep uploading 40-megapixel PNGs (the pixel limit) as fast as the
server takes them. Before issue 8 every upload held SQLite's writer while Pillow decoded it in a
request thread: sign-ins queued behind it for seconds and some got 503. Now the decode runs in the
media worker pool, outside any lock, and excess uploads are refused (503 `media_busy`).

    python -m bench.uploads                     # SQLite, the checkout's src/
    python -m bench.uploads --src-ref <commit>  # another commit's src/ (e.g. the one before issue 8)
    python -m bench.uploads --signins 300 --uploaders 4 --concurrency 8

It prints one table (p50/p99 sign-in latency idle and under uploads, their ratio, the upload outcomes,
the server's RSS with its worker processes) and writes nothing else. Figures depend on what else the
machine runs: compare the ratio, on a quiet machine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.client import (
    HOST,
    Conn,
    HttpError,
    _pool,
    bench_phones,
    policy_version,
    prepare_codes,
    run_async,
    sign_in_burst,
)
from bench.server import Server, running_server, source_snapshot

ROOT = Path(__file__).resolve().parent.parent
BOUNDARY = "hrkbenchboundary"
UPLOAD_ENV = {
    # the uploaders upload as fast as they can: no per-user rate or quota gets in the way
    "HRK_UPLOAD_RATE_PER_MINUTE": "1000000",
    "HRK_UPLOAD_QUOTA_MB": "1000000",
}


def heavy_png(width: int = 8000, height: int = 5000) -> bytes:
    """A 40-megapixel PNG (the default pixel limit) that compresses to little: all decode, no transfer."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (30, 120, 200))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 200):
        draw.line([(x, 0), (width - x, height)], fill=(x % 255, 80, 160), width=9)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def upload_once(port: int, token: str, data: bytes) -> int:
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    head = (
        f"POST /api/v1/media HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(head + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 120)
        await reader.read()  # to the close
        return int(status_line.split(b" ", 2)[1])
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def keep_uploading(
    port: int, token: str, data: bytes, stop: asyncio.Event, outcomes: Counter[str]
) -> None:
    while not stop.is_set():
        try:
            status = await upload_once(port, token, data)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError) as exc:
            outcomes[type(exc).__name__] += 1
            await asyncio.sleep(0.2)
            continue
        outcomes[str(status)] += 1
        if status in (429, 503):
            await asyncio.sleep(0.2)  # as a client honouring Retry-After would, only sooner


class PeakRss:
    """Samples the server's RSS (with its worker processes) in a thread while uploads run."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak_mb = 0.0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            memory = self.server.memory()
            self.peak_mb = max(self.peak_mb, memory["rss_mb"])
            self.peak_processes = max(self.peak_processes, int(memory["processes"]))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def register(port: int, phones: list[str]) -> list[str]:
    """Register the phones (their first sign-in) and return their tokens. The age declaration is sent
    only to a server that knows it (`--src-ref` of a commit before the age gate refuses the field)."""
    conn = Conn(port)
    try:
        version = await policy_version(conn)
        probe = {"phone": "0", "code": "0", "age": {"adult": True}}  # invalid: only the 422 matters
        _status, refusal = await conn.request("POST", "/api/v1/auth/sessions", probe)
    finally:
        await conn.close()
    age = {} if b'"field":"age","type":"extra_forbidden"' in refusal else {"age": {"adult": True}}
    codes, _ = await prepare_codes(port, phones, 8)

    async def one(conn: Conn, item: tuple[str, str]) -> str:
        body = {"phone": item[0], "code": item[1], "accept_policy_version": version, **age}
        status, data = await conn.request("POST", "/api/v1/auth/sessions", body)
        if status != 201:
            raise HttpError(f"registration -> {status}: {data[:200].decode(errors='replace')}")
        return str(json.loads(data)["token"])

    results, _, _ = await _pool(port, list(zip(phones, codes, strict=True)), 8, one)
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise HttpError(f"{len(failed)} of {len(phones)} registrations failed; first: {failed[0]}")
    return [str(r) for r in results]


async def measure(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Both bursts sign in returning users (a code check and a new session: the common sign-in)."""
    port = server.port
    uploaders = await register(port, bench_phones(args.uploaders, "136"))
    idle_phones = bench_phones(args.signins, "137")
    busy_phones = bench_phones(args.signins, "135")
    await register(port, idle_phones + busy_phones)
    idle_codes, _ = await prepare_codes(port, idle_phones, 8)
    busy_codes, _ = await prepare_codes(port, busy_phones, 8)
    data = heavy_png()

    idle = await sign_in_burst(port, idle_phones, idle_codes, args.concurrency, None)
    idle_rss = server.memory()["rss_mb"]

    stop = asyncio.Event()
    outcomes: Counter[str] = Counter()
    tasks = [asyncio.create_task(keep_uploading(port, t, data, stop, outcomes)) for t in uploaders]
    await asyncio.sleep(args.warmup)  # the uploads are in full swing before the sign-ins start
    with PeakRss(server) as rss:
        busy = await sign_in_burst(port, busy_phones, busy_codes, args.concurrency, None)
        stop.set()
        await asyncio.gather(*tasks)
    return {
        "png_bytes": len(data),
        "idle": idle.summary(),
        "under_uploads": busy.summary(),
        "uploads": dict(outcomes),
        "rss_mb": {"idle": idle_rss, "peak_under_uploads": rss.peak_mb, "processes": rss.peak_processes},
    }


def _ratio(busy: dict[str, Any], idle: dict[str, Any], key: str) -> str:
    b, i = busy[key], idle[key]
    return f"{b / i:.1f}×" if b and i else "n/a"


def report(result: dict[str, Any]) -> str:
    idle, busy = result["idle"], result["under_uploads"]
    rows = [
        ("sign-ins", f"{idle['ok']}/{idle['attempted']}", f"{busy['ok']}/{busy['attempted']}", ""),
        ("statuses", json.dumps(idle["statuses"]), json.dumps(busy["statuses"]), ""),
        ("p50 ms", str(idle["p50_ms"]), str(busy["p50_ms"]), _ratio(busy, idle, "p50_ms")),
        ("p99 ms", str(idle["p99_ms"]), str(busy["p99_ms"]), _ratio(busy, idle, "p99_ms")),
        ("sign-ins/s", str(idle["per_s"]), str(busy["per_s"]), ""),
        ("server RSS MB", str(result["rss_mb"]["idle"]), str(result["rss_mb"]["peak_under_uploads"]), ""),
    ]
    lines = [
        f"| {'':14} | {'idle':>18} | {'under uploads':>22} | {'ratio':>6} |",
        f"|{'-' * 16}|{'-' * 20}|{'-' * 24}|{'-' * 8}|",
    ]
    lines += [f"| {a:14} | {b:>18} | {c:>22} | {d:>6} |" for a, b, c, d in rows]
    lines.append(
        f"\nuploads of a {result['png_bytes'] // 1024} KB, 40-megapixel PNG while the sign-ins ran: "
        f"{json.dumps(result['uploads'])}; peak processes (server + workers): {result['rss_mb']['processes']}"
    )
    return "\n".join(lines)


@contextlib.contextmanager
def _source(ref: str | None) -> Iterator[Path | None]:
    if ref is None:
        yield None
        return
    with source_snapshot(ROOT, ref) as (src, commit):
        print(f"benchmarking src/ of {commit[:12]}")
        yield src


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signins", type=int, default=200, help="sign-ins per burst (idle, then loaded)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections the sign-ins use")
    parser.add_argument("--uploaders", type=int, default=3, help="users uploading 40 MP images meanwhile")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of uploads before the sign-ins")
    parser.add_argument("--src-ref", help="benchmark src/ of this git ref instead of the checkout")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON as well")
    args = parser.parse_args()
    started = time.perf_counter()
    with _source(args.src_ref) as src, running_server(src_dir=src, env=UPLOAD_ENV) as server:
        result = run_async(measure(server, args))
    print(report(result))
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
