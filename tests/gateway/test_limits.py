"""Query limits refuse hostile queries before execution: right code, named limit, no upstream."""

from __future__ import annotations

import gc
from dataclasses import replace

import pytest
from graphql import get_introspection_query, parse

from gateway.cli import EXAMPLE_QUERY
from gateway.limits import Limiter, root_fields
from gateway.settings import LimitsSettings
from schema.errors import BadUserInputError, QueryTooComplexError
from schema.query import build_schema
from tests.gateway.inprocess import LEGEVAKT_PATIENT, LEGEVAKT_QUERY, gateway, settings_for

SCHEMA = build_schema()._schema
NIN = LEGEVAKT_PATIENT


def _refusal(limiter: Limiter, query: str, variables: dict[str, object] | None = None) -> str:
    with pytest.raises(QueryTooComplexError) as caught:
        limiter.check(limiter.parse(query), SCHEMA, variables)
    return str(caught.value.extensions["limit"])


def _deep(levels: int) -> str:
    return f"{{ patient(nin: \"{NIN}\") {{ " + "medications { " * levels + "name" + " }" * (
        levels + 1) + " }"


def _aliases(n: int) -> str:
    body = " ".join(f'p{i}: patient(nin: "{NIN}") {{ alerts {{ title }} }}' for i in range(n))
    return "{ " + body + " }"


def test_default_limits_admit_the_clients_real_queries_and_graphiql_introspection() -> None:
    limiter = Limiter(LimitsSettings())
    for query in (EXAMPLE_QUERY, LEGEVAKT_QUERY,
                  get_introspection_query(descriptions=True)):
        limiter.check(limiter.parse(query), SCHEMA, {"nin": NIN})


@pytest.mark.parametrize(("settings", "query", "variables", "limit"), [
    (LimitsSettings(max_depth=12), _deep(40), None, "depth"),
    (LimitsSettings(max_aliases=30), _aliases(200), None, "aliases"),
    (LimitsSettings(max_tokens=500), _aliases(200), None, "tokens"),
    (LimitsSettings(), f'{{ patient(nin: "{NIN}") {{ labResults(first: 100000000) {{ id }} }} }}',
     None, "listSize"),
    (LimitsSettings(), f'query Q($n: Int) {{ patient(nin: "{NIN}") {{ labResults(first: $n) '
     '{ id } } }', {"n": 5000}, "listSize"),
    (LimitsSettings(max_cost=200), EXAMPLE_QUERY, {"nin": NIN}, "cost"),
])
def test_each_limit_refuses_a_hostile_query_and_names_itself(
        settings: LimitsSettings, query: str, variables: dict[str, object] | None,
        limit: str) -> None:
    assert _refusal(Limiter(settings), query, variables) == limit


def test_fragment_bomb_is_bounded_by_cost_without_expanding_it_fully() -> None:
    # each fragment spreads the next twice: 2**19 fields if walked naively (20 fragments:
    # the most a document may define)
    frags = [f"fragment F{i} on Patient {{ ...F{i + 1} ...F{i + 1} }}" for i in range(19)]
    frags.append("fragment F19 on Patient { nin }")
    query = f'{{ patient(nin: "{NIN}") {{ ...F0 }} }} ' + " ".join(frags)
    assert _refusal(Limiter(LimitsSettings(max_cost=20000)), query) == "cost"


def test_cyclic_fragments_do_not_hang_the_measurement() -> None:
    query = (f'{{ patient(nin: "{NIN}") {{ ...A }} }} fragment A on Patient {{ nin ...B }} '
             "fragment B on Patient { nin ...A }")
    limiter = Limiter(LimitsSettings())
    assert limiter.check(limiter.parse(query), SCHEMA).depth == 2


def test_introspection_is_refused_when_switched_off() -> None:
    limiter = Limiter(LimitsSettings(), introspection=False)
    with pytest.raises(BadUserInputError):
        limiter.check(limiter.parse("{ __schema { types { name } } }"), SCHEMA)
    limiter.check(limiter.parse("{ me { name __typename } }"), SCHEMA)


@pytest.mark.parametrize(("query", "limit"), [
    (_deep(40), "depth"),
    (_aliases(200), "aliases"),
    (f'{{ patient(nin: "{NIN}") {{ labResults(first: 100000000) {{ id }} }} }}', "listSize"),
    ("{ me { " + "name " * 4000 + "} }", "tokens"),
])
async def test_hostile_query_over_http_is_refused_before_any_upstream_call(
        query: str, limit: str) -> None:
    async with gateway() as kilde:
        r = await kilde.post({"query": query},
                             headers={"accept": "application/graphql-response+json"})
        assert r.status_code == 400
        error = r.json()["errors"][0]
        assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert error["extensions"]["limit"] == limit
        assert limit in error["message"]
        assert await kilde.upstream_calls() == 0


async def test_cost_limit_over_http_names_the_limit_and_the_legevakt_query_passes() -> None:
    tight = settings_for()
    tight = replace(tight, limits=replace(tight.limits, max_cost=50))
    async with gateway(tight) as kilde:
        r = await kilde.post({"query": EXAMPLE_QUERY, "variables": {"nin": NIN}})
        ext = r.json()["errors"][0]["extensions"]
        assert (ext["code"], ext["limit"], ext["maximum"]) == ("QUERY_TOO_COMPLEX", "cost", 50)
        assert await kilde.upstream_calls() == 0
    async with gateway() as kilde:
        r = await kilde.post({"query": EXAMPLE_QUERY, "variables": {"nin": NIN}})
        assert r.status_code == 200
        assert r.json()["data"]["patient"]["alerts"]
        assert await kilde.upstream_calls() > 0


async def test_oversized_body_is_refused_with_413_without_reading_it_all() -> None:
    async with gateway() as kilde:
        padding = "#" + "x" * 300_000 + "\n"
        r = await kilde.post({"query": padding + "{ me { name } }"})
        assert r.status_code == 413
        assert r.json()["errors"][0]["extensions"]["limit"] == "bodyBytes"

        async def chunks():  # no content-length: the cap applies while streaming
            for _ in range(100):
                yield b" " * 10_000

        r = await kilde.client.post("/graphql", content=chunks(), headers={
            **kilde.auth(), "content-type": "application/json"})
        assert r.status_code == 413
        assert await kilde.upstream_calls() == 0


async def test_batch_flood_is_refused_as_one_request_without_running_any_operation() -> None:
    async with gateway() as kilde:
        op = {"query": LEGEVAKT_QUERY, "variables": {"nin": NIN}}
        r = await kilde.post([op] * 1000)
        assert r.status_code == 400
        assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "batching" in r.json()["errors"][0]["message"]
        assert await kilde.upstream_calls() == 0


async def test_production_hides_field_suggestions_and_refuses_introspection(tmp_path) -> None:
    production = settings_for(audit_url=f"sqlite:///{tmp_path}/audit.sqlite3",
                              mode="production")
    async with gateway(production) as kilde:
        r = await kilde.post({"query": "{ me { nam } }"})
        message = r.json()["errors"][0]["message"]
        assert "nam" in message
        assert "Did you mean" not in message
        r = await kilde.post({"query": "{ __schema { types { name } } }"})
        assert r.json()["errors"][0]["extensions"]["reason"] == "INTROSPECTION_DISABLED"
        assert "data" not in r.json() or r.json()["data"] is None
    async with gateway() as kilde:  # the demo keeps suggestions: they help developers
        r = await kilde.post({"query": "{ me { nam } }"})
        assert "Did you mean" in r.json()["errors"][0]["message"]


def test_naming_the_root_fields_leaves_nothing_for_the_cyclic_collector() -> None:
    # once a closure that called itself: a reference cycle on every request
    document = parse("query Q { ...F me { name } } fragment F on Query { __typename ...G }"
                     " fragment G on Query { patient { name } }")
    gc.collect()
    gc.disable()
    try:
        assert root_fields(document, None) == ("__typename", "me", "patient")
        assert gc.collect() == 0
    finally:
        gc.enable()
