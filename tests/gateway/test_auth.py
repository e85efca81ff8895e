"""Authentication: the attack suite, demo personas end to end, and the JWKS cache."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.auth import (
    Authenticator,
    AuthError,
    JwksCache,
    JwksUnavailableError,
    bearer_token,
    validate,
)
from gateway.demo import PRIVACY_OFFICER_PID, demo_jwks, mint_token
from gateway.settings import DEMO_TENANTS, AuthSettings
from policies.model import PrincipalKind, PurposeOfUse

ISSUER = "https://helseid-sts.test.example"
AUDIENCE = "kilde"
JWKS_URL = "https://helseid-sts.test.example/.well-known/openid-configuration/jwks"
NOW = 1_800_000_000.0
PID = "04125845687"  # sandbox.world legevakt-lege
PATIENT = "14033841389"  # sandbox.world Arne Hvilested
SETTINGS = AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url=JWKS_URL, dpop="allowed")


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwks() -> dict[str, Any]:
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key().public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(ec_key().public_key(), as_dict=True)
    return {"keys": [{**rsa_jwk, "kid": "rsa-1", "use": "sig"},
                     {**ec_jwk, "kid": "ec-1", "use": "sig"}]}


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "iat": int(NOW), "nbf": int(NOW),
        "exp": int(NOW) + 300, "sub": "abc", "client_id": "epj-1",
        "scope": "kilde/patient.read",
        "helseid://claims/identity/pid": PID,
        "helseid://claims/hpr/hpr_number": "9144901",
        "helseid://claims/client/claims/orgnr_parent": "910000004",
        "helseid://claims/identity/security_level": "4",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], *, alg: str = "RS256", kid: str = "rsa-1",
         **header: Any) -> str:
    key = ec_key() if alg.startswith("ES") else rsa_key()
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, **header})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{signature}"


def hs256_with_public_pem() -> str:
    pem = rsa_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = b64(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def tampered() -> str:
    head, _, sig = sign(claims()).split(".")
    forged = b64(json.dumps(claims(**{"helseid://claims/identity/pid": PATIENT})).encode())
    return f"{head}.{forged}.{sig}"


class Issuer:
    """A fake HelseID JWKS endpoint that counts how often it is asked."""

    def __init__(self, document: dict[str, Any], delay: float = 0.0) -> None:
        self.document = document
        self.delay = delay
        self.fetches = 0
        self.fail: Exception | None = None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return httpx.Response(200, json=self.document)


@pytest.fixture
def issuer() -> Issuer:
    return Issuer(public_jwks(), delay=0.01)


@pytest.fixture
async def http(issuer: Issuer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle)) as client:
        yield client


@pytest.fixture
def auth(http: httpx.AsyncClient) -> Authenticator:
    return Authenticator(SETTINGS, http, DEMO_TENANTS, clock=lambda: NOW)


ATTACKS: dict[str, tuple[Callable[[], str | None], str]] = {
    "alg-none-unsigned": (
        lambda: "Bearer " + unsigned({"alg": "none", "kid": "rsa-1"}, claims(), ""),
        "not a well-formed JWT"),
    "alg-none-with-signature": (
        lambda: "Bearer " + unsigned({"alg": "none", "kid": "rsa-1"}, claims(), "AAAA"),
        "algorithm is not accepted"),
    "hs256-with-public-key-as-secret": (
        lambda: "Bearer " + hs256_with_public_pem(), "algorithm is not accepted"),
    "es256-header-on-rsa-key": (
        lambda: "Bearer " + unsigned({"alg": "ES256", "kid": "rsa-1"}, claims(), "AAAA"),
        "does not match its signing key"),
    "expired": (lambda: "Bearer " + sign(claims(exp=int(NOW) - 31)), "has expired"),
    "not-yet-valid": (lambda: "Bearer " + sign(claims(nbf=int(NOW) + 31)), "not valid yet"),
    "iat-in-future": (lambda: "Bearer " + sign(claims(iat=int(NOW) + 31)), "in the future"),
    "missing-exp": (lambda: "Bearer " + sign(claims(exp=None)), "'exp'"),
    "wrong-issuer": (lambda: "Bearer " + sign(claims(iss="https://evil.example")), "issuer"),
    "wrong-audience": (lambda: "Bearer " + sign(claims(aud="other-api")), "audience"),
    "multiple-audiences": (
        lambda: "Bearer " + sign(claims(aud=[AUDIENCE, "other-api"])), "exactly one audience"),
    "unknown-kid": (lambda: "Bearer " + sign(claims(), kid="rotated-away"), "signing key"),
    "missing-kid": (
        lambda: "Bearer " + jwt.encode(claims(), rsa_key(), algorithm="RS256"),
        "does not name its signing key"),
    "tampered-payload": (lambda: "Bearer " + tampered(), "signature is invalid"),
    "oversized": (lambda: "Bearer " + sign(claims(pad="x" * 20_000)), "too large"),
    "missing-pid": (
        lambda: "Bearer " + sign(claims(**{"helseid://claims/identity/pid": None})),
        "person identifier"),
    "invalid-pid": (
        lambda: "Bearer " + sign(claims(**{"helseid://claims/identity/pid": "12345678901"})),
        "person identifier"),
    "missing-scope": (lambda: "Bearer " + sign(claims(scope=None)), "scope"),
    "missing-client-id": (lambda: "Bearer " + sign(claims(client_id=None)), "client_id"),
    "dpop-proof-as-token": (lambda: "Bearer " + sign(claims(), typ="dpop+jwt"), "type"),
    "garbage": (lambda: "Bearer not-a-jwt-at-all", "not a well-formed JWT"),
    "garbage-three-parts": (lambda: "Bearer a.b.c", "not a well-formed JWT"),
    "wrong-scheme": (lambda: "Basic " + sign(claims()), "Bearer scheme"),
    "no-header": (lambda: None, "no Authorization header"),
}


@pytest.mark.parametrize("case", list(ATTACKS), ids=list(ATTACKS))
async def test_attack_is_rejected_without_echoing_the_token(
    auth: Authenticator, case: str
) -> None:
    make, expected = ATTACKS[case]
    header = make()
    with pytest.raises(AuthError) as info:
        await auth.authenticate(header)
    message = str(info.value)
    assert expected in message
    assert info.value.code == "UNAUTHENTICATED"
    token = (header or "").partition(" ")[2]
    for part in [token, *token.split(".")]:
        if len(part) >= 8:
            assert part not in message
    assert PID not in message
    assert "/.well-known" not in message


async def test_valid_token_passes_the_same_authenticator(auth: Authenticator) -> None:
    principal = await auth.authenticate("Bearer " + sign(claims()))
    assert principal.kind is PrincipalKind.CLINICIAN
    assert principal.person_id == PID
    assert principal.hpr_number == "9144901"
    assert principal.municipality == "0301"
    assert principal.patients == frozenset()


@pytest.mark.parametrize(
    ("changes", "alg", "kid"),
    [
        pytest.param({}, "ES256", "ec-1", id="es256"),
        pytest.param({}, "PS256", "rsa-1", id="ps256-on-rsa-key"),
        pytest.param({"aud": [AUDIENCE]}, "RS256", "rsa-1", id="audience-list-of-one"),
        pytest.param({"exp": int(NOW) - 29}, "RS256", "rsa-1", id="expired-within-leeway"),
        pytest.param({"scope": ["openid", "kilde/patient.read"]}, "RS256", "rsa-1",
                     id="scope-as-list"),
    ],
)
async def test_accepted_variants(auth: Authenticator, changes: dict[str, Any], alg: str,
                                 kid: str) -> None:
    principal = await auth.authenticate("Bearer " + sign(claims(**changes), alg=alg, kid=kid))
    assert principal.person_id == PID
    assert "kilde/patient.read" in principal.scopes


async def test_validate_returns_the_verified_claims(http: httpx.AsyncClient) -> None:
    jwks = JwksCache(JWKS_URL, http, min_refresh_seconds=30)
    verified = await validate(sign(claims()), jwks, SETTINGS, now=NOW)
    assert verified["client_id"] == "epj-1"
    assert verified["helseid://claims/identity/pid"] == PID


def test_algorithms_outside_the_allowlist_fail_at_start(http: httpx.AsyncClient) -> None:
    settings = AuthSettings(algorithms=("RS256", "HS256"))
    with pytest.raises(ValueError, match="HS256"):
        Authenticator(settings, http, DEMO_TENANTS)


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  abc.def.ghi ", "abc.def.ghi")],
)
def test_bearer_token_reads_the_header(header: str, token: str) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer   ", "DPoP abc", "abc"])
def test_bearer_token_rejects_missing_or_other_schemes(header: str | None) -> None:
    with pytest.raises(AuthError):
        bearer_token(header)


# -- demo personas end to end ------------------------------------------------------------------

DEMO = AuthSettings(issuer="http://127.0.0.1:8000/_demo", audience="kilde", dpop="allowed",
                    jwks_url="http://127.0.0.1:8000/_demo/jwks.json")
BERGEN_PATIENT = "23116731894"

# persona -> kind, municipality, purpose, profession, hpr, point of care, healthcare service
PERSONA_TABLE = [
    ("legevakt-lege", PATIENT, PrincipalKind.CLINICIAN, "0301", PurposeOfUse.ETREAT, "LE",
     "9144901", "940000009", None),
    ("hjemmesykepleier", PATIENT, PrincipalKind.CLINICIAN, "0301", PurposeOfUse.TREAT, "SP",
     "9144902", "960000005", "15"),
    ("helsefagarbeider", PATIENT, PrincipalKind.CLINICIAN, "0301", PurposeOfUse.TREAT, "HF",
     "9144903", "950000007", "25"),
    ("saksbehandler", PATIENT, PrincipalKind.CLINICIAN, "0301", PurposeOfUse.COC, None, None,
     "970000003", None),
    ("lege-annen-kommune", PATIENT, PrincipalKind.CLINICIAN, "5001", PurposeOfUse.ETREAT, "LE",
     "9144905", "990000018", None),
    ("hjemmesykepleier-bergen", BERGEN_PATIENT, PrincipalKind.CLINICIAN, "4601",
     PurposeOfUse.TREAT, "SP", "9144906", "980000001", "15"),
    ("innbygger", PATIENT, PrincipalKind.CITIZEN, None, None, None, None, None, None),
    ("personvernombud", None, PrincipalKind.PRIVACY_OFFICER, "0301", None, None, None,
     "910000004", None),
]


@pytest.fixture
async def demo_auth() -> AsyncIterator[Authenticator]:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=demo_jwks())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        yield Authenticator(DEMO, client, DEMO_TENANTS, clock=lambda: NOW + 5)


@pytest.mark.parametrize(
    ("persona", "patient", "kind", "municipality", "purpose", "profession", "hpr", "poc",
     "service"),
    PERSONA_TABLE, ids=[row[0] for row in PERSONA_TABLE],
)
async def test_demo_persona_authenticates(
    demo_auth: Authenticator, persona: str, patient: str | None, kind: PrincipalKind,
    municipality: str | None, purpose: PurposeOfUse | None, profession: str | None,
    hpr: str | None, poc: str | None, service: str | None,
) -> None:
    token = mint_token(persona, patient, issuer=DEMO.issuer, audience=DEMO.audience,
                       now=NOW, attest_age=120)
    p = await demo_auth.authenticate(f"Bearer {token}")
    assert (p.kind, p.municipality, p.purpose_of_use, p.profession, p.hpr_number,
            p.point_of_care, p.healthcare_service) == (
        kind, municipality, purpose, profession, hpr, poc, service)
    if kind is PrincipalKind.CLINICIAN:
        assert p.patients == frozenset({patient})
        assert p.attested_at == datetime.fromtimestamp(NOW - 120, tz=UTC)
        assert p.legal_entity == {"0301": "910000004", "4601": "920000002",
                                  "5001": "930000000"}[municipality or ""]
        assert p.decision_ref
        assert p.point_of_care_name
        assert p.legal_entity_name
        assert p.name
        assert p.name == p.name.strip()
        assert p.scopes == frozenset({"kilde/patient.read"})
    elif kind is PrincipalKind.CITIZEN:
        assert (p.person_id, p.name, p.scopes) == (PATIENT, "Arne Hvilested",
                                                   frozenset({"kilde/innsyn"}))
    else:
        assert (p.person_id, p.legal_entity) == (PRIVACY_OFFICER_PID, "910000004")
        assert p.scopes == frozenset({"kilde/accesslog.read"})


async def test_legevakt_persona_carries_the_world_names(demo_auth: Authenticator) -> None:
    token = mint_token("legevakt-lege", PATIENT, issuer=DEMO.issuer, audience=DEMO.audience,
                       now=NOW)
    p = await demo_auth.authenticate(f"Bearer {token}")
    assert (p.name, p.person_id, p.profession_text, p.point_of_care_name,
            p.legal_entity_name) == ("Ingrid Vaktmo", PID, "Lege", "Oslo kommune legevakt",
                                     "Oslo kommune")
    assert p.is_emergency
    assert p.user_selected


async def test_demo_token_expires_after_its_lifetime(demo_auth: Authenticator) -> None:
    token = mint_token("hjemmesykepleier", PATIENT, issuer=DEMO.issuer, audience=DEMO.audience,
                       now=NOW - 3600 - 60)
    with pytest.raises(AuthError, match="expired"):
        await demo_auth.authenticate(f"Bearer {token}")


async def test_demo_token_for_another_audience_is_rejected(demo_auth: Authenticator) -> None:
    token = mint_token("hjemmesykepleier", PATIENT, issuer=DEMO.issuer, audience="other",
                       now=NOW)
    with pytest.raises(AuthError, match="audience"):
        await demo_auth.authenticate(f"Bearer {token}")


# -- the JWKS cache ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_jwks_refreshes_when_a_new_kid_appears_after_the_window(
    issuer: Issuer, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    jwks = JwksCache(JWKS_URL, http, min_refresh_seconds=30, clock=clock)
    assert (await jwks.key("rsa-1")).key_type == "RSA"
    assert issuer.fetches == 1
    rotated = {**issuer.document["keys"][0], "kid": "rsa-2"}
    issuer.document = {"keys": [rotated]}
    clock.now += 10  # inside the window: fail fast, do not ask the issuer
    with pytest.raises(AuthError, match="signing key"):
        await jwks.key("rsa-2")
    assert issuer.fetches == 1
    clock.now += 25  # window over: one refresh finds the new key
    assert (await jwks.key("rsa-2")).key_id == "rsa-2"
    assert await validate(sign(claims(), kid="rsa-2"), jwks, SETTINGS, now=NOW)
    assert issuer.fetches == 2


async def test_concurrent_requests_for_a_rotated_key_share_one_fetch(
    issuer: Issuer, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    jwks = JwksCache(JWKS_URL, http, min_refresh_seconds=30, clock=clock)
    await jwks.key("rsa-1")
    issuer.document = {"keys": [{**issuer.document["keys"][0], "kid": "rsa-2"}]}
    clock.now += 60
    token = sign(claims(), kid="rsa-2")
    verified = await asyncio.gather(*(validate(token, jwks, SETTINGS, now=NOW) for _ in range(10)))
    assert [c["client_id"] for c in verified] == ["epj-1"] * 10
    assert issuer.fetches == 2


async def test_known_kid_is_served_from_cache(issuer: Issuer, http: httpx.AsyncClient) -> None:
    jwks = JwksCache(JWKS_URL, http, min_refresh_seconds=30)
    for _ in range(20):
        await jwks.key("rsa-1", alg="RS256")
    assert issuer.fetches == 1


async def test_flood_of_unknown_kids_does_not_hammer_the_issuer(
    issuer: Issuer, auth: Authenticator
) -> None:
    tokens = [sign(claims(), kid=secrets.token_hex(8)) for _ in range(100)]
    results = await asyncio.gather(
        *(auth.authenticate(f"Bearer {t}") for t in tokens), return_exceptions=True)
    assert all(isinstance(r, AuthError) for r in results)
    for token in [sign(claims(), kid=secrets.token_hex(8)) for _ in range(20)]:
        with pytest.raises(AuthError):
            await auth.authenticate(f"Bearer {token}")
    assert 1 <= issuer.fetches <= 2
    # the real key still works from the cache
    assert (await auth.authenticate("Bearer " + sign(claims()))).person_id == PID
    assert issuer.fetches <= 2


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(httpx.ReadTimeout("slow"), id="timeout"),
    ],
)
async def test_jwks_network_error_becomes_unavailable(
    issuer: Issuer, http: httpx.AsyncClient, failure: Exception
) -> None:
    issuer.fail = failure
    jwks = JwksCache(JWKS_URL, http, min_refresh_seconds=30)
    with pytest.raises(JwksUnavailableError) as info:
        await jwks.key("rsa-1")
    assert info.value.__cause__ is failure
    assert info.value.code == "UNAUTHENTICATED"
    assert info.value.transient
    assert "jwks" not in str(info.value).lower()


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, b"{}"), (200, b"<html>oops</html>"), (200, b'{"no": "keys"}'), (200, b"[1, 2]")],
)
async def test_jwks_bad_answer_becomes_unavailable(status: int, body: bytes) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        jwks = JwksCache(JWKS_URL, client, min_refresh_seconds=30)
        with pytest.raises(JwksUnavailableError):
            await jwks.key("rsa-1")


async def test_jwks_skips_keys_it_cannot_use() -> None:
    document = public_jwks()
    document["keys"] += [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
                         {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}]

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=document)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        jwks = JwksCache(JWKS_URL, client, min_refresh_seconds=30)
        assert (await jwks.key("ec-1")).key_type == "EC"
        with pytest.raises(AuthError):
            await jwks.key("hmac")
