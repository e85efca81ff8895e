"""A hung Redis is not an outage: with the gateway's Redis stopped (SIGSTOP: connections are
accepted, nothing answers) requests keep succeeding, at most one Redis call at a time waits for
its timeout (the store's clock is held still, so "at a time" is exact), and the cache, the
rate limit and persisted queries fall back locally; resumed (SIGCONT), it is used again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from gateway.persisted import sha256_hex
from gateway.settings import RateLimitSettings
from tests.gateway.inprocess import LEGEVAKT_PATIENT, Harness, gateway, settings_for
from tests.redis_server import OwnRedis, own_redis

Q = """query Legevakt($nin: String!) { patient(nin: $nin) {
  alerts { kind title } sources { source category status fromCache } } }"""
BODY = {"query": Q, "variables": {"nin": LEGEVAKT_PATIENT}}
OP_TIMEOUT = 0.2


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def hung() -> AsyncIterator[tuple[Harness, OwnRedis, ManualClock]]:
    with own_redis() as redis:
        base = settings_for()
        settings = replace(
            base, cache=replace(base.cache, url=redis.url, op_timeout_seconds=OP_TIMEOUT,
                                retry_seconds=1.0, key="k" * 32),
            rate_limit=RateLimitSettings(requests=1000, window_seconds=60))
        async with gateway(settings) as kilde:
            store = kilde.state.sources.store
            assert store.shared
            clock = store._clock = ManualClock()  # time moves only when the test says so
            try:
                yield kilde, redis, clock
            finally:
                redis.thaw()


def _ok(body: dict[str, object]) -> list[dict[str, object]]:
    assert "errors" not in body, body
    rows = body["data"]["patient"]["sources"]  # type: ignore[index]
    assert {r["status"] for r in rows} <= {"OK", "EMPTY", "DENIED"}, rows
    return rows  # type: ignore[no-any-return]


async def test_requests_keep_succeeding_while_redis_hangs_and_use_it_again_after(
        hung: tuple[Harness, OwnRedis, ManualClock]) -> None:
    kilde, redis, clock = hung
    store = kilde.state.sources.store
    _ok((await kilde.post(BODY)).json())
    rows = _ok((await kilde.post(BODY)).json())
    assert all(r["fromCache"] for r in rows if r["status"] != "DENIED")  # Redis answered

    redis.freeze()
    before = store.failures
    for _ in range(10):
        rows = _ok((await kilde.post(BODY)).json())
        assert not any(r["fromCache"] for r in rows)  # served live: the cache is bypassed
    results = await asyncio.gather(*(kilde.post(BODY) for _ in range(10)))
    for r in results:
        _ok(r.json())
    # one call found Redis hung and waited OP_TIMEOUT; every other call of 20 requests (cache,
    # lock, rate limit) went around it at once
    assert store.failures - before == 1
    assert store.status == "degraded"
    assert (await kilde.client.get("/readyz")).json()["cache"] == "degraded"

    # persisted queries: not found in Redis, so the client sends the text, which runs
    apq = {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(Q)}}
    r = await kilde.post({"variables": BODY["variables"], "extensions": apq})
    assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    _ok((await kilde.post({**BODY, "extensions": apq})).json())

    clock.now += 1.0  # the retry period is over: one probe, still hung
    results = await asyncio.gather(*(kilde.post(BODY) for _ in range(10)))
    for r in results:
        _ok(r.json())
    assert store.failures - before == 2  # exactly one probe waited, the others bypassed

    redis.thaw()
    clock.now += 1.0
    _ok((await kilde.post(BODY)).json())  # the probe finds Redis: recovered
    assert store.status == "ok"
    assert store.failures - before == 2
    _ok((await kilde.post(BODY)).json())
    rows = _ok((await kilde.post(BODY)).json())
    assert all(r["fromCache"] for r in rows if r["status"] != "DENIED")


async def test_a_gone_redis_is_bypassed_the_same_way(
        hung: tuple[Harness, OwnRedis, ManualClock]) -> None:
    kilde, redis, _ = hung
    store = kilde.state.sources.store
    _ok((await kilde.post(BODY)).json())
    redis.kill()
    before = store.failures
    for _ in range(5):
        _ok((await kilde.post(BODY)).json())
    assert store.failures - before == 1
