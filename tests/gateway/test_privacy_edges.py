"""Nothing a client writes into a request reaches /metrics, the logs or Redis in clear: metric
labels are bounded by the schema, persisted queries with literal values are never stored (and
what is stored is sealed), paths are logged as route templates, request ids are UUIDs only."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace

import pytest

from gateway.logs import JsonFormatter
from gateway.persisted import sha256_hex
from tests.gateway.inprocess import LEGEVAKT_PATIENT, gateway, settings_for

NIN = LEGEVAKT_PATIENT
NAME = "Arne Hvilested"  # the legevakt patient's synthetic name (sandbox.world)
SURNAME = "Hvilested"


def _series(metrics_text: str) -> int:
    return sum(1 for line in metrics_text.splitlines() if line and not line.startswith("#"))


def _apq(query: str, **variables: object) -> dict[str, object]:
    return {"query": query, "variables": variables,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(query)}}}


async def test_unknown_root_fields_and_client_names_never_become_metric_labels() -> None:
    async with gateway() as kilde:
        await kilde.post({"query": "{ me { kind } }"})
        baseline = (await kilde.client.get("/metrics")).text
        hostile = []
        for i in range(200):
            number = f"{int(NIN) + i:011d}"
            hostile += [
                {"query": f"{{ _{number} }}"},
                {"query": f"query Q{number} {{ _{number}: me {{ kind }} }}",
                 "operationName": f"Q{number}"},
                {"query": f"{{ Hvilested{i} {{ x }} }}"},
                {"query": f"mutation {{ _{number} }}"},
            ]
        for body in hostile:
            r = await kilde.post(body)
            assert r.status_code in (200, 400), r.text
        text = (await kilde.client.get("/metrics")).text
    assert 'operation="other"' in text
    assert 'operation="me"' in text
    assert NIN not in text
    assert SURNAME not in text
    assert "Q1403" not in text
    # a handful of new series (the `other` label and its statuses), not one per request
    assert _series(text) - _series(baseline) < 40, _series(text) - _series(baseline)


@pytest.mark.redis
async def test_persisted_queries_with_literal_values_never_reach_redis_or_the_logs(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    namespace = f"t-{uuid.uuid4().hex[:12]}:"
    base = settings_for()
    settings = replace(base, cache=replace(base.cache, url=redis_url, namespace=namespace),
                       persisted=replace(base.persisted, ttl_seconds=120))
    hostile = [
        _apq(f'{{ patient(nin: "{NIN}") {{ nin }} }}'),
        _apq('{ patient(nin: "\\u0031' + NIN[1:] + '") { nin } }'),
        _apq(f'query($n: String!) {{ patient(nin: $n, emergencyReason: "{NAME} er bevisstløs") '
             "{ criticalInformation { description } } }", n=NIN),
        _apq(f'query($n: String = "{NIN}") {{ patient(nin: $n) {{ nin }} }}'),
        _apq(f"query($n: String!) {{ patient(nin: $n) {{ labResults(first: {NIN}.0) "
             "{ id } } }", n=NIN),
        _apq(f'{{ patient(nin: "{NIN}") {{ nin }} }} # {NAME}'),  # and a comment
    ]
    clean = _apq("query Legevakt($n: String!) { patient(nin: $n) { alerts { title } } }", n=NIN)
    async with gateway(settings) as kilde:
        for body in [*hostile, clean]:
            r = await kilde.post(body)
            assert r.status_code == 200, r.text
        # the clean query was registered: its hash alone runs it, on any replica
        r = await kilde.post({"variables": {"n": NIN}, "extensions": clean["extensions"]})
        assert r.json()["data"]["patient"]["alerts"], r.text
        for body in hostile:  # the hostile ones were not: the hash alone is unknown
            r = await kilde.post({"extensions": body["extensions"]})
            assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        raw = kilde.state.sources.store._backend.client
        keys = await raw.keys(f"{namespace}*")
        dump = b"".join([*keys, *[await raw.dump(k) or b"" for k in keys],
                         *[await raw.get(k) or b"" for k in keys if (await raw.type(k)) ==
                           b"string"]])
    assert keys, "nothing was written to Redis at all"
    logs = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    for secret in (NIN, NIN[1:], SURNAME, "Legevakt", "patient("):
        assert secret.encode() not in dump, f"Redis holds {secret!r}"
    for secret in (NIN, NIN[1:], SURNAME):
        assert secret not in logs, f"the logs hold {secret!r}"


async def test_the_request_log_shows_route_templates_and_only_uuid_request_ids(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kilde.access")
    async with gateway() as kilde:
        offered = str(uuid.UUID(int=0x0B6B5C3E8F1A4C2E9D7A1F2E3D4C5B6A))
        r = await kilde.post({"query": "{ me { kind } }"}, headers={"x-request-id": offered})
        assert r.headers["x-request-id"] == offered
        for rid in (f"req-{NIN}", SURNAME, f"0b6b5c3e-8f1a-4c2e-9d7a-0{NIN}"):
            r = await kilde.post({"query": "{ me { kind } }"}, headers={"x-request-id": rid})
            assert r.headers["x-request-id"] != rid
            uuid.UUID(r.headers["x-request-id"])
        await kilde.get({"query": f'{{ patient(nin: "{NIN}") {{ nin }} }}'})
        for path in (f"/graphql/{NIN}", f"/{SURNAME}", f"/app/{NIN}", f"/_demo/{SURNAME}"):
            r = await kilde.client.get(path, headers=kilde.auth())
            assert r.status_code == 404
            assert r.headers["x-request-id"]
            assert r.headers["x-content-type-options"] == "nosniff"
        r = await kilde.client.request("HVILESTED", "/graphql")
        assert r.status_code == 405
    lines = [json.loads(JsonFormatter().format(rec)) for rec in caplog.records
             if rec.name == "kilde.access"]
    paths = {line["path"] for line in lines}
    assert "/graphql" in paths
    assert paths <= {"/graphql", "other", "/app/{name}", "/_demo/token"}, \
        paths
    assert {line["method"] for line in lines} <= {"GET", "POST", "OTHER"}
    text = json.dumps(lines)
    assert NIN not in text
    assert SURNAME.lower() not in text.lower()
    assert offered in text
