"""The change bus: a change reaches this replica's watchers of that patient only, reaches other
replicas through the real Redis (sealed, under keyed hashes), still reaches this replica's own
watchers with Redis cut, and after Redis returns the relay reconnects and watchers are told to
re-query (resync)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio

from connectors.crypto import CacheKeys
from gateway.live import Change, ChangeBus
from gateway.live.relay import RedisRelay
from tests.conftest import _need
from tests.gateway.inprocess import LEGEVAKT_PATIENT
from tests.proxy import TcpProxy

OTHER = "01017012181"
KEYS = CacheKeys.from_secret("live-bus-test-secret-0123456789")
HUNG = 20.0  # only a hung test waits this long


async def _next(watch: AsyncIterator[Change]) -> Change:
    return await asyncio.wait_for(anext(watch), HUNG)


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HUNG
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.02)


async def test_a_change_reaches_the_watchers_of_that_patient_only() -> None:
    bus = ChangeBus(KEYS)
    async with bus.watch(LEGEVAKT_PATIENT) as mine, bus.watch(OTHER) as other:
        await bus.publish(nin=LEGEVAKT_PATIENT, source="municipal",
                          categories=["treatment_limitations"], origin="kilde")
        await bus.publish(nin=OTHER, source="pll", origin="events")
        got = await _next(mine)
        assert (got.nin, got.source, got.categories, got.origin) == (
            LEGEVAKT_PATIENT, "municipal", ("treatment_limitations",), "kilde")
        theirs = await _next(other)
        assert (theirs.nin, theirs.source) == (OTHER, "pll")  # not the first patient's change
    assert bus.watchers == 0


async def test_a_watcher_that_falls_behind_keeps_the_newest_changes() -> None:
    bus = ChangeBus(KEYS, queue_size=2)
    async with bus.watch(LEGEVAKT_PATIENT) as watch:
        for source in ("municipal", "pll", "eresept"):
            await bus.publish(nin=LEGEVAKT_PATIENT, source=source)
        assert [(await _next(watch)).source for _ in range(2)] == ["pll", "eresept"]
        assert watch.dropped == 1


def test_a_change_never_shows_the_patient_and_refuses_a_bad_origin() -> None:
    change = Change(nin=LEGEVAKT_PATIENT, source="municipal")
    assert LEGEVAKT_PATIENT not in repr(change)
    with pytest.raises(ValueError, match="origin"):
        Change(nin=LEGEVAKT_PATIENT, source="municipal", origin="gossip")


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    _need("Redis", "127.0.0.1", 6379)
    p = TcpProxy("127.0.0.1", 6379)
    yield p
    p.close()


def _bus(url: str, namespace: str) -> ChangeBus:
    return ChangeBus(KEYS, RedisRelay(url, KEYS, namespace=namespace, op_timeout=5.0,
                                      retry_seconds=0.05))


@pytest.fixture
async def two_replicas(proxy: TcpProxy) -> AsyncIterator[tuple[ChangeBus, ChangeBus]]:
    namespace = f"test-{time.monotonic_ns()}:"
    a = _bus(f"redis://{proxy.url_host}/0", namespace)
    b = _bus("redis://127.0.0.1:6379/0", namespace)
    await a.start()
    await b.start()
    await _until(lambda: a.relay_status == b.relay_status == "ok")
    yield a, b
    await a.aclose()
    await b.aclose()


@pytest.mark.redis
async def test_two_replicas_on_one_redis_deliver_each_others_changes(
        two_replicas: tuple[ChangeBus, ChangeBus]) -> None:
    a, b = two_replicas
    async with a.watch(LEGEVAKT_PATIENT) as on_a, b.watch(LEGEVAKT_PATIENT) as on_b:
        sent = await a.publish(nin=LEGEVAKT_PATIENT, source="municipal",
                               categories=["treatment_limitations"], municipality="4601")
        heard = await _next(on_b)
        assert (heard.nin, heard.source, heard.categories, heard.municipality, heard.id,
                heard.changed_at) == (LEGEVAKT_PATIENT, "municipal", ("treatment_limitations",),
                                      "4601", sent.id, sent.changed_at)
        assert (await _next(on_a)).id == sent.id
        await b.publish(nin=LEGEVAKT_PATIENT, source="pll")
        assert (await _next(on_a)).source == "pll"
        # a replica does not hear its own change twice: the next one on b is the next change
        await a.publish(nin=LEGEVAKT_PATIENT, source="eresept")
        assert (await _next(on_b)).source == "pll"
        assert (await _next(on_b)).source == "eresept"


@pytest.mark.redis
async def test_redis_sees_neither_the_patient_nor_what_changed(
        two_replicas: tuple[ChangeBus, ChangeBus]) -> None:
    a, _ = two_replicas
    spy = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
    pubsub = spy.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe("*")
    try:
        await a.publish(nin=LEGEVAKT_PATIENT, source="municipal",
                        categories=["treatment_limitations"])
        seen = []
        deadline = time.monotonic() + HUNG
        while not seen and time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=0.5)
            if message and b"kilde:live" in message["channel"]:
                seen.append(message)
        assert seen, "the change was not relayed"
        for message in seen:
            for part in (message["channel"], message["data"]):
                assert LEGEVAKT_PATIENT.encode() not in part
                assert b"treatment_limitations" not in part
                assert b"municipal" not in part
    finally:
        await pubsub.aclose()
        await spy.aclose()


@pytest.mark.redis
async def test_a_message_sealed_under_another_key_is_dropped(
        two_replicas: tuple[ChangeBus, ChangeBus]) -> None:
    a, b = two_replicas
    stranger = RedisRelay("redis://127.0.0.1:6379/0",
                          CacheKeys.from_secret("another-installation-secret-000"),
                          namespace=b._relay.channel.removesuffix("kilde:live"))  # type: ignore[union-attr]
    try:
        async with b.watch(LEGEVAKT_PATIENT) as on_b:
            await stranger.send(b.patient_key(LEGEVAKT_PATIENT),
                                Change(nin=LEGEVAKT_PATIENT, source="kjernejournal"))
            await a.publish(nin=LEGEVAKT_PATIENT, source="municipal")
            assert (await _next(on_b)).source == "municipal"  # the stranger's never arrived
    finally:
        await stranger.aclose()


@pytest.mark.redis
async def test_with_redis_cut_a_replica_delivers_its_own_and_resyncs_when_it_returns(
        two_replicas: tuple[ChangeBus, ChangeBus], proxy: TcpProxy) -> None:
    a, b = two_replicas
    async with a.watch(LEGEVAKT_PATIENT) as on_a, b.watch(LEGEVAKT_PATIENT) as on_b:
        proxy.cut()
        await _until(lambda: a.relay_status == "degraded")
        await a.publish(nin=LEGEVAKT_PATIENT, source="municipal")  # does not raise
        assert (await _next(on_a)).source == "municipal"
        proxy.restore()
        await _until(lambda: a.relay_status == "ok")
        resync = await _next(on_a)
        assert (resync.origin, resync.source) == ("resync", None)
        await a.publish(nin=LEGEVAKT_PATIENT, source="pll")
        # b never heard the change made while a was cut off; it hears the next one
        assert (await _next(on_b)).source == "pll"


async def test_a_relay_cancelled_while_redis_fails_stops_even_if_the_client_hides_the_cancel(
        ) -> None:
    # redis-py (or a cleanup in a finally) can turn a cancellation into an error of its own;
    # the relay must still stop, not sleep and reconnect for ever (the gateway's shutdown
    # awaits it). Nothing listens on the port: every _listen fails at once.
    relay = RedisRelay("redis://127.0.0.1:1/0", KEYS, retry_seconds=0.05)
    listening = asyncio.Event()

    async def listen(deliver: object, resync: object) -> None:
        listening.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("connection lost while closing") from None

    relay._listen = listen  # type: ignore[method-assign]
    task = asyncio.create_task(relay.run(lambda key, change: None, lambda: None))
    await asyncio.wait_for(listening.wait(), 30)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=30)
    assert task in done
    assert task.cancelled()
    await relay.aclose()
