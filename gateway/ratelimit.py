"""Per-client rate limiting: a fixed window per OAuth client, in Redis when configured.

Sits in the GraphQL endpoint right after authentication (the client is the token's
`client_id`): `RateLimiter.hit(client)` counts the request and returns how many seconds the
client must wait when it is over `KILDE_RATE_LIMIT__REQUESTS` per
`KILDE_RATE_LIMIT__WINDOW_SECONDS`, else None. With Redis (the cache's `CacheStore`) every
replica shares the counts; when Redis is gone or hung, the store's guard answers at once and the
limiter counts in this process instead (it never blocks service on Redis). Keys hold a hash of
the client id, never a person.

>>> limiter = RateLimiter(RateLimitSettings(requests=1, window_seconds=60))
>>> import asyncio; asyncio.run(limiter.hit("app")) is None
True
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

from connectors.cachestore import CacheStore, CacheUnavailableError
from gateway.settings import RateLimitSettings


class RateLimiter:
    """Counts requests per client per window; `hit()` says how long to wait when over."""

    def __init__(self, settings: RateLimitSettings, store: CacheStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store if store is not None and store.shared else None
        self.clock = clock
        self._counts: dict[str, tuple[int, int]] = {}  # client key -> (window, count)

    @property
    def enabled(self) -> bool:
        return self.settings.requests > 0

    async def hit(self, client: str) -> float | None:
        """Count one request; the seconds until the window ends if over the limit, else None."""
        if not self.enabled:
            return None
        window = max(0.001, self.settings.window_seconds)
        now = self.clock()
        index = int(now // window)
        key = hashlib.sha256(client.encode()).hexdigest()[:24]
        count = await self._shared_count(key, index, window) if self.store is not None else None
        if count is None:
            count = self._local_count(key, index)
        if count <= self.settings.requests:
            return None
        return max(1.0, math.ceil((index + 1) * window - now))

    def _local_count(self, key: str, index: int) -> int:
        seen_index, count = self._counts.get(key, (index, 0))
        count = count + 1 if seen_index == index else 1
        self._counts[key] = (index, count)
        if len(self._counts) > 10000:  # forget clients from earlier windows
            self._counts = {k: v for k, v in self._counts.items() if v[0] == index}
        return count

    async def _shared_count(self, key: str, index: int, window: float) -> int | None:
        assert self.store is not None
        try:
            return await self.store.increment(f"kilde:rl:{key}:{index}", math.ceil(window) + 1)
        except CacheUnavailableError:
            return None  # counted in this process meanwhile (the store logs the trouble)
