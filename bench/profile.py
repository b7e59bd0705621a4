"""Profile the server under load with py-spy: where does a request's time go?

    uv venv /tmp/pyspy && uv pip install --python /tmp/pyspy/bin/python py-spy   # throwaway venv
    uv run python -m bench.profile --py-spy /tmp/pyspy/bin/py-spy [--path /api/v1/me] [--backend sqlite]

Starts a fresh server like `bench.run`, signs a user up, then samples every thread of the server with
`py-spy record --format raw` while wrk loads the path at 32 connections. Prints the functions with the
most samples (inclusive and self) and keeps the folded stacks in bench/results/ (speedscope.app or
flamegraph.pl render them).
Threads that py-spy sees as idle (waiting on a lock, a queue or epoll) are left out. With `--gil` only the
thread holding the GIL is sampled, i.e. shares of the server's Python CPU time (C code that releases the
GIL, such as SQLite or libpq calls, then drops out).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from bench import client
from bench.run import BENCH_PHONE, DEFAULT_PG, RESULTS, ROOT
from bench.server import PgAdmin, running_server, source_snapshot
from bench.wrk import find_wrk, run_wrk


def summarize(folded: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for line in folded.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not count_s.isdigit():
            continue
        count = int(count_s)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += count
        self_time[frames[-1]] += count
    if not total:
        return "no samples"
    out = [f"{total} samples of non-idle threads", "", "inclusive  function"]
    out += [f"{n * 100 / total:8.1f}%  {f}" for f, n in inclusive.most_common(top)]
    out += ["", "self       function"]
    out += [f"{n * 100 / total:8.1f}%  {f}" for f, n in self_time.most_common(top)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("--py-spy", required=True, help="path to a py-spy binary (see the module docstring)")
    p.add_argument("--path", default="/api/v1/me")
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--pg-admin-url", default=DEFAULT_PG)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=45)
    p.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL")
    p.add_argument("--src-ref", default=None, help="profile src/ of this git ref instead of the working tree")
    args = p.parse_args()
    wrk = find_wrk()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"profile-{args.backend}-{args.path.strip('/').replace('/', '_') or 'root'}"
    folded = RESULTS / f"{stem}.folded"
    with ExitStack() as stack:
        url = None
        if args.backend == "postgres":
            url = stack.enter_context(PgAdmin(args.pg_admin_url).fresh_database())
        src_dir = None
        if args.src_ref:
            src_dir, commit = stack.enter_context(source_snapshot(ROOT, args.src_ref))
            print(f"profiling src/ of {args.src_ref} ({commit[:12]})")
        srv = stack.enter_context(running_server(database_url=url, src_dir=src_dir))
        token = client.run_async(client.sign_up(srv.port, BENCH_PHONE))["token"]
        headers = {"Authorization": f"Bearer {token}"}
        run_wrk(
            wrk,
            "warmup",
            f"{srv.base_url}{args.path}",
            connections=args.connections,
            duration_s=2,
            headers=headers,
        )
        common = [
            args.py_spy,
            "record",
            "--pid",
            str(srv.proc.pid),
            "--rate",
            str(args.rate),
            "--duration",
            str(args.duration),
        ]
        if args.gil:
            common.append("--gil")  # only the thread holding the GIL: where the Python CPU time goes
        spy = subprocess.Popen(
            [*common, "--format", "raw", "--output", str(folded)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)
        res = run_wrk(
            wrk,
            "profiled",
            f"{srv.base_url}{args.path}",
            connections=args.connections,
            duration_s=args.duration,
            headers=headers,
        )
        _, err = spy.communicate(timeout=args.duration + 60)
        if spy.returncode != 0:
            raise SystemExit(f"py-spy failed: {err.decode(errors='replace')}")
        print(f"{args.path} under py-spy: {res.ok_rps:.1f} ok req/s (sampling slows it down)")
    print(summarize(folded, args.top))
    print(f"\nfolded stacks: {folded.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
