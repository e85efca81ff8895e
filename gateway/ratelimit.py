"""Per-client rate limiting: a moving window per OAuth client, in Redis when configured.

Sits in the GraphQL endpoint right after authentication (the client is the token's
`client_id`): `RateLimiter.hit(client)` records the request and returns how many seconds the
client must wait when it already made `KILDE_RATE_LIMIT__REQUESTS` requests in the last
`KILDE_RATE_LIMIT__WINDOW_SECONDS`, else None. A moving window, not a fixed one: a fixed window
lets twice the limit through around a boundary (the limit at the end of one window, the limit
again at the start of the next); here no span of `WINDOW_SECONDS` ever holds more than the
limit. The window keeps the times of the requests it admitted (at most `REQUESTS` per client),
so a refused request costs nothing and the wait is exact: until the oldest one leaves.

With Redis (the cache's guarded `CacheStore`) every replica shares the window, one Lua script
per request (`CacheStore.moving_window`); when Redis is gone or hung, the store's guard answers
at once and the limiter counts in this process instead (it never blocks service on Redis:
fail-open, per replica). Keys hold a hash of the client id, never a person. The clock is
injectable (tests step it across window boundaries without sleeping); replicas compare their
own clocks' times in Redis, so they are assumed NTP-synchronised, as everywhere else.

The `limits` library (moving and sliding windows, Redis storage) was considered: its
strategies read `time.time()` themselves and its storage opens its own Redis connection, which
would bypass the guard (timeout, degraded fail-fast, single probe) that every other Redis call
here goes through; the window itself is one short script.

>>> limiter = RateLimiter(RateLimitSettings(requests=1, window_seconds=60))
>>> import asyncio; asyncio.run(limiter.hit("app")) is None
True
"""

from __future__ import annotations

import collections
import hashlib
import math
import time
from collections.abc import Callable

from connectors.cachestore import CacheStore, CacheUnavailableError
from gateway.settings import RateLimitSettings

MAX_LOCAL_CLIENTS = 10000  # clients remembered in this process before idle ones are forgotten


class RateLimiter:
    """A moving window per client; `hit()` says how long to wait when the window is full."""

    def __init__(self, settings: RateLimitSettings, store: CacheStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store if store is not None and store.shared else None
        self.clock = clock
        self._windows: dict[str, collections.deque[float]] = {}  # client key -> admitted times

    @property
    def enabled(self) -> bool:
        return self.settings.requests > 0

    async def hit(self, client: str) -> float | None:
        """Record one request; None when admitted, else the whole seconds (at least 1) until
        the window has room."""
        if not self.enabled:
            return None
        window = max(0.001, self.settings.window_seconds)
        limit = self.settings.requests
        now = self.clock()
        key = hashlib.sha256(client.encode()).hexdigest()[:24]
        result = await self._shared(key, limit, window, now) if self.store is not None else None
        admitted, oldest = result if result is not None else self._local(key, limit, window, now)
        if admitted:
            return None
        return max(1.0, math.ceil(oldest + window - now))

    def _local(self, key: str, limit: int, window: float, now: float) -> tuple[bool, float]:
        times = self._windows.get(key)
        if times is None:
            if len(self._windows) >= MAX_LOCAL_CLIENTS:
                self._forget_idle(now, window)
            times = self._windows[key] = collections.deque(maxlen=limit)
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) < limit:
            times.append(now)
            return True, times[0]
        return False, times[0]

    def _forget_idle(self, now: float, window: float) -> None:
        self._windows = {k: v for k, v in self._windows.items() if v and v[-1] > now - window}

    async def _shared(self, key: str, limit: int, window: float,
                      now: float) -> tuple[bool, float] | None:
        assert self.store is not None
        try:
            return await self.store.moving_window(f"kilde:rl:{key}", limit, window, now)
        except CacheUnavailableError:
            return None  # counted in this process meanwhile (the store logs the trouble)
