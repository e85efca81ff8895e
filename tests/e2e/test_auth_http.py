"""The attack suite over real HTTP: a bad token is 401 before any upstream is asked.

Each forged token starts from a good demo token (signed with the demo issuer's key the e2e
gateway trusts) and breaks one thing. A valid token with a bad care-relationship attest is not
an authentication failure: it is FORBIDDEN on `patient`, still with no upstream call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.demo.tokens import DEMO_KID, _private_key
from sandbox.world import by_tag
from tests.e2e.client import Client
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.slow

HLR = by_tag("legevakt-hlr")
OTHER = by_tag("multi-service")
QUERY = """query($nin: String!) { patient(nin: $nin) {
  treatmentLimitations { code { code } } medications { name } labResults { code { code } }
  sources { source status } } }"""
PID = "helseid://claims/identity/pid"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(stack: Stack) -> dict[str, Any]:
    """The claims of a good legevakt-lege token bound to the HLR patient."""
    good = stack.token("legevakt-lege", HLR.nin)
    return jwt.decode(good, options={"verify_signature": False})


def _sign(claims: dict[str, Any], *, key: Any = None, alg: str = "RS256",
          kid: str = DEMO_KID) -> str:
    return jwt.encode(claims, key or _private_key(), algorithm=alg,
                      headers={"kid": kid, "typ": "at+jwt"})


def _changed(stack: Stack, **changes: Any) -> str:
    return _sign({**_claims(stack), **changes})


def _alg_none(stack: Stack) -> str:
    head = _b64(json.dumps({"alg": "none", "kid": DEMO_KID, "typ": "at+jwt"}).encode())
    return f"{head}.{_b64(json.dumps(_claims(stack)).encode())}."


def _hs256_with_public_key(stack: Stack) -> str:
    pem = _private_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = _b64(json.dumps({"alg": "HS256", "kid": DEMO_KID, "typ": "at+jwt"}).encode())
    body = _b64(json.dumps(_claims(stack)).encode())
    mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def _tampered(stack: Stack) -> str:
    head, _, signature = stack.token("legevakt-lege", HLR.nin).split(".")
    forged = {**_claims(stack), "scope": "kilde/patient.read kilde/accesslog.read"}
    return f"{head}.{_b64(json.dumps(forged).encode())}.{signature}"


def _someone_elses_key(stack: Stack) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _sign(_claims(stack), key=key)


def _shifted(stack: Stack, **seconds: int) -> str:
    claims = _claims(stack)
    return _sign({**claims, **{name: claims[name] + delta for name, delta in seconds.items()}})


ATTACKS: dict[str, Callable[[Stack], str | None]] = {
    "no-token": lambda s: None,
    "alg-none": _alg_none,
    "hs256-signed-with-the-rsa-public-key": _hs256_with_public_key,
    "expired": lambda s: _shifted(s, iat=-7200, nbf=-7200, exp=-3700),
    "not-yet-valid": lambda s: _shifted(s, nbf=3600),
    "wrong-issuer": lambda s: _changed(s, iss="https://helseid.evil.example"),
    "wrong-audience": lambda s: _changed(s, aud="another-api"),
    "multiple-audiences": lambda s: _changed(s, aud=[s.settings.auth.audience, "another-api"]),
    "unknown-kid": lambda s: _sign(_claims(s), kid="rotated-away"),
    "tampered-payload": _tampered,
    "signed-by-another-key": _someone_elses_key,
    "oversized": lambda s: _changed(s, padding="x" * 20_000),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_bad_token_is_401_unauthenticated_and_reaches_no_upstream(
    stack: Stack, gw: Client, attack: str
) -> None:
    token = ATTACKS[attack](stack)
    r = gw.post(QUERY, f"Bearer {token}" if token else None, {"nin": HLR.nin})
    assert r.status_code == 401, r.text[:300]
    body = r.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert "data" not in body
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert sum(gw.requests().values()) == 0
    for part in [token or "", *(token or "").split(".")]:
        if len(part) >= 8:
            assert part not in r.text
    assert HLR.nin not in r.text


def test_the_unbroken_token_the_attacks_start_from_is_accepted(stack: Stack, gw: Client) -> None:
    body = gw.query(QUERY, _sign(_claims(stack)), {"nin": HLR.nin})
    assert body["data"]["patient"]["treatmentLimitations"]
    # reached (the attacks below reach nothing); 2 on a cold stack: the store's
    # CapabilityStatement is read once, then kept
    assert gw.requests()["municipal"] in (1, 2)


# persona, patient the token is bound to, patient asked for, token options -> reason
FORBIDDEN = {
    "attest-for-another-patient": ("legevakt-lege", OTHER.nin, HLR.nin, {},
                                   "CARE_RELATIONSHIP_MISSING"),
    "attest-without-patient": ("legevakt-lege", None, HLR.nin, {}, "CARE_RELATIONSHIP_MISSING"),
    "attest-older-than-60-minutes": ("legevakt-lege", HLR.nin, HLR.nin, {"attest_age": 3601},
                                     "ATTEST_EXPIRED"),
    "citizen-asking-for-someone-else": ("innbygger", OTHER.nin, HLR.nin, {}, "NOT_SELF"),
    "privacy-officer-asking-for-patient-data": ("personvernombud", None, HLR.nin, {},
                                                "ACCESS_LOG_ONLY"),
}


@pytest.mark.parametrize("case", list(FORBIDDEN))
def test_a_valid_token_without_a_fitting_attest_is_forbidden_and_fetches_nothing(
    gw: Client, case: str
) -> None:
    persona, bound, asked, options, reason = FORBIDDEN[case]
    r = gw.post(QUERY, f"Bearer {gw.token(persona, bound, **options)}", {"nin": asked})
    assert r.status_code == 200
    body = r.json()
    assert body["data"] == {"patient": None}
    assert [(e["extensions"]["code"], e["extensions"].get("reason")) for e in body["errors"]] == [
        ("FORBIDDEN", reason)]
    assert body["errors"][0]["path"] == ["patient"]
    assert sum(gw.requests().values()) == 0
    assert asked not in r.text


def test_an_attest_just_inside_60_minutes_still_opens_the_patient(gw: Client) -> None:
    body = gw.query(QUERY, gw.token("legevakt-lege", HLR.nin, attest_age=3540), {"nin": HLR.nin})
    assert "errors" not in body, body.get("errors")
    assert body["data"]["patient"]["treatmentLimitations"]
