"""The per-client rate limit is a moving window: no span of WINDOW_SECONDS ever admits more than
REQUESTS, across window boundaries too, in one process and shared through Redis. The clock is
injected: the tests step it, nothing sleeps."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import AsyncIterator

import pytest

from connectors.cachestore import CacheStore, open_store
from gateway.ratelimit import RateLimiter
from gateway.settings import RateLimitSettings

LIMIT, WINDOW = 5, 10.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["process", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CacheStore | None]:
    if request.param == "process":
        yield None
        return
    url = request.getfixturevalue("redis_url")
    shared = open_store(url, namespace=f"t-{uuid.uuid4().hex[:12]}:")
    try:
        yield shared
    finally:
        await shared.aclose()


def admitted_in_any_window(times: list[float], window: float) -> int:
    """The most admitted requests in any span (t - window, t]."""
    return max((sum(1 for s in times if t - window < s <= t) for t in times), default=0)


async def test_no_more_than_the_limit_across_a_window_boundary(store: CacheStore | None) -> None:
    clock = Clock(1_000_000.0 + 9.9)  # 0.1 s before a multiple of the window ends
    limiter = RateLimiter(RateLimitSettings(requests=LIMIT, window_seconds=WINDOW), store, clock)
    client = f"app-{uuid.uuid4()}"
    for _ in range(LIMIT):
        assert await limiter.hit(client) is None
    clock.now += 0.2  # across the boundary a fixed window resets at
    waits = [await limiter.hit(client) for _ in range(LIMIT)]
    assert waits == [10.0] * LIMIT  # ceil(9.9 + 10 - 10.1 = 9.8): all refused
    clock.now += 9.7  # the first five are 9.9 s old: still in the window
    assert await limiter.hit(client) == 1.0
    clock.now += 0.11  # now they have left it
    assert [await limiter.hit(client) for _ in range(LIMIT)] == [None] * LIMIT
    assert await limiter.hit(client) is not None


async def test_refused_requests_do_not_extend_the_wait(store: CacheStore | None) -> None:
    clock = Clock(5_000.0)
    limiter = RateLimiter(RateLimitSettings(requests=2, window_seconds=WINDOW), store, clock)
    client = f"app-{uuid.uuid4()}"
    assert await limiter.hit(client) is None
    clock.now += 4
    assert await limiter.hit(client) is None
    for _ in range(20):  # hammering while full records nothing
        clock.now += 0.25
        assert await limiter.hit(client) is not None
    clock.now = 5_010.01  # the first admitted one left the window
    assert await limiter.hit(client) is None
    assert await limiter.hit(client) is not None


async def test_random_traffic_never_exceeds_the_limit_in_any_window(
        store: CacheStore | None) -> None:
    rng = random.Random(19)
    clock = Clock(2_000_000.0)
    limiter = RateLimiter(RateLimitSettings(requests=LIMIT, window_seconds=WINDOW), store, clock)
    clients = [f"app-{uuid.uuid4()}" for _ in range(3)]
    admitted: dict[str, list[float]] = {c: [] for c in clients}
    for _ in range(600):
        clock.now += rng.expovariate(3.0)  # about 30 per window per client: far over the limit
        client = rng.choice(clients)
        wait = await limiter.hit(client)
        if wait is None:
            admitted[client].append(clock.now)
        else:
            assert 1 <= wait <= WINDOW
    for times in admitted.values():
        assert admitted_in_any_window(times, WINDOW) <= LIMIT
        assert len(times) >= 0.8 * LIMIT * (clock.now - 2_000_000.0) / WINDOW  # and no less


def test_the_fixed_window_counted_here_would_have_failed() -> None:
    """The check above can fail: a fixed window's admissions break it."""
    times = [9.9] * LIMIT + [10.1] * LIMIT  # what a fixed window of 10 s admits
    assert admitted_in_any_window(times, WINDOW) == 2 * LIMIT


@pytest.mark.redis
async def test_replicas_share_one_moving_window(redis_url: str) -> None:
    namespace = f"t-{uuid.uuid4().hex[:12]}:"
    a, b = (open_store(redis_url, namespace=namespace) for _ in range(2))
    clock = Clock(3_000_000.0 + 9.9)
    settings = RateLimitSettings(requests=LIMIT, window_seconds=WINDOW)
    try:
        replicas = [RateLimiter(settings, a, clock), RateLimiter(settings, b, clock)]
        client = f"app-{uuid.uuid4()}"
        assert [await replicas[i % 2].hit(client) for i in range(LIMIT)] == [None] * LIMIT
        clock.now += 0.2
        assert await replicas[0].hit(client) is not None
        assert await replicas[1].hit(client) is not None
        raw = a._backend.client
        (key,) = await raw.keys(f"{namespace}kilde:rl:*")
        assert client.encode() not in key  # a hash of the client id
        assert await raw.zcard(key) == LIMIT  # never more than the limit is kept
        assert 0 < await raw.pttl(key) <= WINDOW * 1000
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_dead_redis_fails_open_to_a_window_in_this_process() -> None:
    dead = open_store("redis://127.0.0.1:1/0")
    clock = Clock(4_000.0)
    try:
        limiter = RateLimiter(RateLimitSettings(requests=2, window_seconds=WINDOW), dead, clock)
        assert await limiter.hit("app") is None  # Redis refused: counted here, admitted
        assert await limiter.hit("app") is None
        assert await limiter.hit("app") == WINDOW
        clock.now += WINDOW
        assert await limiter.hit("app") is None
    finally:
        await dead.aclose()


async def test_idle_clients_are_forgotten_and_busy_ones_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.ratelimit.MAX_LOCAL_CLIENTS", 10)
    clock = Clock(100.0)
    limiter = RateLimiter(RateLimitSettings(requests=1, window_seconds=WINDOW), None, clock)
    await limiter.hit("busy")
    clock.now += WINDOW + 1
    for i in range(9):
        await limiter.hit(f"idle-{i}")
    await limiter.hit("busy")  # busy again, within the window of the others
    clock.now += 1
    await limiter.hit("newcomer")  # the table is full: nobody is idle yet
    assert len(limiter._windows) == 11
    clock.now += WINDOW
    await limiter.hit("another")  # now all of them are idle and forgotten
    assert set(limiter._windows) == {
        hashlib.sha256(b"another").hexdigest()[:24]}
