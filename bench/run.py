"""`make bench`: start a real `huirongke serve` per backend, measure it, write bench/results/*.json and
regenerate docs/benchmarks.md.

    uv run python -m bench.run                      # SQLite, then PostgreSQL if reachable
    uv run python -m bench.run --backend sqlite     # one backend only
    uv run python -m bench.run --quick              # short smoke run (figures not for the docs)

See bench/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import client, report
from bench.server import PgAdmin, Server, cpu_seconds, running_server, source_snapshot
from bench.wrk import find_wrk, run_wrk, wrk_version

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
FINDINGS = ROOT / "bench" / "findings.md"  # hand-written analysis, copied into docs/benchmarks.md
BENCH_PHONE = "13800138000"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def log(msg: str) -> None:
    print(msg, flush=True)


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def venv_bytecode() -> dict[str, Any]:
    """Whether the installed packages come with compiled bytecode (`UV_COMPILE_BYTECODE=1`), and whether
    the environment forbids writing it: together they decide whether every start compiles every module."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    probes = ["fastapi/routing.py", "sqlalchemy/orm/session.py", "pydantic/main.py", "starlette/routing.py"]
    compiled = [
        Path(importlib.util.cache_from_source(str(purelib / rel))).exists()
        for rel in probes
        if (purelib / rel).exists()
    ]
    return {
        "venv_has_pyc": bool(compiled) and all(compiled),
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE") or None,
    }


def machine_info(wrk: str) -> dict[str, Any]:
    cpu_model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    versions = {}
    packages = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "pydantic", "psycopg", "uvloop", "httptools")
    for pkg in packages:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True)
    return {
        "nproc": int(nproc) if nproc.isdigit() else os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version(wrk),
        "packages": versions,
        "git_commit": git.stdout.strip() or None,
        "src_dirty": bool(dirty.stdout.strip()),
    }


def measure_http(srv: Server, wrk: str, token: str, duration: int, warmup: int) -> dict[str, Any]:
    base = srv.base_url
    auth = {"Authorization": f"Bearer {token}"}
    if warmup:
        log(f"  warm-up: {warmup}s of /api/v1/me and /healthz at 32 connections (discarded)")
        run_wrk(wrk, "warmup-me", f"{base}/api/v1/me", connections=32, duration_s=warmup, headers=auth)
        run_wrk(wrk, "warmup-healthz", f"{base}/healthz", connections=32, duration_s=warmup)
    runs = {
        "healthz_c32": (f"{base}/healthz", 32, None),
        "me_c32": (f"{base}/api/v1/me", 32, auth),
        "me_c8": (f"{base}/api/v1/me", 8, auth),
        "healthz_c8": (f"{base}/healthz", 8, None),
    }
    out: dict[str, Any] = {}
    for label, (url, conns, headers) in runs.items():
        cpu0 = cpu_seconds(srv.proc.pid)
        res = run_wrk(wrk, label, url, connections=conns, duration_s=duration, headers=headers)
        cpu = cpu_seconds(srv.proc.pid) - cpu0
        d = res.as_dict()
        d["server_cpu_s"] = round(cpu, 2)
        d["server_cpu_ms_per_req"] = round(cpu * 1000 / res.requests, 3) if res.requests else None
        d["server_cpu_util"] = round(cpu / res.runtime_s, 2) if res.runtime_s else None
        out[label] = d
        lat = res.latency_ms
        log(
            f"  {label:<12} {res.ok_rps:9.1f} ok req/s  p50 {lat.get('p50', 0):6.2f} ms  "
            f"p99 {lat.get('p99', 0):7.2f} ms  errors {res.non_2xx_3xx}  "
            f"server CPU {d['server_cpu_ms_per_req']} ms/req"
        )
        if not srv.alive():
            raise RuntimeError(f"server died during {label}:\n{srv.log_tail()}")
    return out


class _RowWriter:
    """Another client writing rows the identity does not depend on (permission reports of the same
    user, standing in for posts, likes and messages) at a fixed total rate. Several connections, each
    paced at its share: under load one request can take longer than the interval between writes."""

    def __init__(self, port: int, token: str, per_s: float, connections: int = 16) -> None:
        import threading

        self.port, self.token, self.interval = port, token, connections / per_s
        self.ok = self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"row-writer-{i}", daemon=True)
            for i in range(connections)
        ]

    def __enter__(self) -> _RowWriter:
        self._started = time.monotonic()
        for t in self._threads:
            self._stop.wait(self.interval / len(self._threads))  # spread the connections over the interval
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self.elapsed = time.monotonic() - self._started

    def _count(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.ok += 1
            else:
                self.failed += 1

    def _run(self) -> None:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        events = ("granted", "revoked")
        nxt = time.monotonic()
        i = 0
        while not self._stop.is_set():
            body = json.dumps({"event": events[i % 2]})
            try:
                conn.request("POST", "/api/v1/privacy/permissions/location/events", body, headers)
                resp = conn.getresponse()
                resp.read()
                self._count(resp.status == 201)
            except OSError:
                self._count(False)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            i += 1
            nxt += self.interval
            self._stop.wait(max(0.0, nxt - time.monotonic()))
        conn.close()


def measure_me_under_writes(srv: Server, wrk: str, token: str, duration: int) -> dict[str, Any]:
    """`/me` at 32 connections while another client of the same user writes 50 rows/s to a table the
    identity cache does not depend on: the cache must keep answering (issue 7, target ≥ 40% of
    /healthz)."""
    base = srv.base_url
    auth = {"Authorization": f"Bearer {token}"}
    with _RowWriter(srv.port, token, 50.0) as writer:
        cpu0 = cpu_seconds(srv.proc.pid)
        res = run_wrk(
            wrk, "me_writes_c32", f"{base}/api/v1/me", connections=32, duration_s=duration, headers=auth
        )
        cpu = cpu_seconds(srv.proc.pid) - cpu0
    d = res.as_dict()
    d["server_cpu_s"] = round(cpu, 2)
    d["server_cpu_ms_per_req"] = round(cpu * 1000 / res.requests, 3) if res.requests else None
    d["server_cpu_util"] = round(cpu / res.runtime_s, 2) if res.runtime_s else None
    d["writes_ok"] = writer.ok
    d["writes_failed"] = writer.failed
    d["writes_per_s"] = round(writer.ok / writer.elapsed, 1) if writer.elapsed else None
    log(
        f"  {'me_writes_c32':<12} {res.ok_rps:9.1f} ok req/s  p99 {res.latency_ms.get('p99', 0):7.2f} ms  "
        f"while writing {d['writes_per_s']} rows/s ({writer.failed} failed)"
    )
    return d


def measure_uncached_me(
    backend: str, pg: PgAdmin | None, args: argparse.Namespace, wrk: str
) -> dict[str, Any]:
    """`/me` with the identity cache turned off: every request reads the token, user, agreement, consents
    and renders the body. Not a target; it shows what a request costs when the cache cannot answer (a
    first request, or the next one after any change to the user)."""
    with ExitStack() as stack:
        log(f"[{backend}] /me with HRK_IDENTITY_CACHE_SECONDS=0 (cache off), on a second server ...")
        srv = _server_context(stack, backend, pg, args, env={"HRK_IDENTITY_CACHE_SECONDS": "0"})
        session = client.run_async(client.sign_up(srv.port, BENCH_PHONE))
        auth = {"Authorization": f"Bearer {session['token']}"}
        base = srv.base_url
        if args.warmup:
            run_wrk(
                wrk,
                "warmup-me-uncached",
                f"{base}/api/v1/me",
                connections=32,
                duration_s=args.warmup,
                headers=auth,
            )
        out: dict[str, Any] = {}
        for label, url, headers in (
            ("me_uncached_c32", f"{base}/api/v1/me", auth),
            ("healthz_c32", f"{base}/healthz", None),
        ):
            cpu0 = cpu_seconds(srv.proc.pid)
            res = run_wrk(wrk, label, url, connections=32, duration_s=args.duration, headers=headers)
            cpu = cpu_seconds(srv.proc.pid) - cpu0
            d = res.as_dict()
            d["server_cpu_ms_per_req"] = round(cpu * 1000 / res.requests, 3) if res.requests else None
            out[label] = d
            log(f"  {label:<16} {res.ok_rps:9.1f} ok req/s  server CPU {d['server_cpu_ms_per_req']} ms/req")
    return out


def measure_sign_in(srv: Server, count: int, concurrency: int) -> dict[str, Any]:
    port = srv.port

    pid = srv.proc.pid

    async def burst(phones: list[str], accept_policy_version: int | None) -> tuple[dict[str, Any], list[str]]:
        log(f"  setup: {len(phones)} codes through POST /auth/sms-codes + GET /dev/sms-outbox ...")
        codes, prep_s = await client.prepare_codes(port, phones, concurrency=8)
        log(f"  setup done in {prep_s:.1f}s; firing {len(phones)} sign-ins, {concurrency} at a time")
        cpu0 = cpu_seconds(pid)
        result = await client.sign_in_burst(port, phones, codes, concurrency, accept_policy_version)
        cpu = cpu_seconds(pid) - cpu0
        out = result.summary()
        out["server_cpu_ms_per_req"] = round(cpu * 1000 / result.attempted, 2)
        out["setup_codes_per_s"] = round(len(phones) / prep_s, 1)
        signed_in = [p for p, outcome in zip(phones, result.outcomes, strict=True) if outcome == 201]
        return out, signed_in

    async def go() -> dict[str, Any]:
        conn = client.Conn(port)
        version = await client.policy_version(conn)
        await conn.close()
        # New phones: this first sign-in registers the user.
        signup, registered = await burst(client.bench_phones(count), version)
        log(f"  sign-up  {signup['per_s']:7.1f}/s  ({signup['ok']}/{signup['attempted']} ok)")
        # The phones that did register sign in again: returning users.
        signin, _ = await burst(registered, None)
        log(f"  sign-in  {signin['per_s']:7.1f}/s  ({signin['ok']}/{signin['attempted']} ok)")
        return {"phones": count, "concurrency": concurrency, "signup": signup, "signin": signin}

    return client.run_async(go())


def _server_context(
    stack: ExitStack,
    backend: str,
    pg: PgAdmin | None,
    args: argparse.Namespace,
    keep_log: Path | None = None,
    **kwargs: Any,
) -> Server:
    database_url = stack.enter_context(pg.fresh_database()) if backend == "postgres" and pg else None
    server = running_server(
        database_url=database_url, redis_url=args.redis_url, keep_log=keep_log, src_dir=args.src_dir, **kwargs
    )
    return stack.enter_context(server)


def _startup_sample(srv: Server) -> dict[str, Any]:
    return {
        "wall_s": round(srv.startup_s, 3),
        "cpu_s": round(srv.startup_cpu_s, 2),
        "migrate_s": srv.migrate_s(),
    }


def _startup_stats(samples: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [x["wall_s"] for x in samples]
    return {
        "samples": samples,
        "median_s": round(statistics.median(walls), 3),
        "max_s": round(max(walls), 3),
        "median_cpu_s": round(statistics.median(x["cpu_s"] for x in samples), 2),
    }


def measure_startups(
    backend: str, pg: PgAdmin | None, args: argparse.Namespace, runs: int, first: dict[str, Any] | None
) -> dict[str, Any]:
    """Cold starts on fresh data dirs (and databases): as installed, then with a warm .pyc cache."""
    as_installed = [first] if first else []
    while len(as_installed) < runs:
        with ExitStack() as stack:
            srv = _server_context(stack, backend, pg, args, stop_grace_s=1.0)
            as_installed.append(_startup_sample(srv))
        log(f"  startup (as installed) {len(as_installed)}/{runs}: {as_installed[-1]}")
    cached: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hrk-pyc-") as pyc:
        for i in range(runs + 1):  # the first start only fills the cache
            with ExitStack() as stack:
                srv = _server_context(stack, backend, pg, args, stop_grace_s=1.0, bytecode_cache=Path(pyc))
                if i:
                    cached.append(_startup_sample(srv))
                    log(f"  startup (bytecode cached) {i}/{runs}: {cached[-1]}")
    return {"as_installed": _startup_stats(as_installed), "bytecode_cached": _startup_stats(cached)}


def run_backend(backend: str, args: argparse.Namespace, wrk: str, pg: PgAdmin | None) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    result: dict[str, Any] = {
        "backend": backend,
        "redis": bool(args.redis_url),
        "date": started_at.isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine_info(wrk),
        "source": args.source,
        "loadavg_before": _loadavg(),
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "wrk_threads": 2,
            "signin_phones": args.signins,
            "signin_concurrency": args.signin_concurrency,
            "startup_runs": args.startup_runs,
        },
    }
    if backend == "postgres" and pg:
        result["postgres_version"] = pg.server_version()
    with ExitStack() as stack:
        log(f"[{backend}] starting huirongke serve on a fresh data dir ...")
        keep_log = RESULTS / f"server-{backend}.log"
        srv = _server_context(stack, backend, pg, args, keep_log)
        first_start = _startup_sample(srv)
        log(f"  server log: bench/results/{keep_log.name}")
        log(f"  ready (/readyz 200) after {srv.startup_s:.2f}s; pid {srv.proc.pid}, port {srv.port}")
        result["rss_after_start"] = srv.memory()
        session = client.run_async(client.sign_up(srv.port, BENCH_PHONE))
        log(f"  bench user signed up through the API (user {session['user']['id']})")
        result["read_after_write"] = {"me_401s_right_after_sign_up": session["bench_me_401s"]}
        if session["bench_me_401s"]:
            n = session["bench_me_401s"]
            log(f"  !! new token refused {n}x (401) right after its 201: the commit ran after the send")
        result["http"] = measure_http(srv, wrk, session["token"], args.duration, args.warmup)
        result["http"]["me_writes_c32"] = measure_me_under_writes(srv, wrk, session["token"], args.duration)
        result["rss_after_http"] = srv.memory()
        result["sign_in"] = measure_sign_in(srv, args.signins, args.signin_concurrency)
        result["rss_after_run"] = srv.memory()
        log(f"  RSS after the run: {result['rss_after_run']['rss_mb']} MB")
    result["shutdown"] = srv.stop_info
    if not srv.stop_info.get("sigterm_stopped"):
        log(f"  !! the server did not exit on SIGTERM: {srv.stop_info}")
    result["uncached"] = measure_uncached_me(backend, pg, args, wrk)
    result["startup"] = measure_startups(backend, pg, args, args.startup_runs, first_start)
    result["startup"]["environment"] = venv_bytecode()
    result["loadavg_after"] = _loadavg()
    result["summary"] = report.summarize(result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["all", "sqlite", "postgres"], default="all")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of discarded warm-up load (default 3)")
    p.add_argument("--signins", type=int, default=2000, help="distinct phones for the sign-in bursts")
    p.add_argument("--signin-concurrency", type=int, default=32)
    p.add_argument("--startup-runs", type=int, default=3, help="cold starts to time (median is reported)")
    p.add_argument("--pg-admin-url", default=os.environ.get("HRK_BENCH_PG_URL", DEFAULT_PG))
    p.add_argument("--redis-url", default=None, help="also set HRK_REDIS_URL (rate limits and jobs on Redis)")
    p.add_argument(
        "--src-ref",
        default=None,
        help="benchmark src/ as of this git ref (extracted with git archive) instead of the working tree",
    )
    p.add_argument(
        "--src-dir", type=Path, default=None, help="benchmark this copy of src/ (e.g. an experiment) instead"
    )
    p.add_argument("--quick", action="store_true", help="3s runs, 300 phones, 1 startup: a smoke test")
    p.add_argument("--no-docs", action="store_true", help="do not regenerate docs/benchmarks.md")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.signins, args.startup_runs = 3, 1, 300, 1
    for name in ("duration", "signins", "signin_concurrency", "startup_runs"):
        if not 1 <= getattr(args, name) <= 100_000:
            p.error(f"--{name.replace('_', '-')} out of range")

    with ExitStack() as stack:
        args.source = {"kind": "working tree", "ref": None, "commit": None}
        if args.src_ref and args.src_dir:
            p.error("--src-ref and --src-dir are exclusive")
        if args.src_dir:
            args.src_dir = args.src_dir.resolve()
            if not (args.src_dir / "huirongke" / "__init__.py").exists():
                p.error(f"{args.src_dir} holds no huirongke package")
            args.source = {"kind": "directory", "ref": str(args.src_dir), "commit": None}
            log(f"benchmarking {args.src_dir}, not the working tree")
        elif args.src_ref:
            args.src_dir, commit = stack.enter_context(source_snapshot(ROOT, args.src_ref))
            args.source = {"kind": "git archive", "ref": args.src_ref, "commit": commit[:12]}
            log(f"benchmarking src/ of {args.src_ref} ({commit[:12]}), not the working tree")
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    wrk = find_wrk()
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    pg = PgAdmin(args.pg_admin_url) if "postgres" in backends else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    done: list[dict[str, Any]] = []
    for backend in backends:
        if backend == "postgres" and pg:
            reason = pg.check()
            if reason:
                msg = f"[postgres] skipped: PostgreSQL not reachable at {args.pg_admin_url} ({reason})"
                if args.backend == "postgres":
                    log(msg)
                    return 2
                log(msg)
                continue
        res = run_backend(backend, args, wrk, pg)
        tags = ("-redis" if args.redis_url else "") + ("-quick" if args.quick else "")
        tags += "" if args.source["kind"] == "working tree" else "-other-src"
        name = f"{stamp}-{backend}{tags}.json"
        (RESULTS / name).write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        log(f"  wrote bench/results/{name}")
        log(report.console_table(res))
        done.append(res)
    if not done:
        return 2
    if not args.no_docs and not args.quick and args.source["kind"] == "working tree":
        findings = FINDINGS.read_text(encoding="utf-8") if FINDINGS.exists() else None
        DOCS.write_text(report.render_markdown(report.latest_results(RESULTS), findings), encoding="utf-8")
        log(f"regenerated {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
