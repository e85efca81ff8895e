"""The HelseID simulator: discovery, JWKS rotation, persona tokens, and a token endpoint that
checks the client assertion and the DPoP proof before it exchanges or issues anything.

Kilde's own HelseID client (`connectors.credentials`) drives the happy paths, so the two
independent implementations must agree; the refusals are built by hand."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from connectors.credentials import (
    HelseIdClient,
    TokenProvider,
    TokenRequestError,
    dpop_proof,
    generate_key,
    load_private_key,
)
from sandbox.app import create_app
from sandbox.helseid import RESOURCES, HelseId, key_file

BASE = "http://sandbox"
ISSUER = f"{BASE}/helseid"
TOKEN_URL = f"{ISSUER}/connect/token"
KJ_RESOURCE, KJ_SCOPE = RESOURCES["kjernejournal"]
CLIENT_KEY = load_private_key(key_file("kilde-client.json"))
DPOP_KEY = load_private_key(key_file("kilde-dpop.json"))
PATIENT = "14033841389"


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[httpx.AsyncClient, HelseId]]:
    app = create_app({})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE) as http:
        yield http, app.state.helseid


def _kilde(http: httpx.AsyncClient, **kw: Any) -> HelseIdClient:
    return HelseIdClient(http, issuer=ISSUER, client_id="kilde", client_key=CLIENT_KEY,
                         dpop_key=kw.pop("dpop_key", DPOP_KEY), **kw)


def _persona(helseid: HelseId, **kw: Any) -> str:
    return helseid.persona_token("legevakt-lege", PATIENT, issuer=ISSUER, **kw)


async def test_discovery_names_the_issuer_its_keys_and_token_endpoint(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, _ = sandbox
    doc = (await http.get("/helseid/.well-known/openid-configuration")).json()
    assert doc["issuer"] == ISSUER
    assert doc["token_endpoint"] == TOKEN_URL
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in doc["grant_types_supported"]
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    keys = (await http.get(doc["jwks_uri"].removeprefix(BASE))).json()["keys"]
    assert [k["kid"] for k in keys] == ["kilde-demo-1"]
    assert all("d" not in k for k in keys)


async def test_a_persona_token_verifies_with_the_published_key_and_carries_the_attest(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, _ = sandbox
    r = await http.post("/_sandbox/helseid/token",
                        json={"persona": "legevakt-lege", "patient": PATIENT,
                              "jkt": DPOP_KEY.thumbprint})
    assert r.status_code == 200
    assert r.json()["token_type"] == "DPoP"
    token = r.json()["access_token"]
    jwks = jwt.PyJWKSet.from_dict(
        (await http.get("/helseid/.well-known/openid-configuration/jwks")).json())
    claims = jwt.decode(token, jwks[jwt.get_unverified_header(token)["kid"]].key,
                        algorithms=["RS256"], audience="kilde", issuer=ISSUER)
    assert claims["cnf"] == {"jkt": DPOP_KEY.thumbprint}
    assert claims["helseid://claims/hpr/hpr_number"] == "9144901"
    attest = claims["authorization_details"][0]
    assert attest["care_relationship"]["purpose_of_use"]["code"] == "ETREAT"
    assert attest["patients"][0]["identifier"]["id"] == PATIENT


async def test_the_event_stores_token_has_the_events_scope_and_no_person_at_work(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, _ = sandbox
    r = await http.post("/_sandbox/helseid/token", json={"persona": "hendelseslager"})
    assert r.status_code == 200
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "kilde/events.write"
    assert claims["client_id"] == "kilde-demo-hendelseslager"
    assert "helseid://claims/identity/pid" not in claims  # a machine: no person in it
    assert "authorization_details" not in claims


@pytest.mark.parametrize("body", [{}, {"persona": "nobody"}, {"persona": "innbygger"},
                                  {"persona": "hendelseslager", "patient": PATIENT},
                                  {"persona": "legevakt-lege", "jkt": "short"},
                                  {"persona": "legevakt-lege", "lifetime": 0},
                                  {"persona": "innbygger", "patient": PATIENT, "purpose": "BTG"}])
async def test_a_bad_persona_token_request_is_a_clear_400(
        sandbox: tuple[httpx.AsyncClient, HelseId], body: dict[str, Any]) -> None:
    http, _ = sandbox
    r = await http.post("/_sandbox/helseid/token", json=body)
    assert r.status_code == 400
    assert r.json()["error"]


async def test_token_exchange_gives_a_dpop_bound_token_for_one_resource_with_the_users_claims(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, helseid = sandbox
    caller = _persona(helseid)
    issued = await _kilde(http).exchange(caller, resource=KJ_RESOURCE, scope=KJ_SCOPE)
    assert issued.dpop
    claims = helseid.ring.verify(issued.access_token, audience=KJ_RESOURCE, issuer=ISSUER)
    caller_claims = jwt.decode(caller, options={"verify_signature": False})
    assert claims["aud"] == KJ_RESOURCE
    assert claims["scope"] == KJ_SCOPE
    assert claims["cnf"] == {"jkt": DPOP_KEY.thumbprint}
    assert claims["client_id"] == "kilde"
    assert claims["act"] == {"sub": "kilde"}
    for name in ("sub", "helseid://claims/identity/pid", "helseid://claims/hpr/hpr_number",
                 "helseid://claims/identity/security_level", "authorization_details"):
        assert claims[name] == caller_claims[name]
    assert claims["exp"] - claims["iat"] == helseid.token_lifetime
    rows = helseid.count_rows()
    assert [(r["grant"], r["audience"], r["count"]) for r in rows] == [
        ("token_exchange", KJ_RESOURCE, 1)]


async def test_client_credentials_carry_no_user(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, helseid = sandbox
    resource, scope = RESOURCES["kjernejournal"]
    issued = await _kilde(http).client_credentials(resource=resource, scope=scope)
    claims = helseid.ring.verify(issued.access_token, audience=resource, issuer=ISSUER)
    assert claims["sub"] == "kilde"
    assert "helseid://claims/identity/pid" not in claims
    assert "authorization_details" not in claims


def _form(assertion: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": "kilde",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion, "resource": KJ_RESOURCE, "scope": KJ_SCOPE, **extra}


def _assertion(*, typ: str = "client-authentication+jwt", aud: str = ISSUER,
               key: Any = None, lifetime: int = 60, iss: str = "kilde", jti: str = "") -> str:
    now = int(time.time())
    signer = key or CLIENT_KEY
    return jwt.encode({"iss": iss, "sub": iss, "aud": aud, "iat": now, "exp": now + lifetime,
                       "jti": jti or f"j-{time.monotonic_ns()}"}, signer.key,
                      algorithm=signer.alg, headers={"typ": typ, "kid": CLIENT_KEY.kid})


async def _post(http: httpx.AsyncClient, form: dict[str, str],
                proof: str | None = "make") -> httpx.Response:
    headers = {}
    if proof == "make":
        proof = dpop_proof(DPOP_KEY, "POST", TOKEN_URL)
    if proof is not None:
        headers["dpop"] = proof
    return await http.post("/helseid/connect/token", data=form, headers=headers)


@pytest.mark.parametrize(("assertion", "error"), [
    (lambda: _assertion(typ="JWT"), "invalid_client"),
    (lambda: _assertion(aud="https://elsewhere"), "invalid_client"),
    (lambda: _assertion(key=generate_key(alg="RS256")), "invalid_client"),
    (lambda: _assertion(lifetime=3600), "invalid_client"),
    (lambda: _assertion(lifetime=-5), "invalid_client"),
    (lambda: _assertion(iss="someone-else"), "invalid_client"),
    (lambda: "not-a-jwt", "invalid_client"),
])
async def test_a_bad_client_assertion_is_refused(
        sandbox: tuple[httpx.AsyncClient, HelseId], assertion: Any, error: str) -> None:
    http, helseid = sandbox
    r = await _post(http, _form(assertion()))
    assert r.status_code == 401
    assert r.json()["error"] == error
    assert helseid.counts == {}


async def test_a_replayed_client_assertion_is_refused(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, _ = sandbox
    assertion = _assertion(jti="once")
    assert (await _post(http, _form(assertion))).status_code == 200
    r = await _post(http, _form(assertion))
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("proof", [
    None,
    "garbage",
    lambda: dpop_proof(DPOP_KEY, "GET", TOKEN_URL),
    lambda: dpop_proof(DPOP_KEY, "POST", f"{BASE}/helseid/other"),
    lambda: dpop_proof(DPOP_KEY, "POST", TOKEN_URL, now=time.time() - 600),
    lambda: dpop_proof(DPOP_KEY, "POST", TOKEN_URL, now=time.time() + 600),
])
async def test_a_missing_or_wrong_dpop_proof_at_the_token_endpoint_is_refused(
        sandbox: tuple[httpx.AsyncClient, HelseId], proof: Any) -> None:
    http, helseid = sandbox
    r = await _post(http, _form(_assertion()), proof() if callable(proof) else proof)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_dpop_proof")
    assert helseid.counts == {}


async def test_a_replayed_proof_at_the_token_endpoint_is_refused(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, _ = sandbox
    proof = dpop_proof(DPOP_KEY, "POST", TOKEN_URL)
    assert (await _post(http, _form(_assertion()), proof)).status_code == 200
    r = await _post(http, _form(_assertion()), proof)
    assert r.json()["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize(("extra", "error"), [
    ({"resource": "nhn:unknown"}, "invalid_target"),
    ({"scope": "nhn:kjernejournal/admin"}, "invalid_scope"),
    ({"grant_type": "password"}, "unauthorized_client"),
    ({"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange"}, "invalid_request"),
    ({"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
      "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
      "subject_token": "forged.token.here"}, "invalid_grant"),
])
async def test_what_the_client_may_not_ask_for_is_refused(
        sandbox: tuple[httpx.AsyncClient, HelseId], extra: dict[str, str], error: str) -> None:
    http, _ = sandbox
    r = await _post(http, _form(_assertion(), **extra))
    assert (r.status_code, r.json()["error"]) == (400, error)


@pytest.mark.parametrize("make", [
    lambda h: _persona(h, lifetime=-10),  # expired
    lambda h: _persona(h, audience="nhn:kjernejournal"),  # not a token for Kilde
    lambda h: jwt.encode({"iss": ISSUER, "aud": "kilde", "exp": time.time() + 60},
                         generate_key(alg="RS256").key, algorithm="RS256",
                         headers={"kid": "kilde-demo-1"}),  # not signed by HelseID
])
async def test_a_subject_token_helseid_did_not_issue_for_kilde_is_not_exchanged(
        sandbox: tuple[httpx.AsyncClient, HelseId], make: Any) -> None:
    http, helseid = sandbox
    with pytest.raises(TokenRequestError, match="invalid_grant"):
        await _kilde(http).exchange(make(helseid), resource=KJ_RESOURCE, scope=KJ_SCOPE)


async def test_the_token_endpoint_nonce_is_demanded_and_answered(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, helseid = sandbox
    assert (await http.put("/_sandbox/helseid/settings",
                           json={"require_nonce": True})).status_code == 200
    client = _kilde(http)
    await client.exchange(_persona(helseid), resource=KJ_RESOURCE, scope=KJ_SCOPE)
    assert client.requests == 2
    assert helseid.refusals["use_dpop_nonce"] == 1


async def test_rotation_publishes_a_new_key_and_removal_unpublishes_the_old_one(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, helseid = sandbox
    old = _persona(helseid)
    rotated = (await http.post("/_sandbox/helseid/keys")).json()
    assert rotated["signing"] != "kilde-demo-1"
    assert rotated["kids"] == ["kilde-demo-1", rotated["signing"]]
    new = _persona(helseid)
    assert jwt.get_unverified_header(new)["kid"] == rotated["signing"]
    assert (await http.delete(f"/_sandbox/helseid/keys/{rotated['signing']}")).status_code == 409
    assert (await http.delete("/_sandbox/helseid/keys/kilde-demo-1")).status_code == 200
    assert (await http.delete("/_sandbox/helseid/keys/kilde-demo-1")).status_code == 404
    jwks = (await http.get("/helseid/.well-known/openid-configuration/jwks")).json()
    assert [k["kid"] for k in jwks["keys"]] == [rotated["signing"]]
    client = _kilde(http)
    await client.exchange(new, resource=KJ_RESOURCE, scope=KJ_SCOPE)
    with pytest.raises(TokenRequestError, match="invalid_grant"):
        await client.exchange(old, resource=KJ_RESOURCE, scope=KJ_SCOPE)


async def test_a_client_registered_at_run_time_can_get_tokens(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, _ = sandbox
    vendor_key = generate_key(kid="vendor-1")
    r = await http.put("/_sandbox/helseid/clients/vendor", json={
        "jwks": vendor_key.public_jwks(), "resources": {KJ_RESOURCE: [KJ_SCOPE]},
        "grants": ["client_credentials"]})
    assert r.status_code == 200
    vendor = HelseIdClient(http, issuer=ISSUER, client_id="vendor", client_key=vendor_key,
                           dpop_key=generate_key())
    await vendor.client_credentials(resource=KJ_RESOURCE, scope=KJ_SCOPE)
    with pytest.raises(TokenRequestError, match="unauthorized_client"):
        await vendor.exchange("x", resource=KJ_RESOURCE, scope=KJ_SCOPE)


async def test_the_counts_are_per_client_grant_audience_and_caller(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    http, helseid = sandbox
    provider = TokenProvider(_kilde(http))
    callers = [_persona(helseid), helseid.persona_token("hjemmesykepleier", PATIENT,
                                                        issuer=ISSUER)]
    from connectors.credentials import Audience

    for _ in range(3):
        for caller in callers:
            for source in ("kjernejournal", "pll"):
                await provider.token(Audience(*RESOURCES[source]), caller, source=source,
                                     timeout=5)
    body = (await http.get("/_sandbox/helseid/requests")).json()
    assert body["total"] == 4
    assert {(r["audience"], r["count"]) for r in body["requests"]} == {
        (RESOURCES["kjernejournal"][0], 1), (RESOURCES["pll"][0], 1)}
    assert len({r["subject"] for r in body["requests"]}) == 2
    assert (await http.delete("/_sandbox/helseid/requests")).json()["total"] == 0


def test_the_environment_configures_issuer_lifetime_and_clients(tmp_path: Any) -> None:
    import json

    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({"ehr": {"jwks": generate_key().public_jwks(),
                                           "resources": {"nhn:x": ["nhn:x/read"]}}}))
    helseid = HelseId.from_env({"KILDE_SANDBOX__HELSEID__ISSUER": "https://sts.test/",
                                "KILDE_SANDBOX__HELSEID__TOKEN_LIFETIME": "120",
                                "KILDE_SANDBOX__HELSEID__CLIENTS": str(clients)})
    assert helseid.issuer_for({"type": "http"}) == "https://sts.test"
    assert helseid.token_lifetime == 120
    assert set(helseid.clients) == {"kilde", "ehr"}
    clients.write_text("[1, 2]")
    with pytest.raises(ValueError, match="CLIENTS"):
        HelseId.from_env({"KILDE_SANDBOX__HELSEID__CLIENTS": str(clients)})


async def test_the_demo_tokens_kilde_mints_are_the_simulators_own(
        sandbox: tuple[httpx.AsyncClient, HelseId]) -> None:
    """The demo signing key is the simulator's first key: a token from `gateway.demo` is one
    HelseID issued, so Kilde can exchange it (until the demo module mints through here)."""
    from gateway.demo import mint_token

    http, helseid = sandbox
    caller = mint_token("hjemmesykepleier", PATIENT, issuer=ISSUER, audience="kilde")
    assert jwt.decode(caller, options={"verify_signature": False}) == {
        **helseid.ring.verify(caller, audience="kilde")}
    issued = await _kilde(http).exchange(caller, resource=KJ_RESOURCE, scope=KJ_SCOPE)
    assert issued.access_token
