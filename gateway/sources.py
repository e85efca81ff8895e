"""Wrap every registered source in the cache and resilience layers, once, in the lifespan.

Sits between the app factory and the connector registry: `wrap_sources()` takes the registry
`load_connectors()` built and returns one whose entries hold cache -> resilience -> connector
(each wrapper keeps the connector's name, categories and standard, so the fan-out and the
catalogue cannot tell), plus what readiness, the catalogue and the event endpoint need: the
shared cache, per-source breaker health, and the fresh-data rate limiter.

>>> sources = wrap_sources(registry, settings)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from connectors.base import Connector
from connectors.cache import Cache, CachedConnector
from connectors.cachestore import CacheStore, open_store
from connectors.crypto import CacheKeys, ephemeral_secret
from connectors.registry import Registry
from connectors.resilience import ResilientConnector
from gateway.freshness import FreshLimiter
from gateway.settings import Settings

log = logging.getLogger("kilde.sources")


class SourceHealth:
    """Breaker state per source for the catalogue (`Query.sources.health`) and readiness."""

    def __init__(self, resilient: dict[str, ResilientConnector]) -> None:
        self._resilient = resilient

    def source_health(self, name: str) -> str:
        """OK (breaker closed), UNAVAILABLE (open), RECOVERING (half-open) or UNKNOWN."""
        connector = self._resilient.get(name)
        if connector is None:
            return "UNKNOWN"
        return {"closed": "OK", "open": "UNAVAILABLE", "half_open": "RECOVERING"}[
            connector.health]

    def breakers(self) -> dict[str, str]:
        return {name: c.health for name, c in self._resilient.items()}


@dataclass(frozen=True)
class Sources:
    registry: Registry
    cache: Cache | None
    health: SourceHealth
    fresh: FreshLimiter
    store: CacheStore | None = None  # the store (Redis: shared), also for APQ and rate limits
    keys: CacheKeys | None = None  # the cache's keys: HMAC for keys, AES-GCM for values

    async def readiness(self) -> str:
        """'ok', 'degraded' (Redis trouble: sources are asked directly) or 'disabled'."""
        if self.cache is None:
            return "disabled"
        return "ok" if await self.cache.store.ping() else "degraded"

    async def aclose(self) -> None:
        if self.store is not None:
            await self.store.aclose()


def _keys(settings: Settings) -> CacheKeys:
    if settings.cache.key:
        return CacheKeys.from_secret(settings.cache.key)
    log.info("KILDE_CACHE__KEY is not set: the cache key is ephemeral, entries die with "
             "this process")
    return CacheKeys.from_secret(ephemeral_secret())


def wrap_sources(registry: Registry, settings: Settings) -> Sources:
    """The registry with every connector wrapped (cache outermost), and its companions."""
    conf = settings.cache
    keys = _keys(settings)
    # opened even with the cache off: persisted queries and rate limits share it
    store = open_store(conf.url, op_timeout=conf.op_timeout_seconds,
                       retry_seconds=conf.retry_seconds, namespace=conf.namespace)
    cache = None
    if conf.enabled:
        cache = Cache(store, keys, max_lifetime=conf.max_ttl_seconds + conf.max_stale_seconds)
    resilient: dict[str, ResilientConnector] = {}
    entries = []
    for name in registry.names:
        entry = registry.get(name)
        assert entry is not None  # a name the registry just listed
        connector: Connector = entry.connector
        if settings.resilience.enabled:
            connector = resilient[connector.name] = ResilientConnector(
                connector, settings.resilience)
        if cache is not None:
            connector = CachedConnector(connector, cache, ttl=conf.ttl_for(connector.name),
                                        max_stale=conf.max_stale_seconds)
        entries.append(dataclasses.replace(entry, connector=connector))
    fresh = FreshLimiter(conf.fresh_per_minute, keys, cache.store if cache else None)
    return Sources(Registry(entries), cache, SourceHealth(resilient), fresh, store, keys)
