"""Fixed-window rate limits: in-process by default, Redis when HRK_REDIS_URL is set (shared by all
API processes). Keys must never hold personal data in clear: callers pass blind indexes or hashes."""

from __future__ import annotations

import threading
import time
from typing import Protocol

from huirongke.kit.errors import RateLimited


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window_seconds: int) -> int:
        """Count one hit; return 0 if allowed, else the seconds until the window resets."""
        ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, limit: int, window_seconds: int) -> int:
        now = time.monotonic()
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            if now - start >= window_seconds:
                start, count = now, 0
            if count >= limit:
                return int(window_seconds - (now - start)) + 1
            self._windows[key] = (start, count + 1)
            if len(self._windows) > 100_000:
                self._windows = {k: v for k, v in self._windows.items() if now - v[0] < 86_400}
            return 0


class RedisRateLimiter:
    def __init__(self, client: object) -> None:
        self._r = client

    def hit(self, key: str, limit: int, window_seconds: int) -> int:
        full = f"hrk:rl:{key}"
        pipe = self._r.pipeline()  # type: ignore[attr-defined]
        pipe.incr(full)
        pipe.ttl(full)
        count, ttl = pipe.execute()
        if ttl < 0:
            self._r.expire(full, window_seconds)  # type: ignore[attr-defined]
            ttl = window_seconds
        return 0 if count <= limit else int(ttl) or 1


def enforce(limiter: RateLimiter, key: str, limit: int, window_seconds: int) -> None:
    retry = limiter.hit(key, limit, window_seconds)
    if retry:
        raise RateLimited(retry)
