"""Fixed-window rate limits: in-process by default, Redis when HRK_REDIS_URL is set (shared by all
API processes). Keys must never hold personal data in clear: callers pass blind indexes or hashes.

Three operations (docs/abuse.md says which budget uses which):
- `hit` counts an attempt and answers whether it was within the limit (budgets of requests);
- `blocked` only looks, and `hit` after a failure counts it (budgets of failures: wrong passwords,
  wrong codes), so the owner's successes never use them up;
- `refund` gives a hit back (an SMS the provider failed to send was not a use of the budget).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from huirongke.kit.errors import RateLimited


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window_seconds: int) -> int:
        """Count one hit; return 0 if allowed, else the seconds until the window resets."""
        ...

    def blocked(self, key: str, limit: int, window_seconds: int) -> int:
        """Without counting: 0 if another hit would be allowed, else the seconds until the reset."""
        ...

    def refund(self, key: str) -> None:
        """Give one counted hit back (never below zero, never extending the window)."""
        ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def _current(self, key: str, now: float, window_seconds: int) -> tuple[float, int]:
        start, count = self._windows.get(key, (now, 0))
        if now - start >= window_seconds:
            return now, 0
        return start, count

    def hit(self, key: str, limit: int, window_seconds: int) -> int:
        now = time.monotonic()
        with self._lock:
            start, count = self._current(key, now, window_seconds)
            if count >= limit:
                return int(window_seconds - (now - start)) + 1
            self._windows[key] = (start, count + 1)
            if len(self._windows) > 100_000:
                self._windows = {k: v for k, v in self._windows.items() if now - v[0] < 86_400}
            return 0

    def blocked(self, key: str, limit: int, window_seconds: int) -> int:
        now = time.monotonic()
        with self._lock:
            start, count = self._current(key, now, window_seconds)
            return int(window_seconds - (now - start)) + 1 if count >= limit else 0

    def refund(self, key: str) -> None:
        with self._lock:
            if key in self._windows:
                start, count = self._windows[key]
                self._windows[key] = (start, max(0, count - 1))


# DECR only a live key: a key that expired meanwhile must not come back as -1 without a TTL.
_REFUND = "if redis.call('EXISTS', KEYS[1]) == 1 and tonumber(redis.call('GET', KEYS[1])) > 0 then "
_REFUND += "return redis.call('DECR', KEYS[1]) end return 0"


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

    def blocked(self, key: str, limit: int, window_seconds: int) -> int:
        full = f"hrk:rl:{key}"
        pipe = self._r.pipeline()  # type: ignore[attr-defined]
        pipe.get(full)
        pipe.ttl(full)
        count, ttl = pipe.execute()
        if count is None or int(count) < limit:
            return 0
        return int(ttl) if ttl > 0 else window_seconds

    def refund(self, key: str) -> None:
        self._r.eval(_REFUND, 1, f"hrk:rl:{key}")  # type: ignore[attr-defined]


def enforce(limiter: RateLimiter, key: str, limit: int, window_seconds: int) -> None:
    retry = limiter.hit(key, limit, window_seconds)
    if retry:
        raise RateLimited(retry)
