"""The cache against the real Redis on 127.0.0.1:6379: what is stored, for how long, and what a
dump of Redis gives away (nothing); Redis cut and restored mid-run through a TCP proxy."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from connectors.cache import Cache, CachedConnector
from connectors.cachestore import open_store
from connectors.crypto import CacheKeys
from connectors.model import Category, Status
from tests.connectors.cache_support import NIN, Clock, FakeSource, request
from tests.proxy import TcpProxy

pytestmark = pytest.mark.redis
SECRET = "kilde-test-secret-0123456789abcdef"


@pytest.fixture
def prefix() -> str:
    return f"kilde-test-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def raw(redis_url: str, prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def make(url: str, prefix: str, *, ttl: float = 30, max_stale: float = 60,
         secret: str = SECRET, source: FakeSource | None = None
         ) -> tuple[CachedConnector, FakeSource, Clock]:
    clock = Clock()
    # these tests are about what Redis holds and shares, not about its timeouts: give a Redis
    # call real headroom on a loaded machine (a 0.5 s timeout degraded the store mid-burst
    # at load ~11 and split the single flight); the hung-Redis tests set their own timeout
    cache = Cache(open_store(url, op_timeout=5.0, retry_seconds=0.05),
                  CacheKeys.from_secret(secret), clock=clock, prefix=prefix)
    source = source or FakeSource()
    return CachedConnector(source, cache, ttl=ttl, max_stale=max_stale), source, clock


async def test_miss_then_hit_through_redis(redis_url: str, prefix: str,
                                          raw: aioredis.Redis) -> None:
    cached, source, _ = make(redis_url, prefix)
    assert not (await cached.fetch(request())).from_cache
    hit = await cached.fetch(request())
    assert hit.from_cache
    assert hit.items[Category.CRITICAL_INFORMATION][0].provenance.from_cache
    assert source.calls == 1
    await cached.cache.store.aclose()


async def test_entries_expire_in_redis_after_ttl_plus_max_stale_and_never_later(
    redis_url: str, prefix: str, raw: aioredis.Redis
) -> None:
    cached, _, clock = make(redis_url, prefix, ttl=30, max_stale=60)
    await cached.fetch(request())
    keys = [k async for k in raw.scan_iter(match=f"{prefix}c:*")]
    assert len(keys) == 1
    assert 85_000 < await raw.pttl(keys[0]) <= 90_000
    clock.advance(31)  # past the TTL: a miss, whatever Redis still holds for stale-if-error
    assert not (await cached.fetch(request())).from_cache
    await cached.cache.store.aclose()


async def test_a_short_ttl_really_expires_in_redis(redis_url: str, prefix: str,
                                                   raw: aioredis.Redis) -> None:
    cached, source, _ = make(redis_url, prefix, ttl=0.1, max_stale=0.1)
    await cached.fetch(request())
    for _ in range(50):  # Redis expires the key itself; wait for it (bounded)
        if not [k async for k in raw.scan_iter(match=f"{prefix}c:*")]:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the entry outlived its TTL in Redis")
    await cached.fetch(request())
    assert source.calls == 2
    await cached.cache.store.aclose()


def _dump(prefix: str) -> dict[bytes, bytes]:
    """What an operator with redis-cli sees: every key under the prefix and its raw value."""
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")
    keys = subprocess.run([cli, "-h", "127.0.0.1", "--scan", "--pattern", f"{prefix}*"],
                          capture_output=True, check=True).stdout.split()
    return {k: subprocess.run([cli, "-h", "127.0.0.1", "--no-raw", "GET", k], capture_output=True,
                              check=True).stdout for k in keys}


async def test_a_redis_dump_holds_no_identity_number_and_no_clinical_text(
    redis_url: str, prefix: str, raw: aioredis.Redis
) -> None:
    cached, _, _ = make(redis_url, prefix)
    await cached.fetch(request())
    await cached.cache.evict("kjernejournal", NIN)  # a generation counter too
    await cached.fetch(request())
    dump = _dump(prefix)
    assert len(dump) == 3  # the entry before the event, the one after, the generation
    blob = b" ".join(k + b" " + v for k, v in dump.items())
    for secret in (NIN.encode(), b"Penicillin", b"CAVE", b"cave-1", b"J01CE", b"9144901",
                   b"kjernejournal", b"0301", b"critical"):
        assert secret not in blob, secret
    await cached.cache.store.aclose()


async def test_a_wrong_key_cannot_decrypt_what_redis_holds(redis_url: str, prefix: str,
                                                           raw: aioredis.Redis) -> None:
    cached, _, _ = make(redis_url, prefix)
    await cached.fetch(request())
    key = cached.cache.entry_key(request(), "kjernejournal", 0)
    blob = await raw.get(key)
    assert blob is not None
    assert cached.cache.keys.open(blob, aad=key.encode()) is not None
    assert CacheKeys.from_secret(SECRET + "-wrong").open(blob, aad=key.encode()) is None
    rotated, source, _ = make(redis_url, prefix, secret=SECRET + "-rotated")
    assert not (await rotated.fetch(request())).from_cache  # rotated: a miss, never garbage
    assert source.calls == 1
    await cached.cache.store.aclose()
    await rotated.cache.store.aclose()


async def test_an_event_evicts_through_redis_for_every_replica(
    redis_url: str, prefix: str, raw: aioredis.Redis
) -> None:
    one, _, _ = make(redis_url, prefix)
    two, source_two, _ = make(redis_url, prefix)  # another replica: same Redis, same key
    await one.fetch(request())
    assert (await two.fetch(request())).from_cache
    await one.cache.evict("kjernejournal", NIN)
    assert not (await two.fetch(request())).from_cache
    assert source_two.calls == 1
    await one.cache.store.aclose()
    await two.cache.store.aclose()


async def test_replicas_share_one_upstream_call_for_a_burst(redis_url: str, prefix: str,
                                                            raw: aioredis.Redis) -> None:
    replicas = [make(redis_url, prefix, source=FakeSource(delay=0.1)) for _ in range(3)]
    results = await asyncio.gather(*(c.fetch(request()) for c, _, _ in replicas for _ in range(5)))
    assert all(r.status is Status.OK for r in results)
    assert sum(s.calls for _, s, _ in replicas) == 1
    for c, _, _ in replicas:
        await c.cache.store.aclose()


async def test_redis_cut_mid_run_fails_no_request_and_recovery_is_seen(
    redis_url: str, prefix: str, raw: aioredis.Redis
) -> None:
    proxy = TcpProxy("127.0.0.1", 6379)
    try:
        cached, source, _ = make(f"redis://{proxy.url_host}/0", prefix)
        store = cached.cache.store
        await cached.fetch(request())
        assert (await cached.fetch(request())).from_cache
        proxy.cut()
        for _ in range(5):
            result = await cached.fetch(request())
            assert result.status is Status.OK
            assert not result.from_cache
        assert store.status == "degraded"
        assert source.calls == 6
        proxy.restore()
        for _ in range(100):  # recovers by itself once Redis answers (bounded wait)
            if await store.ping():
                break
            await asyncio.sleep(0.05)
        assert store.status == "ok"
        await cached.fetch(request())
        assert (await cached.fetch(request())).from_cache
        await store.aclose()
    finally:
        proxy.close()


async def test_connections_broken_while_idle_do_not_degrade_the_store(redis_url: str) -> None:
    """Redis restarted (or a cut in between) while the pool's connections sat idle: the next
    commands find them closed and go again on new ones; the store never degrades. Before the
    store asked redis-py to retry on a connection error, each pooled connection failed once."""
    proxy = TcpProxy("127.0.0.1", 6379)
    store = open_store(f"redis://{proxy.url_host}/0", op_timeout=5.0, retry_seconds=0.05)
    try:
        key = f"kilde-test-{uuid.uuid4().hex[:10]}:idle"
        await asyncio.gather(*(store.get(key) for _ in range(8)))  # several pooled connections
        proxy.cut()  # every open connection is reset; nothing is asked meanwhile
        proxy.restore()
        for _ in range(10):
            assert await store.get(key) is None
        await asyncio.gather(*(store.get(key) for _ in range(8)))
        assert store.failures == 0
        assert store.status == "ok"
    finally:
        await store.aclose()
        proxy.close()
