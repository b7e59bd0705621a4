"""Run wrk (Debian package `wrk`) against 127.0.0.1 and parse its text report."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

WRK_CANDIDATES = ("/usr/bin/wrk", "wrk")
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def find_wrk(wait_s: float = 600.0, poll_s: float = 5.0) -> str:
    """Return wrk's path. If it is not there yet (another process may still be installing the package),
    wait for it, bounded; never install it from here."""
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        for cand in WRK_CANDIDATES:
            path = shutil.which(cand)
            if path:
                return path
        if time.monotonic() > deadline:
            raise RuntimeError("wrk not found (install the Debian package `wrk`: apt-get install wrk)")
        if not announced:
            print(f"  wrk not installed yet; waiting up to {wait_s:.0f}s for it to appear ...", flush=True)
            announced = True
        time.sleep(poll_s)


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10).stdout
    first = out.splitlines()[0] if out else "?"
    return first.split(" [", 1)[0].replace("debian/", "").strip()  # "wrk debian/4.1.0-3+b2 [epoll] ..."


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"unparseable wrk time {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


@dataclass
class WrkResult:
    label: str
    url: str
    connections: int
    threads: int
    duration_s: int
    requests: int
    runtime_s: float
    rps: float  # wrk's own figure: every completed response, whatever its status
    non_2xx_3xx: int
    socket_errors: dict[str, int]
    latency_ms: dict[str, float] = field(default_factory=dict)  # avg, stdev, max, p50, p75, p90, p99
    raw: str = ""

    @property
    def ok_rps(self) -> float:
        """Only successful responses count."""
        return (self.requests - self.non_2xx_3xx) / self.runtime_s if self.runtime_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok_rps"] = round(self.ok_rps, 1)
        return d


def parse(output: str) -> dict[str, Any]:
    out: dict[str, Any] = {"latency_ms": {}, "socket_errors": {}, "non_2xx_3xx": 0}
    m = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", output, re.M)
    if m:
        out["latency_ms"].update(avg=_ms(m.group(1)), stdev=_ms(m.group(2)), max=_ms(m.group(3)))
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.M):
        out["latency_ms"][f"p{pct}"] = _ms(value)
    m = re.search(r"(\d+) requests in ([\d.]+\w+),", output)
    if not m:
        raise ValueError(f"unexpected wrk output:\n{output}")
    out["requests"] = int(m.group(1))
    out["runtime_s"] = _ms(m.group(2)) / 1000
    m = re.search(r"Requests/sec:\s+([\d.]+)", output)
    out["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if m:
        out["non_2xx_3xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m:
        kinds = ("connect", "read", "write", "timeout")
        out["socket_errors"] = dict(zip(kinds, map(int, m.groups()), strict=True))
    return out


def run_wrk(
    wrk: str,
    label: str,
    url: str,
    *,
    connections: int,
    duration_s: int,
    threads: int = 2,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("the bench only ever targets 127.0.0.1")
    threads = min(threads, connections)
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s", "--latency"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(url)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    fields = parse(proc.stdout)
    return WrkResult(
        label=label,
        url=url,
        connections=connections,
        threads=threads,
        duration_s=duration_s,
        raw=proc.stdout,
        **fields,
    )
