"""CDS Hooks 2.0 `patient-view`: discovery, cards from the same view, policies and audit as a
GraphQL query, the patient's identity number from the hook's context, and the EPJ's client
JWT where configured."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gateway.cds import SERVICE_ID
from sandbox.world import by_tag
from tests.gateway.inprocess import Harness, gateway, settings_for

HLR = by_tag("legevakt-hlr")
URL = f"/cds-services/{SERVICE_ID}"
AUD = f"http://kilde.test{URL}"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
LOG = "{ myAccessLog(first: 1) { edges { node { outcome reason who deliveries { source } } } } }"


def hook(patient_id: Any = HLR.nin, **extra: Any) -> dict[str, Any]:
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "PractitionerRole/legevakt-1", "patientId": patient_id},
            **extra}


async def call(h: Harness, body: Any, persona: str = "legevakt-lege",
               patient: str | None = HLR.nin, headers: dict[str, str] | None = None) -> Any:
    auth = {"authorization": f"Bearer {h.token(persona, patient)}"} if persona else {}
    return await h.client.post(URL, json=body, headers={**auth, **(headers or {})})


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with gateway() as harness:
        yield harness


async def test_discovery_lists_the_patient_view_service(h: Harness) -> None:
    r = await h.client.get("/cds-services")
    assert r.status_code == 200
    (service,) = r.json()["services"]
    assert (service["hook"], service["id"]) == ("patient-view", SERVICE_ID)
    assert service["description"]
    assert "prefetch" not in service


async def test_the_hlr_minus_from_the_municipal_store_is_a_critical_card(h: Harness) -> None:
    r = await call(h, hook())
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert len(critical) == 1
    (card,) = critical
    assert "HLR" in card["summary"]
    assert card["source"]["label"] == "Kommunal journal, Oslo kommune"
    assert "Kommunal journal, Oslo kommune (post hlr-1)" in card["detail"]
    warning = [c for c in cards if c["indicator"] == "warning"]
    assert [c["source"]["label"] for c in warning] == ["Kjernejournal"]
    assert warning[0]["summary"].startswith("CAVE")
    assert cards.index(card) == 0  # the most important first
    for c in cards:
        assert len(c["summary"]) <= 140
        uuid.UUID(c["uuid"])
        assert c["source"]["label"]
        (link,) = c["links"]
        assert link["type"] == "absolute"
        assert link["url"].startswith("http://kilde.test/app/?launch=")
        assert HLR.nin not in link["url"]


async def test_a_card_link_opens_the_same_patient_for_the_same_user(h: Harness) -> None:
    cards = (await call(h, hook())).json()["cards"]
    launch = cards[0]["links"][0]["url"].split("launch=")[1].split("&")[0]
    r = await h.post({"query": "query($l: String!) { launchContext(launch: $l) { patient } }",
                      "variables": {"l": launch}},
                     headers={"authorization": f"Bearer {h.token('legevakt-lege', None)}"})
    assert r.json()["data"]["launchContext"]["patient"] == HLR.nin


@pytest.mark.parametrize(("mode", "said"), [("error", "var ikke tilgjengelig"),
                                            ("garbage", "ga et svar Kilde ikke kunne lese")])
async def test_a_failed_source_is_an_info_card_and_nothing_claims_absence(
        h: Harness, mode: str, said: str) -> None:
    await h.sandbox.put("/_sandbox/faults/kjernejournal", json={"mode": mode})
    cards = (await call(h, hook())).json()["cards"]
    info = [c for c in cards if c["indicator"] == "info"]
    assert [c["source"]["label"] for c in info] == ["Kjernejournal"]
    assert said in info[0]["summary"]
    assert "kritisk informasjon" in info[0]["summary"]
    assert not [c for c in cards if c["source"]["label"] == "Kjernejournal"
                and c["indicator"] != "info"]
    # the municipal HLR-minus is still there, critical
    assert [c["source"]["label"] for c in cards if c["indicator"] == "critical"] == [
        "Kommunal journal, Oslo kommune"]


async def test_the_hook_is_audited_like_the_query(h: Harness) -> None:
    await call(h, hook())
    log = await h.post({"query": LOG},
                       headers={"authorization": f"Bearer {h.token('innbygger', HLR.nin)}"})
    entry = log.json()["data"]["myAccessLog"]["edges"][0]["node"]
    assert (entry["outcome"], entry["who"]) == ("DELIVERED", "Ingrid Vaktmo")
    assert {"municipal", "kjernejournal"} <= {d["source"] for d in entry["deliveries"]}


async def test_without_a_care_relationship_the_card_says_so_and_nothing_is_shown(
        h: Harness) -> None:
    other = by_tag("multi-service")
    r = await call(h, hook(), patient=other.nin)  # the attest is bound to someone else
    (card,) = r.json()["cards"]
    assert card["indicator"] == "info"
    assert card["source"]["label"] == "Kilde"
    assert "ikke tilgang" in card["summary"]
    log = await h.post({"query": LOG},
                       headers={"authorization": f"Bearer {h.token('innbygger', HLR.nin)}"})
    assert log.json()["data"]["myAccessLog"]["edges"][0]["node"]["outcome"] == "DENIED"


async def test_no_cards_leave_when_the_audit_cannot_be_written() -> None:
    async with gateway(audit_url="postgresql://postgres@127.0.0.1:9/test") as h:
        r = await call(h, hook())
    assert r.status_code == 503
    assert r.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    assert "cards" not in r.json()


@pytest.mark.parametrize("patient_id", [
    f"Patient/{HLR.nin}", f"{FNR}|{HLR.nin}", f"urn:oid:2.16.578.1.12.4.1.4.2|{HLR.nin}"])
async def test_the_patient_may_be_a_reference_or_an_identifier(h: Harness,
                                                               patient_id: str) -> None:
    cards = (await call(h, hook(patient_id))).json()["cards"]
    assert any(c["indicator"] == "critical" for c in cards)


async def test_the_patient_may_come_from_a_prefetched_patient_resource(h: Harness) -> None:
    prefetch = {"patient": {"resourceType": "Patient", "id": "epj-4711",
                            "identifier": [{"system": "urn:epj:mrn", "value": "4711"},
                                           {"system": FNR, "value": HLR.nin}]}}
    cards = (await call(h, hook("epj-4711", prefetch=prefetch))).json()["cards"]
    assert any(c["indicator"] == "critical" for c in cards)
    mismatch = await call(h, hook("epj-9999", prefetch=prefetch))
    assert mismatch.status_code == 400


@pytest.mark.parametrize("body", [
    hook("1288992"), hook("14033841388"), hook("Patient/abc"), hook(f"http://other|{HLR.nin}"),
    hook(None), hook(12345), {**hook(), "hook": "order-select"}, {**hook(), "hookInstance": ""},
    {"hook": "patient-view", "hookInstance": "x"}, [hook()], "patient-view",
])
async def test_anything_but_an_identity_number_is_refused_without_echoing_it(
        h: Harness, body: Any) -> None:
    r = await call(h, body)
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "1403384138" not in r.text
    assert "1288992" not in r.text


async def test_a_body_that_is_not_json_is_400(h: Harness) -> None:
    r = await h.client.post(URL, content=b"{nope", headers={
        "authorization": f"Bearer {h.token()}", "content-type": "application/json"})
    assert r.status_code == 400


async def test_an_unknown_service_is_404_and_no_token_is_401(h: Harness) -> None:
    assert (await call(h, hook(), headers=None)).status_code == 200
    r = await h.client.post("/cds-services/other", json=hook(),
                            headers={"authorization": f"Bearer {h.token()}"})
    assert r.status_code == 404
    r = await call(h, hook(), persona="")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


# -- the EPJ's CDS client JWT, where configured ------------------------------------------

EPJ = "https://epj.vendor.test"
EPJ_JWKS = "http://epj.vendor.test/.well-known/jwks.json"
EPJ_KEY = ec.generate_private_key(ec.SECP384R1())


def _epj_jwks() -> dict[str, Any]:
    jwk = ECAlgorithm.to_jwk(EPJ_KEY.public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": "epj-1", "use": "sig", "alg": "ES384"}]}


def client_jwt(*, aud: str = AUD, iss: str = EPJ, lifetime: int = 60, jti: str | None = None,
               kid: str = "epj-1", headers: dict[str, Any] | None = None,
               now: float | None = None) -> str:
    issued = int(now or time.time())
    claims = {"iss": iss, "sub": "epj-client", "aud": aud, "iat": issued,
              "exp": issued + lifetime, "jti": jti or str(uuid.uuid4())}
    return jwt.encode(claims, EPJ_KEY, algorithm="ES384",
                      headers={"kid": kid, "typ": "JWT", **(headers or {})})


@pytest.fixture
async def guarded() -> AsyncIterator[Harness]:
    base = settings_for()
    settings = replace(base, cds=replace(base.cds, clients=f"{EPJ}={EPJ_JWKS}"))
    async with gateway(settings, documents={EPJ_JWKS: _epj_jwks()}) as harness:
        yield harness


async def test_with_clients_configured_a_valid_client_jwt_is_needed(guarded: Harness) -> None:
    ok = await call(guarded, hook(), headers={"x-cds-client-jwt": client_jwt()})
    assert ok.status_code == 200
    assert ok.json()["cards"]
    missing = await call(guarded, hook())
    assert missing.status_code == 401
    assert "X-CDS-Client-JWT".lower() in missing.json()["errors"][0]["message"].lower()


@pytest.mark.parametrize("token", [
    lambda: client_jwt(aud="http://kilde.test/cds-services/other"),
    lambda: client_jwt(iss="https://unknown.test"),
    lambda: client_jwt(now=time.time() - 3600),
    lambda: client_jwt(lifetime=3600),
    lambda: client_jwt(kid="unknown-key"),
    lambda: client_jwt(headers={"jku": "https://evil.test/jwks.json"}),
    lambda: jwt.encode({"iss": EPJ, "aud": AUD, "exp": int(time.time()) + 60,
                        "iat": int(time.time()), "jti": "x"}, "a-shared-secret-of-enough-length-0123",
                       algorithm="HS256",
                       headers={"kid": "epj-1"}),
    lambda: "not.a.jwt",
], ids=["aud", "iss", "expired", "too-long", "kid", "jku", "hs256", "garbage"])
async def test_a_client_jwt_that_fails_any_check_is_401(guarded: Harness, token: Any) -> None:
    r = await call(guarded, hook(), headers={"x-cds-client-jwt": token()})
    assert r.status_code == 401
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_client_jwt_is_good_for_one_call(guarded: Harness) -> None:
    token = client_jwt()
    assert (await call(guarded, hook(), headers={"x-cds-client-jwt": token})).status_code == 200
    again = await call(guarded, hook(), headers={"x-cds-client-jwt": token})
    assert again.status_code == 401
    assert "used before" in again.json()["errors"][0]["message"]


async def test_a_replayed_client_jwt_is_caught_on_another_replica(redis_url: str) -> None:
    import httpx

    from connectors.cachestore import open_store
    from connectors.crypto import CacheKeys
    from gateway.auth import AuthError
    from gateway.cds import ClientJwtVerifier

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json=_epj_jwks())

    store = open_store(redis_url, op_timeout=5.0, namespace=f"test-{uuid.uuid4().hex}:")
    keys = CacheKeys.from_secret("cds-test-secret-0123456789")
    async with httpx.AsyncClient(transport=Transport()) as http:
        a, b = (ClientJwtVerifier({EPJ: EPJ_JWKS}, http, store, keys) for _ in range(2))
        token = client_jwt()
        assert await a.verify(token, aud=AUD) == EPJ
        with pytest.raises(AuthError, match="used before"):
            await b.verify(token, aud=AUD)
    await store.aclose()


def test_a_bad_clients_setting_fails_at_start() -> None:
    from gateway.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="KILDE_CDS__CLIENTS entry 1"):
        Settings.from_env({"KILDE_MODE": "demo", "KILDE_CDS__CLIENTS": "no-url-here"})


async def test_conflicting_decisions_are_a_critical_card_naming_both_sources(h: Harness) -> None:
    conflicting = by_tag("conflicting-limitations")
    r = await call(h, hook(conflicting.nin), patient=conflicting.nin)
    critical = [c for c in r.json()["cards"] if c["indicator"] == "critical"]
    conflict = critical[0]  # conflicts come first, before either decision
    assert " og " in conflict["source"]["label"]
    assert "Kjernejournal" in conflict["source"]["label"]
    assert "Kommunal journal" in conflict["source"]["label"]


async def test_the_hook_spends_the_clients_rate_limit_like_a_query() -> None:
    from gateway.settings import RateLimitSettings

    async with gateway(settings_for(rate_limit=RateLimitSettings(requests=2,
                                                                 window_seconds=60))) as h:
        assert (await call(h, hook())).status_code == 200
        await h.post({"query": "{ me { kind } }"})  # the same client's budget
        r = await call(h, hook())
    assert r.status_code == 429
    assert r.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(r.headers["retry-after"]) > 0
