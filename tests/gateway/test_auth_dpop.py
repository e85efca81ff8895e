"""DPoP for callers (RFC 9449), in process: every way a proof can be wrong, and the modes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.warnings import InsecureKeyLengthWarning

from connectors.credentials import access_token_hash, dpop_proof, generate_key, jwk_thumbprint
from gateway.auth import Authenticator, AuthError, DpopNonceError, DpopProofError
from gateway.auth.dpop import ALGORITHMS, MAX_PROOF_BYTES
from gateway.auth.nonce import NonceIssuer
from gateway.settings import DEMO_TENANTS, AuthSettings
from tests.gateway.test_auth import ISSUER, JWKS_URL, NOW, claims, public_jwks, sign

URL = "https://kilde.kommune.example/graphql"
KEY = generate_key()  # the client's DPoP key (ES256)
OTHER_KEY = generate_key()


def settings(**changes: Any) -> AuthSettings:
    return AuthSettings(issuer=ISSUER, audience="kilde", jwks_url=JWKS_URL, **changes)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=public_jwks())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        yield client


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def auth_with(http: httpx.AsyncClient, clock: Clock, **changes: Any) -> Authenticator:
    return Authenticator(settings(**changes), http, DEMO_TENANTS, clock=clock)


@pytest.fixture
def auth(http: httpx.AsyncClient, clock: Clock) -> Authenticator:
    return auth_with(http, clock, dpop="required")


def bound_token(jkt: str = KEY.thumbprint) -> str:
    return sign(claims(cnf={"jkt": jkt}))


TOKEN = bound_token()


def proof(*, key: Any = KEY, method: str = "POST", url: str = URL, token: str | None = TOKEN,
          **claims_: Any) -> str:
    return dpop_proof(key, method, url, access_token=token, now=NOW, extra_claims=claims_)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], body: dict[str, Any], signature: bytes = b"sig") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}.{b64(signature)}"


def good_claims(**changes: Any) -> dict[str, Any]:
    return {"jti": "j-1", "htm": "POST", "htu": URL, "iat": int(NOW),
            "ath": access_token_hash(TOKEN), **changes}


def hmac_proof() -> str:
    secret = b"k" * 32
    header = {"typ": "dpop+jwt", "alg": "HS256",
              "jwk": {"kty": "oct", "k": b64(secret)}}
    head, body = b64(json.dumps(header).encode()), b64(json.dumps(good_claims()).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def with_header(**header: Any) -> str:
    jwk = {k: v for k, v in KEY.public_jwk.items() if k not in ("kid", "use", "alg")}
    base = {"typ": "dpop+jwt", "jwk": jwk, **header}
    alg = base.pop("alg", "ES256")
    return jwt.encode(good_claims(), KEY.key, algorithm=alg, headers=base)


def private_jwk_proof() -> str:
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.key))
    return jwt.encode(good_claims(), KEY.key, algorithm="ES256",
                      headers={"typ": "dpop+jwt", "jwk": private})


def small_rsa_proof() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    token = bound_token(jwk_thumbprint(public))
    body = {**good_claims(), "ath": access_token_hash(token)}
    with warnings.catch_warnings():  # PyJWT warns when signing with a weak key: that's the point
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        weak = jwt.encode(body, key, algorithm="RS256", headers={"typ": "dpop+jwt", "jwk": public})
    return weak, token


def tampered() -> str:
    head, _, signature = proof().split(".")
    return f"{head}.{b64(json.dumps(good_claims(htm='GET')).encode())}.{signature}"


ATTACKS: dict[str, tuple[Any, str]] = {
    "other-htu-host": (lambda: proof(url="https://evil.example/graphql"), "htu"),
    "other-htu-path": (lambda: proof(url="https://kilde.kommune.example/events"), "htu"),
    "other-htu-scheme": (lambda: proof(url="http://kilde.kommune.example/graphql"), "htu"),
    "other-htm": (lambda: proof(method="GET"), "htm"),
    "lower-case-htm": (lambda: proof(htm="post"), "htm"),
    "stale-iat": (lambda: proof(iat=int(NOW) - 61), "too old"),
    "future-iat": (lambda: proof(iat=int(NOW) + 31), "in the future"),
    "no-iat": (lambda: proof(iat="soon"), "no iat"),
    "missing-ath": (lambda: proof(token=None), "ath"),
    "wrong-ath": (lambda: proof(token="another-token"), "ath"),
    "missing-jti": (lambda: proof(jti=None), "jti"),
    "other-key-than-cnf-jkt": (lambda: proof(key=OTHER_KEY), "cnf.jkt"),
    "hmac-proof": (hmac_proof, "alg"),
    "alg-none": (lambda: forged({"typ": "dpop+jwt", "alg": "none",
                                 "jwk": dict(KEY.public_jwk)}, good_claims()), "alg"),
    "alg-none-unsigned": (lambda: forged({"typ": "dpop+jwt", "alg": "none",
                                          "jwk": dict(KEY.public_jwk)}, good_claims(), b""),
                          "well-formed"),
    "private-key-in-jwk": (private_jwk_proof, "public key only"),
    "symmetric-jwk-with-es256": (
        lambda: forged({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "AAAA"}},
                       good_claims()), "public key only"),
    "jwk-not-fitting-alg": (lambda: with_header(alg="ES256", jwk={"kty": "RSA", "n": "AQAB",
                                                                   "e": "AQAB"}), "fit its alg"),
    "typ-jwt": (lambda: with_header(typ="JWT"), "typ"),
    "no-typ": (lambda: forged({"alg": "ES256", "jwk": dict(KEY.public_jwk)}, good_claims()),
               "typ"),
    "no-jwk": (lambda: forged({"typ": "dpop+jwt", "alg": "ES256"}, good_claims()), "no jwk"),
    "crit-header": (lambda: with_header(crit=["exp"]), "extensions"),
    "tampered-claims": (tampered, "signature"),
    "garbage": (lambda: "not.a.proof", "well-formed"),
    "two-parts": (lambda: "abc.def", "well-formed"),
    "oversized": (lambda: proof(pad="x" * MAX_PROOF_BYTES), "too large"),
}


@pytest.mark.parametrize("case", list(ATTACKS))
async def test_a_bad_proof_is_refused_without_echoing_it(auth: Authenticator, case: str) -> None:
    make, expected = ATTACKS[case]
    bad = make()
    with pytest.raises(DpopProofError) as info:
        await auth.authenticate(f"DPoP {TOKEN}", proofs=[bad], method="POST", url=URL)
    assert expected in info.value.message
    assert info.value.error == "invalid_dpop_proof"
    for part in [bad, *bad.split("."), TOKEN, *TOKEN.split(".")]:
        if len(part) >= 8:
            assert part not in info.value.message
    assert "kilde.kommune.example" not in info.value.message


async def test_a_weak_rsa_proof_key_is_refused(auth: Authenticator) -> None:
    weak, token = small_rsa_proof()
    with pytest.raises(DpopProofError, match="too weak"):
        await auth.authenticate(f"DPoP {token}", proofs=[weak], method="POST", url=URL)


async def test_a_good_proof_is_accepted_once(auth: Authenticator) -> None:
    good = proof()
    p = await auth.authenticate(f"DPoP {TOKEN}", proofs=[good], method="POST", url=URL)
    assert p.hpr_number == "9144901"
    with pytest.raises(DpopProofError, match="used before"):
        await auth.authenticate(f"DPoP {TOKEN}", proofs=[good], method="POST", url=URL)
    again = await auth.authenticate(f"DPoP {TOKEN}", proofs=[proof()], method="POST", url=URL)
    assert again == p


@pytest.mark.parametrize(
    "url",
    ["https://KILDE.kommune.example:443/graphql", "HTTPS://kilde.kommune.example/graphql",
     "https://kilde.kommune.example/graphql?query=x#frag"],
)
async def test_htu_is_compared_normalised(auth: Authenticator, url: str) -> None:
    assert await auth.authenticate(f"DPoP {TOKEN}", proofs=[proof(url=url)], method="POST",
                                   url=URL + "?operation=patient")


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "RS256", "PS256", "PS512"])
async def test_every_allowed_algorithm_is_accepted(auth: Authenticator, alg: str) -> None:
    key = generate_key(alg=alg)
    token = bound_token(key.thumbprint)
    assert await auth.authenticate(f"DPoP {token}", proofs=[proof(key=key, token=token)],
                                   method="POST", url=URL)


def test_the_algs_offered_are_asymmetric_and_helseid_s() -> None:
    assert set(ALGORITHMS) == {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256",
                               "PS384", "PS512"}


async def test_an_old_proof_within_the_window_is_accepted(auth: Authenticator) -> None:
    assert await auth.authenticate(f"DPoP {TOKEN}", proofs=[proof(iat=int(NOW) - 59)],
                                   method="POST", url=URL)


@pytest.mark.parametrize("count", [0, 2])
async def test_exactly_one_dpop_header(auth: Authenticator, count: int) -> None:
    with pytest.raises(DpopProofError, match="exactly one DPoP header"):
        await auth.authenticate(f"DPoP {TOKEN}", proofs=[proof() for _ in range(count)],
                                method="POST", url=URL)


async def test_an_unbound_token_cannot_use_the_dpop_scheme(auth: Authenticator) -> None:
    token = sign(claims())
    with pytest.raises(AuthError, match="not bound to a DPoP key"):
        await auth.authenticate(f"DPoP {token}", proofs=[proof(token=token)], method="POST",
                                url=URL)


# -- the modes -----------------------------------------------------------------------------------

async def test_required_refuses_bearer_even_for_a_good_unbound_token(auth: Authenticator) -> None:
    with pytest.raises(AuthError, match="Bearer tokens are not accepted") as info:
        await auth.authenticate("Bearer " + sign(claims()))
    assert info.value.scheme == "bearer"
    assert auth.challenges(info.value) == [
        'DPoP realm="kilde", error="invalid_token", error_description="Send the access token '
        'with the DPoP scheme and a DPoP proof; Bearer tokens are not accepted here.", '
        f'algs="{" ".join(ALGORITHMS)}"']


async def test_allowed_takes_both_but_a_bound_token_only_with_its_proof(
        http: httpx.AsyncClient, clock: Clock) -> None:
    auth = auth_with(http, clock, dpop="allowed")
    assert await auth.authenticate("Bearer " + sign(claims()))
    assert await auth.authenticate(f"DPoP {TOKEN}", proofs=[proof()], method="POST", url=URL)
    with pytest.raises(AuthError, match="bound to a DPoP key") as info:
        await auth.authenticate(f"Bearer {TOKEN}", proofs=[proof()], method="POST", url=URL)
    bearer, dpop = auth.challenges(info.value)
    assert bearer.startswith('Bearer realm="kilde", error="invalid_token"')
    assert dpop == f'DPoP realm="kilde", algs="{" ".join(ALGORITHMS)}"'


async def test_off_takes_bearer_only(http: httpx.AsyncClient, clock: Clock) -> None:
    auth = auth_with(http, clock, dpop="off")
    assert await auth.authenticate("Bearer " + sign(claims()))
    with pytest.raises(AuthError, match="DPoP is not accepted") as info:
        await auth.authenticate(f"DPoP {TOKEN}", proofs=[proof()], method="POST", url=URL)
    assert [c.split(" ")[0] for c in auth.challenges(info.value)] == ["Bearer"]
    with pytest.raises(AuthError, match="bound to a DPoP key"):
        await auth.authenticate(f"Bearer {TOKEN}")


async def test_no_credentials_get_challenges_without_an_error_code(
        http: httpx.AsyncClient, clock: Clock) -> None:
    auth = auth_with(http, clock, dpop="allowed")
    with pytest.raises(AuthError) as info:
        await auth.authenticate(None)
    assert auth.challenges(info.value) == [
        'Bearer realm="kilde"', f'DPoP realm="kilde", algs="{" ".join(ALGORITHMS)}"']


def test_the_dpop_settings_are_checked() -> None:
    from gateway.settings import Settings, SettingsError

    assert Settings.from_env({"KILDE_MODE": "demo"}).auth.dpop == "allowed"
    for bad in ({"KILDE_AUTH__DPOP": "sometimes"}, {"KILDE_AUTH__DPOP_MAX_AGE_SECONDS": "0"},
                {"KILDE_AUTH__PUBLIC_URL": "kilde.example"},
                {"KILDE_AUTH__PUBLIC_URL": "https://kilde.example/?x=1"}):
        with pytest.raises(SettingsError, match="KILDE_AUTH__"):
            Settings.from_env({"KILDE_MODE": "demo", **bad})


# -- server nonces -------------------------------------------------------------------------------

async def test_a_proof_without_the_server_nonce_gets_one_to_sign_with(
        http: httpx.AsyncClient, clock: Clock) -> None:
    auth = auth_with(http, clock, dpop="required", dpop_nonce=True)
    with pytest.raises(DpopNonceError) as info:
        await auth.authenticate(f"DPoP {TOKEN}", proofs=[proof()], method="POST", url=URL)
    assert info.value.error == "use_dpop_nonce"
    nonce = info.value.nonce
    assert 'error="use_dpop_nonce"' in auth.challenges(info.value)[0]
    assert await auth.authenticate(f"DPoP {TOKEN}", proofs=[proof(nonce=nonce)],
                                   method="POST", url=URL)
    with pytest.raises(DpopNonceError):
        await auth.authenticate(f"DPoP {TOKEN}", proofs=[proof(nonce=nonce[:-2] + "AA")],
                                method="POST", url=URL)


def test_a_nonce_lives_for_its_step_and_the_next_only() -> None:
    clock = Clock()
    nonces = NonceIssuer(b"s" * 32, clock=clock)
    nonce = nonces.current()
    clock.now += 300
    assert nonces.valid(nonce)
    clock.now += 300
    assert not nonces.valid(nonce)
    other = NonceIssuer(b"t" * 32, clock=clock)
    assert not other.valid(nonces.current())
    assert not nonces.valid("garbage!")
    assert not nonces.valid(None)
