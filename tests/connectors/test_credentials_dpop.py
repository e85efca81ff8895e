"""DPoP proofs and their building blocks, checked against the RFCs' own examples and by
verifying what we sign with the public key a server would take from the proof."""

from __future__ import annotations

import doctest
import time

import jwt
import pytest

from connectors.credentials import (
    DPOP_TYPE,
    access_token_hash,
    dpop_proof,
    generate_key,
    htu_of,
    jwk_thumbprint,
)
from connectors.credentials import dpop as dpop_module
from connectors.credentials import keys as keys_module

# RFC 7638 §3.1: the example RSA key and its thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJ"
         "ECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD"
         "W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4v"
         "MQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_matches_the_rfc_7638_example() -> None:
    assert jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT


def test_thumbprint_ignores_optional_and_private_members() -> None:
    key = generate_key()
    private = {**key.public_jwk, "d": "secret", "kid": "x", "use": "enc", "alg": "ES256"}
    assert jwk_thumbprint(private) == jwk_thumbprint(key.public_jwk) == key.thumbprint


def test_thumbprint_differs_between_keys() -> None:
    assert generate_key().thumbprint != generate_key().thumbprint


@pytest.mark.parametrize("jwk", [
    {"kty": "oct", "k": "c2VjcmV0"},
    {"kty": "EC", "crv": "P-256", "x": "abc"},
    {"kty": "RSA", "n": 12, "e": "AQAB"},
    {"n": "abc", "e": "AQAB"},
])
def test_thumbprint_refuses_keys_it_cannot_identify(jwk: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"thumbprint|type"):
        jwk_thumbprint(jwk)


def test_access_token_hash_matches_the_rfc_9449_example() -> None:
    assert (access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
            == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo")


@pytest.mark.parametrize(("url", "htu"), [
    ("https://server.example.com/token", "https://server.example.com/token"),
    ("https://resource.example.org/protectedresource?x=1#f",
     "https://resource.example.org/protectedresource"),
    ("HTTPS://Server.Example.COM:443/Token", "https://server.example.com/Token"),
    ("http://127.0.0.1:80/fhir/Patient", "http://127.0.0.1/fhir/Patient"),
    ("http://127.0.0.1:8081/kj/api", "http://127.0.0.1:8081/kj/api"),
    ("https://h.example:8443", "https://h.example:8443/"),
    ("http://[::1]:9000/a", "http://[::1]:9000/a"),
])
def test_htu_is_the_normalised_url_without_query_or_fragment(url: str, htu: str) -> None:
    assert htu_of(url) == htu


@pytest.mark.parametrize(("url", "htu"), [
    ("https://a.example:0443/p", "https://a.example/p"),       # a default port, zero-padded
    ("http://a.example:08080/p?q", "http://a.example:8080/p"),  # a port as a number
    ("https://a.example:/x", "https://a.example/x"),            # an empty port
    ("https://a.example:65535/", "https://a.example:65535/"),
    ("http://A.B/%2F/x;y?z", "http://a.b/%2F/x;y"),              # path kept as sent, params too
    ("https://user@H.example:8443/x", "https://h.example:8443/x"),  # user info dropped
])
def test_htu_of_an_unusual_url_is_what_urlsplit_normalises_it_to(url: str, htu: str) -> None:
    assert htu_of(url) == htu


def test_htu_of_a_port_out_of_range_is_refused_as_urlsplit_refuses_it() -> None:
    with pytest.raises(ValueError, match="out of range"):
        htu_of("https://a.example:65536/x")


def test_a_dpop_token_carries_its_ath_computed_once_and_a_proof_uses_it() -> None:
    from connectors.credentials.helseid import IssuedToken

    token = IssuedToken("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU", "DPoP", 0.0)
    assert token.ath == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    assert IssuedToken("t", "Bearer", 0.0).ath == ""
    assert "ath" not in repr(token)
    assert token == IssuedToken(token.access_token, "DPoP", 0.0)
    proof = dpop_proof(generate_key(), "GET", "https://h.example/x",
                       access_token=token.access_token, ath=token.ath)
    assert _verify(proof)[1]["ath"] == token.ath


def _verify(proof: str) -> tuple[dict[str, object], dict[str, object]]:
    """What a server does: the key from the header, the signature with it."""
    header = jwt.get_unverified_header(proof)
    public = jwt.PyJWK(header["jwk"], algorithm=header["alg"])
    claims = jwt.decode(proof, key=public, algorithms=[header["alg"]])
    return header, claims


@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256", "PS256"])
def test_proof_verifies_with_the_public_key_in_its_header(alg: str) -> None:
    key = generate_key(alg=alg)
    before = int(time.time())
    proof = dpop_proof(key, "get", "https://kj.example/api/Status?nin=1", access_token="tok")
    header, claims = _verify(proof)
    assert header["typ"] == DPOP_TYPE
    assert header["alg"] == alg
    assert jwk_thumbprint(header["jwk"]) == key.thumbprint  # type: ignore[arg-type]
    assert claims["htm"] == "GET"
    assert claims["htu"] == "https://kj.example/api/Status"
    assert claims["ath"] == access_token_hash("tok")
    assert before <= claims["iat"] <= int(time.time())  # type: ignore[operator]
    assert "nonce" not in claims


def test_proof_header_carries_no_private_member() -> None:
    for alg in ("ES256", "RS256"):
        header = jwt.get_unverified_header(dpop_proof(generate_key(alg=alg), "POST", "https://h/t"))
        assert set(header["jwk"]) & {"d", "p", "q", "dp", "dq", "qi"} == set()


def test_proof_for_the_token_endpoint_has_no_ath_and_carries_a_nonce_when_given() -> None:
    _, claims = _verify(dpop_proof(generate_key(), "POST", "https://h/connect/token",
                                   nonce="n-1", now=1_700_000_000))
    assert "ath" not in claims
    assert claims["nonce"] == "n-1"
    assert claims["iat"] == 1_700_000_000


def test_every_proof_has_a_fresh_jti() -> None:
    key = generate_key()
    jtis = {_verify(dpop_proof(key, "GET", "https://h/x"))[1]["jti"] for _ in range(200)}
    assert len(jtis) == 200


def test_a_proof_does_not_verify_with_another_key() -> None:
    proof = dpop_proof(generate_key(), "GET", "https://h/x")
    other = generate_key()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(proof, key=other.key.public_key(), algorithms=["ES256"])


@pytest.mark.parametrize("module", [dpop_module, keys_module])
def test_the_docstring_examples_hold(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0
