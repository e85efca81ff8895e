"""Rate limit for fresh data: a clinician may bypass the cache, but not on every keystroke.

Sits beside the `patient` resolver: when a request asks for fresh data (`fresh: true` or
`cache-control: no-cache`), `FreshLimiter.allow()` decides per principal. Over the limit the
request is served from the cache as usual - it never fails for this. Counted in Redis (one
fixed window per minute, shared by replicas) when the cache store is Redis and answering,
otherwise in a token bucket in this process. Principals are counted under an HMAC of their
identity, never the identity number itself.

>>> limiter = FreshLimiter(6, CacheKeys.from_secret("x" * 32), None)
>>> import asyncio; asyncio.run(limiter.allow("someone"))
True
"""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.cachestore import CacheStore, CacheUnavailableError
from connectors.crypto import CacheKeys

WINDOW_SECONDS = 60.0
_MAX_BUCKETS = 10_000


class FreshLimiter:
    """`per_minute` fresh requests per principal; 0 turns fresh data off."""

    def __init__(self, per_minute: int, keys: CacheKeys, store: CacheStore | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.per_minute = per_minute
        self._keys = keys
        self._store = store if store is not None and store.shared else None
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    async def allow(self, principal_id: str) -> bool:
        if self.per_minute <= 0:
            return False
        key = self._keys.key_for("fresh", principal_id)
        if self._store is not None:
            window = int(self._clock() // WINDOW_SECONDS)
            try:
                count = await self._store.increment(f"kilde:fresh:{key}:{window}",
                                                    int(WINDOW_SECONDS) + 1)
                return count <= self.per_minute
            except CacheUnavailableError:
                pass  # Redis trouble: count in this process meanwhile
        return self._take(key)

    def _take(self, key: str) -> bool:
        now = self._clock()
        rate = self.per_minute / WINDOW_SECONDS
        tokens, updated = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - updated) * rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > _MAX_BUCKETS:
            self._prune(now, rate)
        return allowed

    def _prune(self, now: float, rate: float) -> None:
        full = [k for k, (t, u) in self._buckets.items()
                if t + (now - u) * rate >= self.per_minute]
        for k in full:
            del self._buckets[k]
