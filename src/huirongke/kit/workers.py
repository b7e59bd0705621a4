"""A small, bounded pool of worker processes for CPU- and memory-heavy work (decoding and re-encoding
images; video later), so that work never runs in a request thread, under the GIL of the server, or
while anyone holds the database's writer.

- The pool has `HRK_MEDIA_WORKERS` processes (default: half the cores, at least 1). Each caps its own
  address space at `HRK_MEDIA_WORKER_MEMORY_MB` (`RLIMIT_AS`): a job that needs more fails with
  `MemoryError` in its worker, and the server's memory never grows with it.
- Admission is bounded: at most `workers + HRK_MEDIA_QUEUE` jobs are running or waiting. Past that a
  job is refused at once with 503 `media_busy` and `Retry-After` rather than piling up, and one owner
  (a user) has at most `per_owner` jobs admitted at a time (429 `media_in_progress`).
- Workers run at a lower CPU priority (nice 10) than the server, so on a small machine a decode never
  takes a core a request is waiting for.
- `await pool.run(fn, *args, owner=...)` waits for the result on the event loop: no request thread
  and no database lock is held meanwhile. `fn` must be a module-level function (it is pickled by
  name) and its arguments and result plain values (bytes, numbers, strings, tuples).
- A worker that dies (killed, or crashed in C code) breaks the pool: the jobs then in it fail with 503
  `media_worker_failed`, and the next job starts a fresh pool.

Processes are started by a fork server, never forked from the threaded server itself, and are
replaced after `MAX_TASKS_PER_CHILD` jobs so a fragmented heap does not stay.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from huirongke.kit.errors import AppError

T = TypeVar("T")

MAX_TASKS_PER_CHILD = 200
WORKER_NICENESS = 10
RETRY_AFTER_SECONDS = 5


def default_workers() -> int:
    """Half the cores, at least one: the other half serves requests (1 on a 2-core machine)."""
    return max(1, (os.cpu_count() or 2) // 2)


class PoolBusy(AppError):
    status = 503
    code = "media_busy"
    message = "正在处理的文件较多，请稍后重试"

    def __init__(self) -> None:
        super().__init__(
            details={"retry_after": RETRY_AFTER_SECONDS}, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )


class OwnerBusy(AppError):
    status = 429
    code = "media_in_progress"
    message = "您上传的文件正在处理，请完成后再上传"

    def __init__(self) -> None:
        super().__init__(details={"retry_after": 2}, headers={"Retry-After": "2"})


class WorkerFailed(AppError):
    status = 503
    code = "media_worker_failed"
    message = "文件处理失败，请稍后重试"

    def __init__(self) -> None:
        super().__init__(
            details={"retry_after": RETRY_AFTER_SECONDS}, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )


def _limit_worker(memory_mb: int) -> None:
    """Runs first in every worker process: cap its address space, and yield the CPU to the server's
    requests whenever both want it (a decode may take a little longer; a sign-in does not wait)."""
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.nice(WORKER_NICENESS)


class WorkerPool:
    def __init__(
        self, workers: int, memory_mb: int, queue: int, per_owner: int = 1, preload: tuple[str, ...] = ()
    ) -> None:
        """`preload`: modules the fork server imports once, so each new worker starts warm."""
        self.workers = workers
        self.preload = preload
        self.memory_mb = memory_mb
        self.capacity = workers + queue
        self.per_owner = per_owner
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._admitted = 0
        self._owners: dict[str, int] = {}

    @property
    def admitted(self) -> int:
        """Jobs running or waiting for a worker now."""
        return self._admitted

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                if self.preload:
                    context.set_forkserver_preload(list(self.preload))  # used when the server starts
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=context,
                    initializer=_limit_worker,
                    initargs=(self.memory_mb,),
                    max_tasks_per_child=MAX_TASKS_PER_CHILD,
                )
            return self._executor

    def _admit(self, owner: str | None) -> None:
        with self._lock:
            if self._admitted >= self.capacity:
                raise PoolBusy()
            if owner is not None:
                if self._owners.get(owner, 0) >= self.per_owner:
                    raise OwnerBusy()
                self._owners[owner] = self._owners.get(owner, 0) + 1
            self._admitted += 1

    def _release(self, owner: str | None) -> None:
        with self._lock:
            self._admitted -= 1
            if owner is not None:
                left = self._owners.pop(owner, 1) - 1
                if left > 0:
                    self._owners[owner] = left

    def submit(self, fn: Callable[..., T], *args: Any, owner: str | None = None) -> Future[T]:
        """Admit and start a job; its slot is given back when the job ends (not when a caller stops
        waiting), so a client that disconnects cannot make room for more work than the pool bounds."""
        self._admit(owner)
        try:
            future = self._pool().submit(fn, *args)
        except BaseException:
            self._release(owner)
            raise
        future.add_done_callback(lambda _f: self._release(owner))
        return future

    async def run(self, fn: Callable[..., T], *args: Any, owner: str | None = None) -> T:
        """Run `fn(*args)` in a worker process and return its result, without holding a thread."""
        try:
            future = self.submit(fn, *args, owner=owner)
        except BrokenProcessPool:
            self._reset()
            future = self.submit(fn, *args, owner=owner)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._reset()
            raise WorkerFailed() from None
        except asyncio.CancelledError:
            future.cancel()  # not started yet: never run it (a running job ends and frees its slot)
            raise

    def _reset(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
