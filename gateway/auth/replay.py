"""The DPoP replay store: each proof's `jti` is accepted once within the proof window.

Sits under `gateway.auth.dpop`, which asks `first_use(key)` after every other check passed.
Replicas share what they have seen through Redis (`SET key NX PX window`), so a proof captured
on its way to one replica is refused by all of them. Every proof is also remembered in this
process, which catches a replay here even while Redis is away. Redis trouble is not an
outage: `connectors.cachestore` bounds each call (`KILDE_CACHE__OP_TIMEOUT_SECONDS`) and
bypasses Redis for `KILDE_CACHE__RETRY_SECONDS` after a failure; meanwhile a replay sent to
another replica within the window would go unnoticed (logged once as a warning).

Keys are SHA-256 digests of the proof key's thumbprint and the `jti`, so one client cannot
use up another's `jti` values, and nothing stored says who called.

>>> store = ReplayStore(window_seconds=90)
>>> import asyncio; asyncio.run(store.first_use("k")), asyncio.run(store.first_use("k"))
(True, False)
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from connectors.cachestore import CacheStore, CacheUnavailableError, open_store
from gateway.auth.errors import AuthError

log = logging.getLogger("kilde.auth")

# Proofs remembered in this process; all share one window, so the oldest expires first. At
# a 90 s window this is over 2 000 proofs a second per process, far above what one serves.
MAX_LOCAL_ENTRIES = 200_000


class ReplayStoreFullError(AuthError):
    """This process has seen more proofs inside one window than it can remember."""

    transient = True
    status = 503


class ReplayStore:
    """Remembers proof keys for `window_seconds`; Redis-backed when given a shared `store`."""

    def __init__(self, window_seconds: float, store: CacheStore | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive.")
        self.window = window_seconds
        self._store = store if store is not None and store.shared else None
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> expiry, oldest first
        self._warned = False

    @property
    def failures(self) -> int:
        """How many calls to the shared store failed (timeouts included)."""
        return self._store.failures if self._store is not None else 0

    @property
    def shared(self) -> bool:
        """Whether other replicas see the proofs this one accepted (Redis)."""
        return self._store is not None

    async def first_use(self, key: str) -> bool:
        """True the first time `key` is offered within the window, False for a replay."""
        now = self._clock()
        self._expire(now)
        if key in self._seen:
            return False
        if len(self._seen) >= MAX_LOCAL_ENTRIES:
            raise ReplayStoreFullError("Too many DPoP proofs at once; try again shortly.")
        self._seen[key] = now + self.window
        if self._store is None:
            return True
        try:
            fresh = await self._store.add(f"kilde:dpop:{key}", b"1", self.window)
        except CacheUnavailableError:
            if not self._warned:
                log.warning("DPoP replay store: Redis unavailable; replays are detected per "
                            "replica until it is back")
                self._warned = True
            return True
        self._warned = False
        return fresh

    async def ping(self) -> bool:
        """Whether the shared store answers (always True without one)."""
        return self._store is None or await self._store.ping()

    def _expire(self, now: float) -> None:
        while self._seen:
            key, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[key]

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.aclose()


def open_replay_store(cache_url: str, window_seconds: float, *, op_timeout: float,
                      retry_seconds: float, namespace: str = "", **kwargs: Any) -> ReplayStore:
    """A replay store on the cache's Redis when `cache_url` is redis://, else per process;
    `namespace` prefixes its keys as it does the cache's (several installations, one Redis)."""
    if cache_url.startswith(("redis://", "rediss://")):
        store = open_store(cache_url, op_timeout=op_timeout, retry_seconds=retry_seconds,
                           namespace=namespace)
        return ReplayStore(window_seconds, store, **kwargs)
    return ReplayStore(window_seconds, **kwargs)
