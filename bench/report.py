"""Targets, pass/fail, and the rendering of bench results (console and docs/benchmarks.md)."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    op: str  # ">=" or "<"
    threshold: float
    unit: str

    def check(self, value: float | None) -> bool | None:
        if value is None:
            return None
        cmp: Callable[[float, float], bool] = operator.ge if self.op == ">=" else operator.lt
        return bool(cmp(value, self.threshold))

    def text(self) -> str:
        op = "≥" if self.op == ">=" else "<"
        if self.unit == "%":
            return f"{op} {self.threshold * 100:.0f}%"
        return f"{op} {self.threshold:g} {self.unit}"


TARGETS = [
    Target("me_ratio", "`GET /api/v1/me` req/s ÷ `GET /healthz` req/s (32 conns)", ">=", 0.40, "%"),
    Target(
        "me_writes_ratio",
        "`GET /api/v1/me` req/s ÷ `/healthz` while the same user writes rows "
        "(50/s offered; see findings for the rate reached)",
        ">=",
        0.40,
        "%",
    ),
    Target("me_p99_ms", "`GET /api/v1/me` p99 latency (8 conns)", "<", 25, "ms"),
    Target("signin_per_s", "Sign-in, returning user (code check + session), per s", ">=", 200, "/s"),
    Target("signup_per_s", "Sign-in with a new phone (registers the user), per s", ">=", 200, "/s"),
    Target("rss_mb", "Server RSS after the run (server + children)", "<", 250, "MB"),
    Target(
        "startup_s", "Startup: launch → `/readyz` 200, fresh data dir, as installed (median)", "<", 3, "s"
    ),
    Target(
        "startup_cached_s", "Startup as above with compiled bytecode (`.pyc`) available (median)", "<", 3, "s"
    ),
]


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    http = res["http"]
    healthz, me, me8 = http["healthz_c32"], http["me_c32"], http["me_c8"]
    values: dict[str, float | None] = {
        "healthz_rps": healthz["ok_rps"],
        "me_rps": me["ok_rps"],
        "me_ratio": round(me["ok_rps"] / healthz["ok_rps"], 4) if healthz["ok_rps"] else None,
        "me_writes_ratio": (
            round(http["me_writes_c32"]["ok_rps"] / healthz["ok_rps"], 4)
            if healthz["ok_rps"] and "me_writes_c32" in http
            else None
        ),
        "writes_per_s": (http.get("me_writes_c32") or {}).get("writes_per_s"),
        "me_p50_ms": me8["latency_ms"].get("p50"),
        "me_p99_ms": me8["latency_ms"].get("p99"),
        "signin_per_s": res["sign_in"]["signin"]["per_s"],
        "signup_per_s": res["sign_in"]["signup"]["per_s"],
        "rss_mb": res["rss_after_run"]["rss_mb"],
        "healthz_cpu_ms": healthz["server_cpu_ms_per_req"],
        "me_cpu_ms": me["server_cpu_ms_per_req"],
        "me_ratio_cpu": (
            round(healthz["server_cpu_ms_per_req"] / me["server_cpu_ms_per_req"], 4)
            if healthz["server_cpu_ms_per_req"] and me["server_cpu_ms_per_req"]
            else None
        ),
        "signin_cpu_ms": res["sign_in"]["signin"].get("server_cpu_ms_per_req"),
        "signup_cpu_ms": res["sign_in"]["signup"].get("server_cpu_ms_per_req"),
        "startup_s": res["startup"]["as_installed"]["median_s"],
        "startup_cached_s": res["startup"]["bytecode_cached"]["median_s"],
    }
    problems = []
    for label, run in http.items():
        errors = sum(run["socket_errors"].values()) if run["socket_errors"] else 0
        if run["non_2xx_3xx"] or errors:
            problems.append(f"{label}: {run['non_2xx_3xx']} error responses, {errors} socket errors")
    for kind in ("signup", "signin"):
        burst = res["sign_in"][kind]
        if burst.get("stale_connection_retries"):
            problems.append(
                f"{kind}: the server closed {burst['stale_connection_retries']} kept-alive connections after "
                "an unhandled exception (those requests were re-sent on a new connection)"
            )
        if burst["ok"] != burst["attempted"]:
            problems.append(
                f"{kind}: only {burst['ok']} of {burst['attempted']} succeeded {burst['statuses']}"
            )
    shutdown = res.get("shutdown") or {}
    if shutdown and not shutdown.get("sigterm_stopped"):
        problems.append(f"the server ignored SIGTERM and had to be killed ({shutdown})")
    refused = (res.get("read_after_write") or {}).get("me_401s_right_after_sign_up")
    if refused:
        problems.append(
            f"a new session token was refused {refused}x (401) right after its 201: the transaction commits "
            "after the response is sent"
        )
    checks = {t.key: t.check(values.get(t.key)) for t in TARGETS}
    return {"values": values, "pass": checks, "problems": problems}


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key in ("me_ratio", "me_writes_ratio"):
        return f"{value * 100:.1f}%"
    if key.endswith("_ms"):
        return f"{value:.2f} ms"
    if key == "rss_mb":
        return f"{value:.1f} MB"
    if key.startswith("startup"):
        return f"{value:.2f} s"
    return f"{value:,.1f}/s"


def _verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "**FAIL**", None: "–"}[ok]


def backend_name(res: dict[str, Any]) -> str:
    name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[res["backend"]]
    return name + (" + Redis" if res.get("redis") else "")


def console_table(res: dict[str, Any]) -> str:
    s = res["summary"]
    v = s["values"]
    lines = [f"== {backend_name(res)} ({res['date']})"]
    lines.append(f"  /healthz            {_fmt('x', v['healthz_rps'])}")
    lines.append(f"  /api/v1/me          {_fmt('x', v['me_rps'])}")
    for t in TARGETS:
        verdict = {True: "PASS", False: "FAIL", None: "-"}[s["pass"][t.key]]
        lines.append(f"  {verdict:<4}  {t.key:<13} {_fmt(t.key, v[t.key]):>14}   target {t.text()}")
    lines += [f"  !! {p}" for p in s["problems"]]
    return "\n".join(lines)


def latest_results(directory: Path) -> list[dict[str, Any]]:
    """The newest full (non-quick) result of the working tree per backend configuration."""
    latest: dict[tuple[str, bool], dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            res = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if res.get("quick") or "summary" not in res:
            continue
        if (res.get("source") or {}).get("kind", "working tree") != "working tree":
            continue  # runs of other code (--src-ref, --src-dir) are comparisons, not this checkout's figures
        try:
            res["summary"] = summarize(res)  # with the current targets
        except (KeyError, TypeError):
            continue  # written by an older version of the harness
        key = (res["backend"], bool(res.get("redis")))
        if key not in latest or res["date"] >= latest[key]["date"]:
            latest[key] = res
    order = [("sqlite", False), ("postgres", False), ("sqlite", True), ("postgres", True)]
    return [latest[k] for k in order if k in latest]


def _source(res: dict[str, Any]) -> str:
    src, m = res.get("source") or {}, res["machine"]
    if src.get("kind") == "git archive":
        return f"Code: `src/` of `{src['ref']}` (commit `{src['commit']}`)"
    if src.get("kind") == "directory":
        return f"Code: the copy of `src/` in `{src['ref']}` (an experiment, not this checkout)"
    dirty = " plus uncommitted changes in `src/`" if m["src_dirty"] else ""
    return f"Code: the working tree at commit `{m['git_commit']}`{dirty}"


def _bytecode_env(startup: dict[str, Any]) -> str:
    env = startup.get("environment")
    if not env:
        return "venv bytecode not recorded"
    pyc = "the venv has compiled bytecode" if env["venv_has_pyc"] else "the venv has no `.pyc` files"
    dont = ", `PYTHONDONTWRITEBYTECODE=1`" if env.get("PYTHONDONTWRITEBYTECODE") else ""
    return pyc + dont


def _startups(st: dict[str, Any]) -> str:
    parts = []
    for x in st["samples"]:
        migrate = f", migrations {x['migrate_s']} s" if x.get("migrate_s") is not None else ""
        parts.append(f"{x['wall_s']:.2f} s ({x['cpu_s']:.2f} s CPU{migrate})")
    return "; ".join(parts)


def _section(res: dict[str, Any]) -> list[str]:
    s, v, m, http = res["summary"], res["summary"]["values"], res["machine"], res["http"]
    cfg, si = res["config"], res["sign_in"]
    out = [f"## {backend_name(res)}", ""]
    pg = f", PostgreSQL {res['postgres_version']}" if res.get("postgres_version") else ""
    out.append(
        f"Run {res['date']} on {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_gb']} GB RAM, "
        f"Linux {m['kernel']}, Python {m['python']}{pg}; {m['wrk']}. "
        f"{_source(res)}. "
        f"Load average before/after: {res['loadavg_before'][0]:.2f} / {res['loadavg_after'][0]:.2f}."
    )
    load = res["loadavg_before"][0]
    if load > m["nproc"] * 0.5:
        out += [
            "",
            f"> **The machine was busy** (load average {load:.1f} on {m['nproc']} CPUs when the run "
            "started): req/s and latencies are pessimistic. The server-CPU-per-request figures depend much "
            "less on other load.",
        ]
    out += ["", "| Metric | Value | Target | Result |", "|---|---:|---:|:---:|"]
    out.append(f"| `GET /healthz` req/s (32 conns) | {_fmt('x', v['healthz_rps'])} | | |")
    out.append(f"| `GET /api/v1/me` req/s (32 conns) | {_fmt('x', v['me_rps'])} | | |")
    for t in TARGETS:
        out.append(f"| {t.label} | {_fmt(t.key, v[t.key])} | {t.text()} | {_verdict(s['pass'][t.key])} |")
    out.append(f"| `GET /api/v1/me` p50 latency (8 conns) | {_fmt('me_p50_ms', v['me_p50_ms'])} | | |")
    if v.get("me_cpu_ms"):
        cpu = f"{v['healthz_cpu_ms']} / {v['me_cpu_ms']} ms"
        out.append(f"| Server CPU per request, `/healthz` / `/api/v1/me` | {cpu} | | |")
        ratio = _fmt("me_ratio", v["me_ratio_cpu"])
        out.append(f"| Ratio from CPU per request (one saturated core) | {ratio} | ≥ 40% | |")
    unc = res.get("uncached")
    if unc:
        me_u, hz_u = unc["me_uncached_c32"], unc["healthz_c32"]
        ratio_u = me_u["ok_rps"] / hz_u["ok_rps"] if hz_u["ok_rps"] else None
        out.append(
            "| `GET /api/v1/me` with the identity cache off (`HRK_IDENTITY_CACHE_SECONDS=0`, every request"
            f" reads the database; second server, same run) | {me_u['ok_rps']:,.1f}/s ="
            f" {_fmt('me_ratio', ratio_u)} of its `/healthz`; {me_u['server_cpu_ms_per_req']} ms CPU | | |"
        )
    if v.get("signin_cpu_ms"):
        cpu = f"{v['signin_cpu_ms']} / {v['signup_cpu_ms']} ms"
        out.append(f"| Server CPU per sign-in, returning / new phone | {cpu} | | |")
        per_core = f"{1000 / v['signin_cpu_ms']:,.0f}/s"
        out.append(
            f"| Returning sign-ins/s from CPU per sign-in (one saturated core) | {per_core} | ≥ 200 /s | |"
        )
    out += ["", "<details><summary>Details</summary>", ""]
    out += ["| wrk run | ok req/s | p50 | p90 | p99 | max | errors | server CPU ms/req | server CPU use |"]
    out += ["|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, run in http.items():
        lat = run["latency_ms"]
        errs = run["non_2xx_3xx"] + sum(run["socket_errors"].values() if run["socket_errors"] else [0])
        out.append(
            f"| `{label}` | {run['ok_rps']:,.1f} | {lat.get('p50', 0):.2f} ms | {lat.get('p90', 0):.2f} ms | "
            f"{lat.get('p99', 0):.2f} ms | {lat.get('max', 0):.2f} ms | {errs} | "
            f"{run['server_cpu_ms_per_req']} | {run['server_cpu_util'] * 100:.0f}% |"
        )
    out += ["", "| Sign-in burst | ok / attempted | per s | p50 | p99 | server CPU ms/req | statuses |"]
    out += ["|---|---:|---:|---:|---:|---:|---|"]
    for kind, label in (("signup", "new phone (registers)"), ("signin", "returning user")):
        b = si[kind]
        statuses = ", ".join(f"{k}: {n}" for k, n in sorted(b["statuses"].items()))
        cpu = b.get("server_cpu_ms_per_req", "–")
        out.append(
            f"| {label} | {b['ok']} / {b['attempted']} | {b['per_s']:,.1f} | {b['p50_ms']} ms "
            f"| {b['p99_ms']} ms | {cpu} | {statuses} |"
        )
    rss = res["rss_after_start"]["rss_mb"], res["rss_after_http"]["rss_mb"], res["rss_after_run"]["rss_mb"]
    out += [
        "",
        f"- Sign-in bursts: {si['phones']} phones, {si['concurrency']} concurrent keep-alive connections; "
        f"codes pre-created beforehand at {si['signup'].get('setup_codes_per_s', '?')}/s and "
        f"{si['signin'].get('setup_codes_per_s', '?')}/s (code request + outbox reads, not timed).",
        f"- RSS after start / after the wrk runs / after the sign-ins: {rss[0]} / {rss[1]} / {rss[2]} MB "
        f"(peak {res['rss_after_run']['peak_rss_mb']} MB, {res['rss_after_run']['threads']} threads).",
        f"- Startup, as installed ({_bytecode_env(res['startup'])}): "
        f"{_startups(res['startup']['as_installed'])}.",
        f"- Startup with a warm `.pyc` cache: {_startups(res['startup']['bytecode_cached'])}.",
        f"- wrk: {cfg['wrk_threads']} threads, {cfg['duration_s']} s per run "
        f"after {cfg['warmup_s']} s warm-up.",
    ]
    out += [f"- **Problem:** {p}" for p in s["problems"]]
    out += ["", "</details>", ""]
    return out


METHOD = """\
## Method

`make bench` (= `uv run python -m bench.run`) does, per backend:

1. Launches `python -m huirongke.cli serve --port <free port>` with a fresh `HRK_DATA_DIR` (a temp dir),
   `HRK_ENV=dev`, `HRK_LOG_LEVEL=WARNING` and, for PostgreSQL, `HRK_DATABASE_URL` pointing at a database the
   harness `CREATE`s for the run and `DROP`s afterwards. Startup is the time from `Popen` until `/readyz`
   answers 200 (interpreter start, imports, migrations of the empty database, app start-up), measured
   on fresh data dirs (and databases) twice over: *as installed*, i.e. with the venv and the interpreter
   environment as they are (a venv synced without `UV_COMPILE_BYTECODE=1` holds no `.pyc` files, and with
   `PYTHONDONTWRITEBYTECODE=1` set every start then compiles every module from source; the details say
   which case applied), and with a warm bytecode cache of the harness's own (`PYTHONPYCACHEPREFIX` in a
   temp dir), which is what a deployment built with `uv sync --compile-bytecode` gets. The server's CPU
   seconds at readiness are recorded too: unlike the wall time, they hardly depend on what else the
   machine is doing.
2. Signs a user up through the real API (`POST /api/v1/auth/sms-codes` → `GET /api/v1/dev/sms-outbox` →
   `POST /api/v1/auth/sessions` with `accept_policy_version` from `GET /api/v1/privacy/policy`).
3. wrk (`-t2 --latency --timeout 5s`): a discarded warm-up, then `/healthz` and `/api/v1/me`
   (`Authorization: Bearer …`) at 32 connections, then both at 8 connections. Only 2xx responses count
   towards req/s; server CPU per request comes from `/proc/<pid>/stat` around each run.
4. Sign-in: N distinct phones get a code each through the real API (the server runs with relaxed limits:
   `HRK_SMS_RESEND_SECONDS=0`, `HRK_SMS_DAILY_LIMIT=1000000`, `HRK_SMS_IP_HOURLY_LIMIT=100000000`,
   `HRK_SIGNIN_IP_HOURLY_LIMIT=100000000`, `HRK_SMS_CODE_TTL_SECONDS=3600`); then all N
   `POST /api/v1/auth/sessions` fire over 32 keep-alive connections and successes ÷ wall time is reported
   ("new phone": this first sign-in registers the user). The phones that registered then get fresh codes
   and sign in again ("returning user"), which is the plain code check + session creation.
5. RSS is `VmRSS` from `/proc/<pid>/status`, summed over the server and its descendants, after all of
   the above.

The load generator runs on the same machine as the server and competes with it for CPU, as does anything
else running at the time (see the load averages). Treat small differences between runs as noise.
"""


def render_markdown(results: list[dict[str, Any]], findings: str | None = None) -> str:
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run.py`) from the newest results in `bench/results/`;",
        "do not edit by hand. How to run: `bench/README.md`.",
        "The privacy engine's figures (export, erasure, consent checks, residue scan) are in",
        "`docs/benchmarks-privacy.md` (`uv run python -m bench.privacy`).",
        "",
        "## Targets",
        "",
        "| Target | Threshold | " + " | ".join(backend_name(r) for r in results) + " |",
        "|---|---:|" + ":---:|" * len(results),
    ]
    for t in TARGETS:
        cells = [
            f"{_fmt(t.key, r['summary']['values'][t.key])} {_verdict(r['summary']['pass'][t.key])}"
            for r in results
        ]
        out.append(f"| {t.label} | {t.text()} | " + " | ".join(cells) + " |")
    out.append("")
    for res in results:
        out += _section(res)
    if findings:
        out += [findings.strip(), ""]
    out.append(METHOD)
    return "\n".join(out)
