"""Persisted queries (Apollo APQ), the allowlist mode, and per-client rate limits."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from graphql import parse

from connectors.cachestore import open_store
from connectors.crypto import CacheKeys
from gateway.persisted import (
    MemoryQueryStore,
    PersistedQueries,
    SharedQueryStore,
    carries_literals,
    load_allowlist,
    sha256_hex,
)
from gateway.ratelimit import RateLimiter
from gateway.settings import PersistedSettings, RateLimitSettings
from schema.errors import BadUserInputError, PersistedQueryNotFoundError
from tests.gateway.inprocess import LEGEVAKT_PATIENT, LEGEVAKT_QUERY, gateway, settings_for

ME = "{ me { name kind } }"


def _ext(query: str) -> dict[str, object]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(query)}}


KEYS = CacheKeys.from_secret("a-test-secret-of-enough-length-0123")


async def test_apq_registers_a_query_by_hash_and_then_serves_the_hash_alone() -> None:
    pq = PersistedQueries(PersistedSettings(), MemoryQueryStore(10))
    with pytest.raises(PersistedQueryNotFoundError):
        await pq.resolve(None, _ext(ME))
    assert await pq.resolve(ME, _ext(ME)) == ME
    digest = pq.wants(ME, _ext(ME))
    assert digest == sha256_hex(ME)
    assert await pq.register(digest, ME, parse(ME))
    assert await pq.resolve(None, _ext(ME)) == ME
    assert pq.wants(None, _ext(ME)) is None  # served from the store: nothing to register


@pytest.mark.parametrize(("query", "literal"), [
    ('{ patient(nin: "14033841389") { nin } }', True),
    ('{ patient(nin: "\\u00314033841389") { nin } }', True),
    ('{ patient(nin: """14033841389""") { nin } }', True),
    ('query($n: String!) { patient(nin: $n, emergencyReason: "Kari Nordmann") { nin } }', True),
    ("query($n: String!) { patient(nin: $n) { labResults(first: 3) { id } } }", True),
    ("query($n: String!) { patient(nin: $n) { labResults(first: 1.4033841389e10) { id } } }",
     True),
    ('query($n: String = "14033841389") { patient(nin: $n) { nin } }', True),
    ('query($n: String!) { patient(nin: $n) { nin @include(if: "x") } }', True),
    ('query($n: [String] = ["14033841389"]) { me { name } }', True),
    ('query($n: String!) { x(input: {a: [{b: "Kari"}]}) { nin } }', True),
    ("query($n: String!, $f: Int) { patient(nin: $n) { labResults(first: $f) { id } } }",
     False),
    ("query($n: String!, $y: Boolean = true) { patient(nin: $n, fresh: $y) { nin @skip(if: "
     "false) } }", False),
    ("{ sources { categories } usage(from: null) { day } }", False),
    ("{ x(kind: TREATMENT_LIMITATION) { y } }", False),
])
def test_a_document_carries_literals_when_any_value_in_it_is_a_string_or_number(
        query: str, literal: bool) -> None:
    assert carries_literals(parse(query)) is literal


async def test_apq_refuses_a_hash_that_is_not_the_querys() -> None:
    pq = PersistedQueries(PersistedSettings(), MemoryQueryStore(10))
    with pytest.raises(BadUserInputError):
        await pq.resolve(ME, _ext("{ sources { name } }"))
    with pytest.raises(BadUserInputError):
        await pq.resolve(None, {"persistedQuery": {"version": 1, "sha256Hash": "nope"}})


async def test_a_query_with_a_literal_value_runs_but_is_never_stored() -> None:
    store = MemoryQueryStore(10)
    pq = PersistedQueries(PersistedSettings(), store)
    inline = f'{{ patient(nin: "{LEGEVAKT_PATIENT}") {{ nin }} }}'
    assert await pq.resolve(inline, _ext(inline)) == inline
    assert not await pq.register(sha256_hex(inline), inline, parse(inline))
    assert await store.get(sha256_hex(inline)) is None


async def test_memory_store_forgets_the_least_recently_used_query() -> None:
    store = MemoryQueryStore(2)
    for q in ("a", "b"):
        await store.put(q, q)
    await store.get("a")
    await store.put("c", "c")
    assert [await store.get(k) for k in ("a", "b", "c")] == ["a", None, "c"]


async def test_allowlist_accepts_registered_operations_only(tmp_path: Path) -> None:
    manifest = tmp_path / "operations.json"
    manifest.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1,
                                    "operations": [{"id": sha256_hex(ME), "name": "Me",
                                                    "type": "query", "body": ME}]}))
    pq = PersistedQueries(PersistedSettings(), MemoryQueryStore(10),
                          load_allowlist(str(manifest)))
    assert await pq.resolve(None, _ext(ME)) == ME
    assert await pq.resolve(ME, None) == ME  # the identical text is the registered operation
    other = "{ sources { name } }"
    for query, ext in ((other, None), (other, _ext(other)), (None, _ext(other))):
        with pytest.raises(PersistedQueryNotFoundError):
            await pq.resolve(query, ext)


def test_allowlist_whose_ids_are_not_the_hashes_of_their_text_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({sha256_hex(ME): "{ sources { name } }"}))
    with pytest.raises(ValueError, match="sha256"):
        load_allowlist(str(bad))


async def test_apq_round_trip_over_http_the_way_apollo_clients_do_it() -> None:
    async with gateway() as kilde:
        params = {"extensions": json.dumps(_ext(LEGEVAKT_QUERY)),
                  "variables": json.dumps({"nin": LEGEVAKT_PATIENT})}
        # 1. hash only, as a GET: the server does not know it yet
        r = await kilde.get(params)
        assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        assert await kilde.upstream_calls() == 0
        # 2. the client retries with the query and its hash: it runs and is registered
        r = await kilde.post({"query": LEGEVAKT_QUERY, "variables": {"nin": LEGEVAKT_PATIENT},
                              "extensions": _ext(LEGEVAKT_QUERY)})
        assert r.json()["data"]["patient"]["alerts"][0]["kind"] == "TREATMENT_LIMITATION"
        # 3. from now on the hash alone is enough, also as a cacheable GET
        r = await kilde.get(params)
        assert r.status_code == 200
        assert r.json()["data"]["patient"]["alerts"][0]["kind"] == "TREATMENT_LIMITATION"


async def test_allowlist_mode_rejects_an_unregistered_query_before_any_upstream_call(
        tmp_path: Path) -> None:
    manifest = tmp_path / "allow.json"
    manifest.write_text(json.dumps({sha256_hex(LEGEVAKT_QUERY): LEGEVAKT_QUERY}))
    settings = settings_for()
    settings = replace(settings, persisted=replace(settings.persisted,
                                                   allowlist_file=str(manifest)))
    async with gateway(settings) as kilde:
        sneaky = f'{{ patient(nin: "{LEGEVAKT_PATIENT}") {{ documents {{ id }} }} }}'
        r = await kilde.post({"query": sneaky})
        assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        assert await kilde.upstream_calls() == 0
        r = await kilde.post({"extensions": _ext(LEGEVAKT_QUERY),
                              "variables": {"nin": LEGEVAKT_PATIENT}})
        assert r.json()["data"]["patient"]["alerts"]


async def test_rate_limit_answers_429_with_retry_after_and_calls_no_upstream() -> None:
    settings = settings_for(rate_limit=RateLimitSettings(requests=2, window_seconds=60))
    async with gateway(settings) as kilde:
        body = {"query": LEGEVAKT_QUERY, "variables": {"nin": LEGEVAKT_PATIENT}}
        for _ in range(2):
            assert (await kilde.post(body)).status_code == 200
        calls = await kilde.upstream_calls()
        r = await kilde.post(body)
        assert r.status_code == 429
        error = r.json()["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert error["extensions"]["retryAfter"] == int(r.headers["retry-after"])
        assert await kilde.upstream_calls() == calls


async def test_rate_limit_window_resets() -> None:
    now = [1000.0]
    limiter = RateLimiter(RateLimitSettings(requests=1, window_seconds=10), clock=lambda: now[0])
    assert await limiter.hit("app") is None
    assert await limiter.hit("app") == 10
    assert await limiter.hit("other-app") is None
    now[0] += 10
    assert await limiter.hit("app") is None


@pytest.mark.redis
async def test_redis_rate_limit_is_shared_by_replicas(redis_url: str) -> None:
    client = f"client-{uuid.uuid4()}"
    namespace = f"t-{uuid.uuid4().hex[:12]}:"
    a, b = (open_store(redis_url, namespace=namespace) for _ in range(2))
    try:
        settings = RateLimitSettings(requests=3, window_seconds=30)
        replica_a, replica_b = RateLimiter(settings, a), RateLimiter(settings, b)
        results = [await (replica_a if i % 2 else replica_b).hit(client) for i in range(4)]
        assert results[:3] == [None, None, None]
        assert results[3] is not None
        raw = a._backend.client
        (key,) = await raw.keys(f"{namespace}kilde:rl:*")
        assert client.encode() not in key  # a hash of the client id
        assert 0 < await raw.ttl(key) <= 31  # counted and expiring in one round trip
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.redis
async def test_shared_query_store_is_shared_sealed_and_a_dead_redis_reads_as_not_found(
        redis_url: str) -> None:
    namespace = f"t-{uuid.uuid4().hex[:12]}:"
    a, b = (open_store(redis_url, namespace=namespace) for _ in range(2))
    query = f"{{ me {{ name }} }} # {uuid.uuid4()}"
    try:
        await SharedQueryStore(a, KEYS, 60).put(sha256_hex(query), query)
        assert await SharedQueryStore(b, KEYS, 60).get(sha256_hex(query)) == query
        other_key = CacheKeys.from_secret("another-secret-of-enough-length-99")
        assert await SharedQueryStore(b, other_key, 60).get(sha256_hex(query)) is None
        raw = b._backend.client  # what a Redis dump shows: no text, no hash of it
        keys = await raw.keys(f"{namespace}*")
        assert len(keys) == 1
        assert sha256_hex(query).encode() not in keys[0]
        assert b"me" not in await raw.get(keys[0])
    finally:
        await a.aclose()
        await b.aclose()
    dead = open_store("redis://127.0.0.1:1/0")
    try:
        assert await SharedQueryStore(dead, KEYS, 60).get(sha256_hex(query)) is None
        await SharedQueryStore(dead, KEYS, 60).put(sha256_hex(query), query)  # skipped
    finally:
        await dead.aclose()
    dead_redis = open_store("redis://127.0.0.1:1/0")
    try:
        limiter = RateLimiter(RateLimitSettings(requests=1), dead_redis)
        assert await limiter.hit("app") is None  # falls back to counting in this process
        assert await limiter.hit("app") is not None
    finally:
        await dead_redis.aclose()
