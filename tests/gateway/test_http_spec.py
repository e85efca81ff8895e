"""GraphQL over HTTP as the spec has it: methods, media types, status codes, headers, CORS."""

from __future__ import annotations

from gateway.settings import CorsSettings
from tests.gateway.inprocess import LEGEVAKT_PATIENT, LEGEVAKT_QUERY, gateway

GRAPHQL_JSON = "application/graphql-response+json"
ME = "{ me { kind name } }"


async def test_get_runs_a_query_and_answers_in_the_media_type_asked_for() -> None:
    async with gateway() as kilde:
        r = await kilde.get({"query": ME}, headers={"accept": GRAPHQL_JSON})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(GRAPHQL_JSON)
        assert r.json()["data"]["me"]["kind"] == "CLINICIAN"
        r = await kilde.get({"query": ME}, headers={"accept": "application/json"})
        assert r.headers["content-type"].startswith("application/json")


async def test_get_refuses_a_mutation_with_405_and_allow_post() -> None:
    async with gateway() as kilde:
        r = await kilde.get({"query": "mutation { forget }"})
        assert r.status_code == 405
        assert r.headers["allow"] == "POST"


async def test_post_accepts_json_and_application_graphql_bodies() -> None:
    async with gateway() as kilde:
        r = await kilde.post({"query": LEGEVAKT_QUERY, "variables": {"nin": LEGEVAKT_PATIENT}})
        assert r.status_code == 200
        assert r.json()["data"]["patient"]["alerts"]
        r = await kilde.client.post("/graphql", content=ME, headers={
            **kilde.auth(), "content-type": "application/graphql"})
        assert r.json()["data"]["me"]["kind"] == "CLINICIAN"


async def test_request_errors_are_400_with_graphql_response_json_and_200_with_legacy_json(
) -> None:
    async with gateway() as kilde:
        for accept, status in ((GRAPHQL_JSON, 400), ("application/json", 200)):
            r = await kilde.post({"query": "{ me { "}, headers={"accept": accept})
            assert r.status_code == status, accept
            assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
            r = await kilde.post({"query": "{ nothing }"}, headers={"accept": accept})
            assert r.status_code == status, accept


async def test_media_type_problems_get_their_http_status() -> None:
    async with gateway() as kilde:
        r = await kilde.client.post("/graphql", content=b"query=x", headers={
            **kilde.auth(), "content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415
        r = await kilde.post({"query": ME}, headers={"accept": "text/plain"})
        assert r.status_code == 406
        r = await kilde.client.put("/graphql", json={"query": ME})
        assert r.status_code == 405


async def test_no_token_is_401_with_a_bearer_challenge_and_runs_nothing() -> None:
    async with gateway() as kilde:
        r = await kilde.post({"query": LEGEVAKT_QUERY, "variables": {"nin": LEGEVAKT_PATIENT}},
                             token=False)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert await kilde.upstream_calls() == 0


async def test_every_response_carries_security_headers_and_graphql_is_never_cached() -> None:
    async with gateway() as kilde:
        r = await kilde.post({"query": ME})
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-request-id"]
        health = await kilde.client.get("/healthz")
        assert health.headers["x-content-type-options"] == "nosniff"
        assert "cache-control" not in health.headers


async def test_cors_allows_only_the_configured_origins() -> None:
    cors = CorsSettings(origins=("https://epj.example",), allow_credentials=True)
    async with gateway(cors=cors) as kilde:
        preflight = await kilde.client.options("/graphql", headers={
            "origin": "https://epj.example", "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://epj.example"
        assert preflight.headers["access-control-allow-credentials"] == "true"
        r = await kilde.post({"query": ME}, headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        r = await kilde.post({"query": ME}, headers={"origin": "https://epj.example"})
        assert r.headers["access-control-allow-origin"] == "https://epj.example"
    async with gateway() as kilde:  # no origins configured: no cross-origin access at all
        r = await kilde.post({"query": ME}, headers={"origin": "https://epj.example"})
        assert "access-control-allow-origin" not in r.headers


async def test_unknown_operation_name_is_a_request_error_not_a_crash() -> None:
    async with gateway() as kilde:
        r = await kilde.post({"query": "query A { me { kind } } query B { me { name } }",
                              "operationName": "C"}, headers={"accept": GRAPHQL_JSON})
        assert r.status_code == 400
        assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        r = await kilde.post({"query": "query A { me { kind } } query B { me { name } }"})
        assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        r = await kilde.post({"query": "query A { me { kind } } query B { me { name } }",
                              "operationName": "B"})
        assert r.json()["data"] == {"me": {"name": r.json()["data"]["me"]["name"]}}
