"""Fresh-data rate limit per principal, and the cache's settings validated at start."""

from __future__ import annotations

import secrets

import pytest

from connectors.cachestore import open_store
from connectors.crypto import CacheKeys
from gateway.freshness import FreshLimiter
from gateway.settings import Settings, SettingsError
from tests.connectors.cache_support import Clock

KEYS = CacheKeys.from_secret("kilde-test-secret-0123456789abcdef")


async def test_fresh_requests_are_limited_per_principal_and_refill_over_time() -> None:
    clock = Clock(0)
    limiter = FreshLimiter(3, KEYS, None, clock=clock)
    assert [await limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert await limiter.allow("b")  # another principal has their own budget
    clock.advance(20)  # 3 per minute: one more every 20 s
    assert await limiter.allow("a")
    assert not await limiter.allow("a")


async def test_zero_turns_fresh_data_off() -> None:
    assert not await FreshLimiter(0, KEYS, None).allow("a")


@pytest.mark.redis
async def test_the_limit_is_shared_through_redis(redis_url: str) -> None:
    keys = CacheKeys.from_secret(secrets.token_hex(24))  # fresh counters for this run
    store = open_store(redis_url)
    one, two = FreshLimiter(2, keys, store), FreshLimiter(2, keys, store)  # two replicas
    try:
        assert [await one.allow("a"), await two.allow("a"), await one.allow("a")] == [
            True, True, False]
    finally:
        await store.aclose()


async def test_with_redis_down_the_limit_is_counted_in_process() -> None:
    store = open_store("redis://127.0.0.1:1/0", op_timeout=0.05)  # nothing listens there
    limiter = FreshLimiter(1, KEYS, store)
    assert [await limiter.allow("a"), await limiter.allow("a")] == [True, False]
    await store.aclose()


def test_per_source_ttls_are_read_and_capped_by_the_maximum() -> None:
    cache = Settings.from_env({"KILDE_CACHE__TTLS": "kjernejournal=60, pll=5",
                               "KILDE_CACHE__MAX_TTL_SECONDS": "120"}, serving=False).cache
    assert (cache.ttl_for("kjernejournal"), cache.ttl_for("pll"), cache.ttl_for("eresept")) == (
        60, 5, 30)


@pytest.mark.parametrize(("env", "message"), [
    ({"KILDE_CACHE__TTLS": "pll=301"}, "KILDE_CACHE__TTLS gives 'pll' 301 s, above"),
    ({"KILDE_CACHE__TTLS": "pll"}, "must look like 'SOURCE=SECONDS'"),
    ({"KILDE_CACHE__TTLS": "pll=soon"}, "must look like 'SOURCE=SECONDS'"),
    ({"KILDE_CACHE__DEFAULT_TTL_SECONDS": "400"}, "must not exceed KILDE_CACHE__MAX_TTL"),
    ({"KILDE_CACHE__MAX_TTL_SECONDS": "86400"}, "at most 3600"),
    ({"KILDE_CACHE__URL": "memcached://x"}, "KILDE_CACHE__URL must be"),
    ({"KILDE_CACHE__KEY": "short"}, "at least 16 characters"),
    ({"KILDE_RESILIENCE__ATTEMPTS": "0"}, "KILDE_RESILIENCE__ATTEMPTS must be at least 1"),
    ({"KILDE_RESILIENCE__BREAKER": "1"}, "Unknown setting KILDE_RESILIENCE__BREAKER"),
])
def test_bad_cache_and_resilience_settings_fail_at_start_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_env(env, serving=False)
