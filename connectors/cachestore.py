"""Where cached bytes live: aiocache in memory (one process) or in Redis (shared by replicas).

Sits under the cache wrapper (`connectors.cache`), which only stores sealed bytes under HMAC
keys here, and under everything else that talks to Redis: persisted queries, rate limits and
fresh-data limits (gateway/), the cross-replica single-flight lock. Redis trouble is not an
outage, whether Redis is gone (connections refused) or hung (SIGSTOP, a full network buffer:
connections accepted, nothing answered): every call has a short timeout (`op_timeout`); a
failure marks the store *degraded*, and for `retry_seconds` every call fails at once without
touching the network, so callers use their local fallback (the cache is bypassed, counts are
kept in the process). After that exactly one call probes Redis, while the others still fail
fast; when it answers, the store recovers by itself. redis and aiocache errors never leave this
module: they become `CacheUnavailableError`.

A pooled connection that broke while it sat idle (Redis restarted, a proxy or a network cut in
between) is not a Redis failure: a command that finds its connection closed is sent once more on
a new connection (redis-py's retry, on connection errors only; a timeout is never retried, so a
hung Redis still fails within `op_timeout`). Without that, every connection of the pool failed
once after Redis came back, and each failure degraded the store again.

>>> store = open_store("memory://")
>>> store.status
'ok'
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis.asyncio
from aiocache import RedisCache, SimpleMemoryCache
from aiocache.serializers import BaseSerializer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger("kilde.cache")
T = TypeVar("T")


class CacheUnavailableError(Exception):
    """The cache store did not answer in time or failed; the caller bypasses the cache."""


class _Bytes(BaseSerializer):  # type: ignore[misc]
    DEFAULT_ENCODING = None  # values are sealed bytes; Redis must not decode them

    def dumps(self, value: Any) -> Any:
        return value

    def loads(self, value: Any) -> Any:
        return value


class _Redis(RedisCache):  # type: ignore[misc]
    """aiocache's Redis cache, setting TTLs with SET PX (its PSETEX/SETEX are deprecated in
    redis-py and warn on every call)."""

    async def _set(self, key: str, value: Any, ttl: float | None = None, _cas_token: Any = None,
                   _conn: Any = None) -> Any:
        if _cas_token is not None or ttl is None:
            return await super()._set(key, value, ttl=ttl, _cas_token=_cas_token, _conn=_conn)
        return await self.client.set(key, value, px=max(1, int(ttl * 1000)))


class CacheStore:
    """Byte values under string keys with a TTL, plus counters; see the module docstring.

    `shared` says whether other replicas see the same entries (Redis), which makes a
    cross-replica lock worth taking.
    """

    def __init__(self, backend: Any, *, kind: str, op_timeout: float | None,
                 retry_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 namespace: str = "") -> None:
        self._backend = backend
        self.namespace = namespace  # prefixed to every key (several installations, one Redis)
        self.kind = kind
        self.shared = kind == "redis"
        self._timeout = op_timeout
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._down_until = 0.0
        self._probing = False
        self.degraded = False
        self.failures = 0  # calls that failed (timeouts included); the bypassed are not counted

    @property
    def status(self) -> str:
        """'ok' or 'degraded' (readiness reports it; degraded is not an outage)."""
        return "degraded" if self.degraded else "ok"

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        probe = False
        if self.degraded:
            if self._probing or self._clock() < self._down_until:
                raise CacheUnavailableError("The cache store is degraded; bypassing it.")
            probe = self._probing = True  # this call tries Redis; the others keep bypassing
        try:
            if self._timeout is None:
                value = await op()
            else:
                async with asyncio.timeout(self._timeout):
                    value = await op()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # redis, socket, timeout: all mean "no cache right now"
            self.failures += 1
            if not self.degraded:
                log.warning("cache store %s degraded (%s); requests go to the sources",
                            self.kind, type(exc).__name__)
            self.degraded = True
            self._down_until = self._clock() + self._retry_seconds
            raise CacheUnavailableError(
                f"The {self.kind} cache store failed ({type(exc).__name__}).") from exc
        finally:
            if probe:
                self._probing = False
        if self.degraded:
            log.warning("cache store %s recovered", self.kind)
            self.degraded = False
        return value

    async def get(self, key: str) -> bytes | None:
        key = self.namespace + key
        value = await self._call(lambda: self._backend.get(key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        key = self.namespace + key
        await self._call(lambda: self._backend.set(key, value, ttl=_ttl(ttl)))

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Set only if absent (a lock); False when someone else holds it."""
        key = self.namespace + key

        async def op() -> bool:
            try:
                return bool(await self._backend.add(key, value, ttl=_ttl(ttl)))
            except ValueError:  # aiocache's "key already exists"
                return False
        return await self._call(op)

    async def take(self, key: str) -> bytes | None:
        """Get and delete in one step (Redis GETDEL), so a single-use value is handed to one
        caller only, across replicas. Only for a shared store: in memory, use a dict."""
        if not self.shared:
            raise TypeError("take() needs a shared (Redis) store.")
        key = self.namespace + key
        value = await self._call(lambda: self._backend.client.getdel(key))
        return value if isinstance(value, bytes) else None

    async def counter(self, key: str) -> int:
        key = self.namespace + key
        value = await self._call(lambda: self._backend.get(key))
        try:
            return int(value) if value is not None else 0
        except (TypeError, ValueError):
            return 0

    async def counters(self, keys: list[str]) -> list[int]:
        """Several counters in one round trip (Redis MGET); 0 for each one absent."""
        full = [self.namespace + k for k in keys]
        values = await self._call(lambda: self._backend.multi_get(full))
        out = []
        for value in values:
            try:
                out.append(int(value) if value is not None else 0)
            except (TypeError, ValueError):
                out.append(0)
        return out

    async def increment(self, key: str, ttl: int) -> int:
        """Add one to a counter and (re)start its TTL (whole seconds)."""
        key = self.namespace + key

        client = getattr(self._backend, "client", None)

        async def op() -> int:
            if client is not None:  # Redis: one round trip, and never a counter without TTL
                async with client.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, ttl)
                    value, _ = await pipe.execute()
                return int(value)
            value = int(await self._backend.increment(key, 1))
            await self._backend.expire(key, ttl)
            return value
        return await self._call(op)

    async def moving_window(self, key: str, limit: int, window: float,
                            now: float) -> tuple[bool, float]:
        """Record one event at `now` in a moving window of `window` seconds, unless `limit`
        events already fall in (now - window, now]; (recorded, time of the oldest event in the
        window). One Lua script in Redis (a sorted set of event times), so replicas share it
        atomically; a refused event is not recorded. Only for a shared store."""
        if not self.shared:
            raise TypeError("moving_window() needs a shared (Redis) store.")
        key = self.namespace + key
        client = self._backend.client
        member = f"{now!r}:{secrets.token_hex(6)}"

        async def op() -> tuple[bool, float]:
            recorded, oldest = await client.eval(
                _MOVING_WINDOW, 1, key, repr(now), repr(window), str(limit), member,
                str(max(1, math.ceil(window * 1000))))
            return bool(recorded), float(oldest)
        return await self._call(op)

    async def delete(self, key: str) -> None:
        key = self.namespace + key
        await self._call(lambda: self._backend.delete(key))

    async def ping(self) -> bool:
        """Probe the store (readiness); True when it answered."""
        try:
            await self._call(lambda: self._backend.exists("kilde:ping"))
        except CacheUnavailableError:
            return False
        return True

    async def aclose(self) -> None:
        try:
            # a hung Redis must not hold up shutdown: closing is bounded too
            async with asyncio.timeout(max(1.0, 4 * (self._timeout or 0.25))):
                client = getattr(self._backend, "client", None)
                if client is not None:  # redis-py's close() is deprecated; aclose() + the pool
                    await client.aclose()
                    await client.connection_pool.disconnect()
                else:
                    await self._backend.close()
        except Exception as exc:  # closing a dead connection is not worth failing shutdown
            log.debug("cache store close failed: %s", type(exc).__name__)


# KEYS[1]: a sorted set of event times. ARGV: now, window, limit, a unique member, TTL in ms.
# Scores are event times; the set never holds more than `limit` of them, and expires with
# the window. Returns {1, now} when recorded, {0, oldest} when the window is full.
_MOVING_WINDOW = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {1, ARGV[1]}
end
return {0, redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]}
"""


def _ttl(seconds: float) -> float | int:
    # aiocache sends floats as PSETEX (milliseconds) and ints as SETEX; keep sub-second TTLs
    return int(seconds) if float(seconds).is_integer() else float(seconds)


def open_store(url: str, *, op_timeout: float = 0.25, retry_seconds: float = 1.0,
               namespace: str = "") -> CacheStore:
    """A store for `memory://` or `redis://[:password@]host[:port][/db]`; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return CacheStore(SimpleMemoryCache(serializer=_Bytes(), timeout=None), kind="memory",
                          op_timeout=None, namespace=namespace)
    if parts.scheme in ("redis", "rediss"):
        db = parts.path.strip("/") or "0"
        if not db.isdigit():
            raise ValueError("The cache URL's database must be a number, as in redis://host:6379/0.")
        backend = _Redis(
            serializer=_Bytes(), endpoint=parts.hostname or "127.0.0.1", port=parts.port or 6379,
            db=int(db), password=unquote(parts.password) if parts.password else None,
            ssl=parts.scheme == "rediss", timeout=None, create_connection_timeout=op_timeout,
            # a burst waits briefly for a pooled connection instead of failing at 100 of them
            connection_pool_class=redis.asyncio.BlockingConnectionPool, pool_max_size=64,
            connection_pool_kwargs={"socket_timeout": max(op_timeout, 0.05),
                                    "timeout": op_timeout,
                                    # a connection found closed: once more on a new one
                                    "retry": Retry(NoBackoff(), 1, (redis.ConnectionError,)),
                                    "retry_on_error": [redis.ConnectionError]},
        )
        return CacheStore(backend, kind="redis", op_timeout=op_timeout,
                          retry_seconds=retry_seconds, namespace=namespace)
    raise ValueError("The cache URL must start with memory:// or redis:// (or rediss://).")
