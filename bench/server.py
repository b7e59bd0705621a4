"""Start `huirongke serve` as a subprocess on a fresh data dir (and a fresh PostgreSQL database),
time it until /readyz answers 200, measure its RSS, and tear everything down again."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 60.0

# Sign-in limits relaxed so that the bench can pre-create thousands of codes from one IP.
# HRK_SIGNIN_IP_HOURLY_LIMIT only takes effect once Settings has `signin_ip_hourly_limit`.
BENCH_ENV = {
    "HRK_ENV": "dev",
    "HRK_LOG_LEVEL": "WARNING",
    "HRK_HOST": HOST,
    "HRK_SMS_PROVIDER": "console",
    "HRK_SMS_RESEND_SECONDS": "0",
    "HRK_SMS_DAILY_LIMIT": "1000000",
    "HRK_SMS_IP_HOURLY_LIMIT": "100000000",
    "HRK_SIGNIN_IP_HOURLY_LIMIT": "100000000",
    # The abuse budgets of docs/abuse.md: no challenge and no number-wide ceiling for the bench's one IP.
    "HRK_SMS_PHONE_DAILY_LIMIT": "1000000",
    "HRK_SMS_CHALLENGE_AFTER": "1000000",
    "HRK_SMS_PHONE_CHALLENGE_AFTER": "1000000",
    "HRK_PASSWORD_IP_HOURLY_LIMIT": "100000000",
    # Codes are created in a setup phase before they are used: keep them valid for the whole run.
    "HRK_SMS_CODE_TTL_SECONDS": "3600",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """One GET on a fresh connection; None when nothing answers yet."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1])


# --- PostgreSQL: one fresh database per server, dropped afterwards ----------------------------------


@dataclass
class PgAdmin:
    admin_dsn: (
        str  # libpq DSN of the maintenance database, e.g. postgresql://postgres@127.0.0.1:5432/postgres
    )

    def _connect(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=5)

    def check(self) -> str | None:
        """None if reachable, else the reason."""
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}".strip()
        return None

    def server_version(self) -> str:
        with self._connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        """Yield the SQLAlchemy URL of a new, empty database; DROP it afterwards."""
        name = f"hrk_bench_{uuid.uuid4().hex[:10]}"
        with self._connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = self.admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            yield f"{base}/{name}"
        finally:
            with self._connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def source_snapshot(root: Path, ref: str) -> Iterator[tuple[Path, str]]:
    """Extract `src/` of a git ref into a temp dir (read-only on the repository); yield (src dir, commit)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="hrk-src-") as tmp:
        archive = subprocess.run(["git", "archive", commit, "src"], cwd=root, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp) / "src", commit


# --- The server ------------------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    startup_s: float = 0.0
    startup_cpu_s: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    stop_info: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def migrate_s(self) -> float | None:
        """`serve` prints its own time to migrate ("迁移用时 0.1s"), counted from after its imports."""
        m = re.search(r"迁移用时 ([\d.]+)s", self.log_tail(200))
        return float(m.group(1)) if m else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def memory(self) -> dict[str, float]:
        """VmRSS of the server and all its descendants (MB), and the server's own peak (VmHWM)."""
        pids = [self.proc.pid, *_descendants(self.proc.pid)]
        rss_kb = sum(_status_kb(pid, "VmRSS") for pid in pids)
        return {
            "rss_mb": round(rss_kb / 1024, 1),
            "peak_rss_mb": round(_status_kb(self.proc.pid, "VmHWM") / 1024, 1),
            "processes": len(pids),
            "threads": sum(_status_kb(pid, "Threads") for pid in pids),
        }

    def stop(self, grace_s: float = 5.0) -> dict[str, Any]:
        """SIGTERM the server's process group (its own session: the server and its children only); SIGKILL
        it if it has not exited after `grace_s`. Returns whether SIGTERM alone was enough."""
        if self.proc.poll() is not None:
            return {"exited_before_stop": True, "returncode": self.proc.returncode}
        started = time.perf_counter()
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
            return {"sigterm_stopped": True, "stop_s": round(time.perf_counter() - started, 2)}
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            return {"sigterm_stopped": False, "killed_after_s": grace_s}


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    # Drop any HRK_* from the caller's shell so only the bench's settings apply.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRK_")}
    env.update(BENCH_ENV)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def running_server(
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    keep_log: Path | None = None,
    src_dir: Path | None = None,
    bytecode_cache: Path | None = None,
    stop_grace_s: float = 5.0,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Launch `python -m huirongke.cli serve` with a fresh HRK_DATA_DIR; time it until /readyz is 200.

    The interpreter environment is inherited as is (this checkout's venv has no .pyc files and the
    shell may set PYTHONDONTWRITEBYTECODE=1, so every start compiles every module). `bytecode_cache`
    instead lets Python write and reuse .pyc files under that directory (PYTHONPYCACHEPREFIX), which is
    what a deployment built with `uv sync --compile-bytecode` gets, without touching the venv."""
    with tempfile.TemporaryDirectory(prefix="hrk-bench-") as tmp:
        tmp_path = Path(tmp)
        data_dir = tmp_path / "data"
        extra = {"HRK_DATA_DIR": str(data_dir)}
        if database_url:
            extra["HRK_DATABASE_URL"] = database_url
        if redis_url:
            extra["HRK_REDIS_URL"] = redis_url
        extra.update(env or {})
        env = _clean_env(extra)
        if src_dir is not None:  # benchmark another copy of the code (e.g. a `git archive` snapshot)
            env["PYTHONPATH"] = str(src_dir)
        if bytecode_cache is not None:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)
        port = free_port()
        log_path = tmp_path / "server.log"
        cmd = [sys.executable, "-m", "huirongke.cli", "serve", "--port", str(port)]
        with log_path.open("wb") as log:
            started = time.perf_counter()
            # cwd = the temp dir, so no stray .env file of the checkout is read; own session for killpg.
            proc = subprocess.Popen(
                cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            server = Server(port=port, data_dir=data_dir, log_path=log_path, proc=proc, env=extra)
            try:
                deadline = started + STARTUP_TIMEOUT_S
                while True:
                    if not server.alive():
                        raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
                    if _http_status(port, "/readyz") == 200:
                        server.startup_s = time.perf_counter() - started
                        server.startup_cpu_s = cpu_seconds(proc.pid)
                        break
                    if time.perf_counter() > deadline:
                        tail = server.log_tail()
                        raise RuntimeError(f"/readyz not 200 after {STARTUP_TIMEOUT_S}s:\n{tail}")
                    time.sleep(0.01)
                yield server
            finally:
                server.stop_info = server.stop(stop_grace_s)
                if keep_log is not None:
                    keep_log.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(log_path, keep_log)
