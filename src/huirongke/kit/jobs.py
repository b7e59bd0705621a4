"""Background jobs on huey: its SQLite store when embedded, Redis at scale.

Job functions are registered once with `@job(...)` and bound to each JobQueue. Payloads carry ids
only, never personal data. `serve` runs an in-process consumer; `huirongke worker` runs one alone.

The modules that define jobs are imported by the composition roots (`huirongke.app`, the CLI's
`worker`) through `huirongke.jobs_registry`, never by the context: job modules import the context,
so the context importing them would be a cycle. A queue binds every job registered when it is built,
and a job registered later on first use, so the order of those imports does not matter.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

JobFn = Callable[..., Any]


@dataclass(frozen=True)
class _Registered:
    fn: JobFn
    every_minutes: int | None


_REGISTRY: dict[str, _Registered] = {}


def job(name: str, *, every_minutes: int | None = None) -> Callable[[JobFn], JobFn]:
    """Register a job. Its first argument is the app context; the rest must be ids or plain values."""

    def deco(fn: JobFn) -> JobFn:
        _REGISTRY[name] = _Registered(fn, every_minutes)
        return fn

    return deco


class JobQueue:
    def __init__(self, huey: Huey, context: Any) -> None:
        self.huey = huey
        self.context = context
        self._tasks: dict[str, Any] = {}
        for name, reg in _REGISTRY.items():
            self._bind(name, reg)

    @classmethod
    def from_settings(
        cls, data_dir: Path, redis_url: str | None, context: Any, immediate: bool = False
    ) -> JobQueue:
        huey: Huey
        if redis_url:
            huey = RedisHuey("huirongke", url=redis_url, immediate=immediate, results=False)
        else:
            huey = SqliteHuey(
                "huirongke", filename=str(data_dir / "jobs.db"), immediate=immediate, results=False
            )
        return cls(huey, context)

    def _bind(self, name: str, reg: _Registered) -> None:
        ctx = self

        def run(*args: Any) -> Any:
            return reg.fn(ctx.context, *args)

        run.__name__ = name
        if reg.every_minutes:
            minute = f"*/{reg.every_minutes}" if reg.every_minutes < 60 else "0"
            self._tasks[name] = self.huey.periodic_task(crontab(minute=minute), name=name)(run)
        else:
            self._tasks[name] = self.huey.task(name=name)(run)

    def _task(self, name: str) -> Any:
        if name not in self._tasks:
            reg = _REGISTRY.get(name)
            if reg is None:
                raise LookupError(f"no job named {name!r} is registered (is its module imported?)")
            self._bind(name, reg)
        return self._tasks[name]

    def enqueue(self, name: str, *args: Any, delay: timedelta | None = None) -> None:
        task = self._task(name)
        if delay:
            task.schedule(args=args, delay=delay.total_seconds())
        else:
            task(*args)

    def run_now(self, name: str, *args: Any) -> Any:
        """Run a job in this thread (CLI, tests)."""
        return _REGISTRY[name].fn(self.context, *args)

    def ping(self) -> None:
        self.huey.pending_count()

    def pending(self) -> int:
        return int(self.huey.pending_count())

    def start_consumer(self, workers: int = 2) -> Consumer:
        """Start consumer threads inside this process. huey's start() installs its own SIGINT,
        SIGTERM and SIGHUP handlers, which only a blocking run() would honour; the host (uvicorn)
        keeps its handlers, so Ctrl-C and SIGTERM still stop the server and its lifespan."""
        consumer = self.huey.create_consumer(workers=workers, worker_type="thread", periodic=True)
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        consumer.start()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        return consumer
