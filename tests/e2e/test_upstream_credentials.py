"""Kilde inside the trust framework, outbound, over real loopback HTTP: every fake upstream
refuses a call without its own DPoP-bound HelseID token; the legevakt query through Kilde gets
each source's token by one token exchange per caller and audience (not per query), answers a
DPoP nonce challenge, renews an expired token, and a HelseID refusal costs only that source."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.helseid import RESOURCES
from sandbox.world import by_tag
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.slow

FIVE = ("municipal", "kjernejournal", "pll", "eresept", "proevesvar")
HLR = by_tag("legevakt-hlr").nin
QUERY = """query($nin: String!) { patient(nin: $nin) {
  alerts { kind title provenance { source } }
  treatmentLimitations { code { code } provenance { source } }
  criticalInformation { type } medications { name } labResults { code { code } }
  municipalServices { status } sources { source category status detail } } }"""
# One harmless call per fake (POST with a JSON body where the fake expects one).
DIRECT = {
    "municipal": ("GET", "/municipal/0301/metadata"),
    "kjernejournal": ("POST", "/kjernejournal/status"),
    "pll": ("POST", "/pll/Patient/$getMedication"),
    "eresept": ("POST", "/eresept/Patient/$getMedication"),
    "proevesvar": ("POST", "/proevesvar/DiagnosticReport/_search"),
}


def _helseid(stack: Stack, method: str = "GET", path: str = "requests", **kw: Any) -> Any:
    r = httpx.request(method, f"{stack.sandbox.url}/_sandbox/helseid/{path}", timeout=5, **kw)
    r.raise_for_status()
    return r.json()


def _auth(stack: Stack) -> dict[str, Any]:
    return httpx.get(f"{stack.sandbox.url}/_sandbox/auth", timeout=5).json()  # type: ignore[no-any-return]


def _legevakt(stack: Stack, token: str) -> dict[str, Any]:
    r = stack.query(QUERY, token, {"nin": HLR})
    assert r.status_code == 200, r.text[:300]
    body: dict[str, Any] = r.json()
    return body


def _exchanges(stack: Stack) -> Counter[tuple[str, str]]:
    rows = _helseid(stack)["requests"]
    return Counter({(r["subject"], r["audience"]): r["count"] for r in rows
                    if r["grant"] == "token_exchange"})


@pytest.fixture
def fresh(e2e: Stack) -> Iterator[Stack]:
    _helseid(e2e, "DELETE")
    httpx.delete(f"{e2e.sandbox.url}/_sandbox/auth", timeout=5)
    yield e2e
    _helseid(e2e, "PUT", "settings", json={"token_lifetime": 300, "require_nonce": False,
                                           "resource_nonce": False})


@pytest.mark.parametrize("source", FIVE)
def test_calling_a_sandbox_upstream_directly_without_a_token_gives_401(
        fresh: Stack, source: str) -> None:
    method, path = DIRECT[source]
    for headers in ({}, {"authorization": f"Bearer {fresh.token('legevakt-lege', HLR)}"},
                    {"authorization": f"DPoP {fresh.token('legevakt-lege', HLR)}"}):
        r = httpx.request(method, f"{fresh.sandbox.url}{path}", headers=headers, json={},
                          timeout=5)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("DPoP error=")
    assert fresh.requests()[source] == 0


def test_the_legevakt_query_through_kilde_makes_one_exchange_per_caller_and_audience(
        fresh: Stack) -> None:
    doctor = fresh.token("legevakt-lege", HLR)
    nurse = fresh.token("hjemmesykepleier", HLR)
    for _ in range(3):
        for token in (doctor, nurse):
            body = _legevakt(fresh, token)
            assert "errors" not in body, body.get("errors")
    hlr = body["data"]["patient"]["treatmentLimitations"]
    assert [t["provenance"]["source"] for t in hlr] == ["municipal"]
    statuses = {s["source"]: s["status"] for s in body["data"]["patient"]["sources"]}
    assert set(statuses) == set(FIVE)
    exchanges = _exchanges(fresh)
    audiences = {RESOURCES[s][0] for s in FIVE}
    assert {aud for _, aud in exchanges} == audiences
    assert len({subject for subject, _ in exchanges}) == 2
    assert set(exchanges.values()) == {1}  # 2 callers x 5 audiences, each once, for 6 queries
    assert sum(exchanges.values()) == 10


def test_each_upstream_sees_exactly_its_own_audience_and_refuses_nothing(fresh: Stack) -> None:
    assert "errors" not in _legevakt(fresh, fresh.token("legevakt-lege", HLR))
    auth = _auth(fresh)
    # the population registry too: asked for the home municipality, with Kilde's own token
    for source in (*FIVE, "persontjenesten"):
        assert set(auth[source]["audiences_seen"]) == {RESOURCES[source][0]}, source
        assert auth[source]["refused"] == {}, source
        assert auth[source]["accepted"] >= 1


def test_a_dpop_nonce_challenge_from_the_upstreams_and_helseid_is_answered(
        fresh: Stack) -> None:
    _helseid(fresh, "PUT", "settings", json={"require_nonce": True, "resource_nonce": True})
    body = _legevakt(fresh, fresh.token("legevakt-lege", HLR))
    assert "errors" not in body, body.get("errors")
    refused = sum(a["refused"].get("use_dpop_nonce", 0) for a in _auth(fresh).values())
    assert refused >= 1
    assert _helseid(fresh)["refused"].get("use_dpop_nonce", 0) >= 1
    again = _legevakt(fresh, fresh.token("hjemmesykepleier", HLR))
    assert "errors" not in again, again.get("errors")
    # the nonces were remembered: the second caller's calls were not challenged again
    assert sum(a["refused"].get("use_dpop_nonce", 0) for a in _auth(fresh).values()) == refused


def test_an_expired_upstream_token_is_renewed(fresh: Stack) -> None:
    _helseid(fresh, "PUT", "settings", json={"token_lifetime": 2})
    token = fresh.token("legevakt-lege", HLR)
    assert "errors" not in _legevakt(fresh, token)
    first = _exchanges(fresh)
    assert set(first.values()) == {1}
    issued_at = time.time()
    # wait for the instant under test: the upstream tokens' expiry (2 s after issue)
    while time.time() < issued_at + 2.1:
        time.sleep(0.05)
    body = _legevakt(fresh, token)
    assert "errors" not in body, body.get("errors")
    assert set(_exchanges(fresh).values()) == {2}
    assert all(a["refused"] == {} for a in _auth(fresh).values())


def test_a_helseid_refusal_for_one_source_leaves_the_others_answering(fresh: Stack) -> None:
    clients = {c["client_id"]: c for c in _helseid(fresh, path="clients")}
    kilde = clients["kilde"]
    narrowed = {**kilde, "resources": {r: s for r, s in kilde["resources"].items()
                                       if r != RESOURCES["pll"][0]}}
    _helseid(fresh, "PUT", "clients/kilde", json=narrowed)
    try:
        r = fresh.query(QUERY, fresh.token("legevakt-lege", HLR), {"nin": HLR})
    finally:
        _helseid(fresh, "PUT", "clients/kilde", json=kilde)
    body = r.json()
    errors = {e["extensions"].get("source"): e for e in body["errors"]}
    assert set(errors) == {"pll"}
    assert errors["pll"]["extensions"]["code"] == "UPSTREAM_REJECTED"
    assert "invalid_target" in errors["pll"]["message"]
    statuses = {s["source"]: s["status"] for s in body["data"]["patient"]["sources"]}
    assert statuses["pll"] == "UNAVAILABLE"
    assert body["data"]["patient"]["treatmentLimitations"]
    assert fresh.requests()["pll"] == 0
