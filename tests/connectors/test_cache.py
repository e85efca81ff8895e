"""The cache wrapper, in memory: hits, expiry, key safety, single flight, stale-if-error, events."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from connectors.base import AccessBasis, Connector, Requester
from connectors.cache import Cache, CachedConnector
from connectors.cachestore import CacheStore, open_store
from connectors.crypto import CacheKeys
from connectors.errors import (
    UpstreamInvalidError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from connectors.model import Category, Status
from tests.connectors.cache_support import NIN, Clock, FakeSource, request

SECRET = "kilde-test-secret-0123456789abcdef"


def make(source: FakeSource | None = None, *, ttl: float = 30, max_stale: float = 600,
         store: CacheStore | None = None, secret: str = SECRET
         ) -> tuple[CachedConnector, FakeSource, Clock]:
    source = source or FakeSource()
    clock = Clock()
    cache = Cache(store or open_store("memory://"), CacheKeys.from_secret(secret), clock=clock)
    return CachedConnector(source, cache, ttl=ttl, max_stale=max_stale), source, clock


def test_the_wrapper_looks_like_the_connector_it_wraps() -> None:
    cached, source, _ = make()
    assert isinstance(cached, Connector)
    assert (cached.name, cached.categories, cached.standard) == (
        source.name, source.categories, source.standard)


async def test_a_second_identical_fetch_is_a_hit_marked_from_cache() -> None:
    cached, source, _ = make()
    first = await cached.fetch(request())
    second = await cached.fetch(request())
    assert source.calls == 1
    assert not first.from_cache
    assert second.from_cache
    item = second.items[Category.CRITICAL_INFORMATION][0]
    assert item.provenance.from_cache
    assert item.provenance.fetched_at == first.items[Category.CRITICAL_INFORMATION][0] \
        .provenance.fetched_at  # the age a client sees is the age of the data
    assert second.status is Status.OK


async def test_an_entry_expires_after_its_ttl() -> None:
    cached, source, clock = make(ttl=30)
    await cached.fetch(request())
    clock.advance(29.9)
    await cached.fetch(request())
    assert source.calls == 1
    clock.advance(0.2)
    result = await cached.fetch(request())
    assert source.calls == 2
    assert not result.from_cache


async def test_fresh_bypasses_the_cache_and_refreshes_it() -> None:
    cached, source, _ = make()
    await cached.fetch(request())
    assert not (await cached.fetch(request(fresh=True))).from_cache
    assert source.calls == 2
    assert (await cached.fetch(request())).from_cache


REQUESTER = Requester(hpr_number="9144901", role_code="LE", orgnr="910000004",
                      point_of_care="974000001", purpose_of_use="ETREAT")


@pytest.mark.parametrize("change", [
    {"patient_nin": "24086642650"},
    {"categories": frozenset({Category.CRITICAL_INFORMATION, Category.TREATMENT_LIMITATIONS})},
    {"municipalities": frozenset({"0301", "4601"})},
    {"access_basis": AccessBasis.FORHOYET_AKUTT},
    {"since": date(2026, 1, 1)},
    {"requester": replace(REQUESTER, hpr_number="9144902")},  # a blocked requester is another
    {"requester": replace(REQUESTER, role_code="SP")},
    {"requester": replace(REQUESTER, orgnr="920000002")},
    {"requester": replace(REQUESTER, point_of_care="974000002")},
    {"requester": replace(REQUESTER, purpose_of_use="TREAT")},
    {"requester": replace(REQUESTER, citizen=True)},
], ids=["nin", "categories", "municipalities", "access_basis", "since", "hpr", "role", "orgnr",
        "point_of_care", "purpose", "citizen"])
async def test_anything_that_can_change_the_upstream_answer_is_another_entry(
    change: dict[str, Any]
) -> None:
    cached, source, _ = make()
    await cached.fetch(request(requester=REQUESTER))
    await cached.fetch(request(**{"requester": REQUESTER, **change}))
    assert source.calls == 2


async def test_the_request_id_and_timeout_do_not_split_the_cache() -> None:
    cached, source, _ = make()
    await cached.fetch(request(request_id="a", timeout=1.0))
    await cached.fetch(request(request_id="b", timeout=0.5))
    assert source.calls == 1


async def test_concurrent_identical_misses_share_one_upstream_call() -> None:
    cached, source, _ = make(FakeSource(delay=0.05))
    results = await asyncio.gather(*(cached.fetch(request()) for _ in range(20)))
    assert source.calls == 1
    assert len({id(r) for r in results}) == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch() -> None:
    cached, source, _ = make(FakeSource(delay=0.05))
    first = asyncio.ensure_future(cached.fetch(request()))
    second = asyncio.ensure_future(cached.fetch(request()))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second).status is Status.OK
    assert source.calls == 1


async def test_a_transient_failure_serves_a_stale_entry_with_its_age() -> None:
    cached, source, clock = make(ttl=30, max_stale=600)
    await cached.fetch(request())
    clock.advance(100)
    source.fail = lambda: UpstreamUnavailableError("kjernejournal", "Source failed.")
    stale = await cached.fetch(request())
    assert stale.status is Status.STALE
    assert stale.from_cache
    assert stale.status_for(Category.CRITICAL_INFORMATION) is Status.STALE
    assert stale.items[Category.CRITICAL_INFORMATION][0].provenance.from_cache
    assert "UPSTREAM_UNAVAILABLE" in (stale.detail or "")
    assert "s old" in (stale.detail or "")


async def test_a_fresh_request_to_a_failing_source_still_gets_the_stale_entry() -> None:
    cached, source, _ = make()
    await cached.fetch(request())
    source.fail = lambda: UpstreamTimeoutError("kjernejournal", "Source timed out.")
    assert (await cached.fetch(request(fresh=True))).status is Status.STALE


async def test_nothing_stale_is_served_past_the_max_stale_window() -> None:
    cached, source, clock = make(ttl=30, max_stale=60)
    await cached.fetch(request())
    clock.advance(91)
    source.fail = lambda: UpstreamUnavailableError("kjernejournal", "Source failed.")
    with pytest.raises(UpstreamUnavailableError):
        await cached.fetch(request())


async def test_an_invalid_answer_is_not_covered_up_with_stale_data() -> None:
    cached, source, clock = make()
    await cached.fetch(request())
    clock.advance(31)
    source.fail = lambda: UpstreamInvalidError("kjernejournal", "Garbage.")
    with pytest.raises(UpstreamInvalidError):
        await cached.fetch(request())


async def test_a_hanging_source_is_cut_in_time_to_serve_stale_within_the_budget() -> None:
    cached, source, clock = make()
    await cached.fetch(request())
    clock.advance(31)
    source.delay = 10
    async with asyncio.timeout(0.5):  # the fan-out's own timeout for this source
        result = await cached.fetch(request(timeout=0.5))
    assert result.status is Status.STALE


async def test_an_event_evicts_that_patient_at_that_source_only() -> None:
    cached, source, _ = make()
    other = request(patient_nin="24086642650")
    await cached.fetch(request())
    await cached.fetch(other)
    await cached.cache.evict("kjernejournal", NIN)
    assert not (await cached.fetch(request())).from_cache
    assert (await cached.fetch(other)).from_cache
    assert source.calls == 3


async def test_entries_sealed_under_a_rotated_key_are_unreadable_not_wrong() -> None:
    store = open_store("memory://")
    old, _source, _ = make(store=store)
    await old.fetch(request())
    key = old.cache.entry_key(request(), "kjernejournal", 0)
    rotated, source2, _ = make(store=store, secret=SECRET + "-rotated")
    rotated.cache.entry_key = lambda *a: key  # type: ignore[method-assign]  # same slot
    assert await rotated.cache.load(key) is None
    assert not (await rotated.fetch(request())).from_cache
    assert source2.calls == 1


class _Broken:
    async def get(self, key: str) -> None:
        raise ConnectionError("refused")

    set = add = increment = expire = delete = exists = get

    async def close(self) -> None:
        pass


async def test_a_broken_store_sends_requests_to_the_source_without_failing() -> None:
    store = CacheStore(_Broken(), kind="redis", op_timeout=0.05)
    cached, source, _ = make(store=store)
    for _ in range(3):
        assert (await cached.fetch(request())).status is Status.OK
    assert source.calls == 3
    assert store.status == "degraded"
