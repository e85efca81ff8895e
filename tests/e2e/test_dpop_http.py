"""DPoP over real HTTP against a gateway with `KILDE_AUTH__DPOP=required`: the attack suite.

The gateway runs on a loopback port in front of the shared sandbox. A caller holds an ES256
key (`connectors.credentials.generate_key`), gets a demo token bound to its thumbprint
(`cnf.jkt`) and signs one proof per request. A valid request returns the legevakt patient's
HLR-minus; every broken proof, the same proof again, and the same token as Bearer get 401 with
a `WWW-Authenticate: DPoP` challenge, and no upstream is asked.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from connectors.credentials import (
    PrivateKey,
    access_token_hash,
    dpop_proof,
    generate_key,
)
from gateway.demo import mint_event_token, mint_token
from gateway.settings import Settings
from sandbox.world import by_tag
from tests.e2e.conftest import Stack
from tests.servers import ServerThread, demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

HLR = by_tag("legevakt-hlr")
QUERY = "query($nin: String!) { patient(nin: $nin) { treatmentLimitations { code { code } } } }"
KEY = generate_key()


class Gateway:
    """A gateway server with its own auth settings, and a DPoP-holding client for it."""

    def __init__(self, server: ServerThread, settings: Settings, sandbox_url: str) -> None:
        self.server = server
        self.settings = settings
        self.sandbox_url = sandbox_url
        self.url = f"{server.url}/graphql"
        self.http = httpx.Client(timeout=10.0)

    def token(self, key: PrivateKey | None = KEY, persona: str = "legevakt-lege") -> str:
        return mint_token(persona, HLR.nin, issuer=self.settings.auth.issuer,
                          audience=self.settings.auth.audience,
                          jkt=key.thumbprint if key is not None else None)

    def proof(self, token: str | None, *, key: PrivateKey = KEY, method: str = "POST",
              url: str | None = None, **claims: Any) -> str:
        return dpop_proof(key, method, url or self.url, access_token=token,
                          extra_claims=claims or None)

    def post(self, authorization: str | None, proofs: list[str] = (),  # type: ignore[assignment]
             url: str | None = None) -> httpx.Response:
        headers: list[tuple[str, str]] = [("dpop", p) for p in proofs]
        if authorization:
            headers.append(("authorization", authorization))
        return self.http.post(url or self.url, headers=headers,
                              json={"query": QUERY, "variables": {"nin": HLR.nin}})

    def upstream_calls(self) -> int:
        return sum(httpx.get(f"{self.sandbox_url}/_sandbox/requests").json().values())

    def reset_counts(self) -> None:
        httpx.delete(f"{self.sandbox_url}/_sandbox/requests").raise_for_status()


def _gateway(stack: Stack, tmp: Path, **auth: Any) -> Iterator[Gateway]:
    sock = listening_socket()
    settings = e2e_settings(port_of(sock), stack.sandbox.url, f"sqlite:///{tmp / 'audit.sqlite3'}")
    settings = replace(settings, auth=replace(settings.auth, **auth))
    with running(demo_app(settings), sock) as server:
        gateway = Gateway(server, settings, stack.sandbox.url)
        yield gateway
        gateway.http.close()


@pytest.fixture(scope="module")
def required(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _gateway(stack, tmp_path_factory.mktemp("dpop"), dpop="required")


@pytest.fixture
def gw(required: Gateway) -> Gateway:
    required.reset_counts()
    return required


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"x") -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()),
                     _b64(signature)])


def _claims(gw: Gateway, token: str) -> dict[str, Any]:
    return jwt.decode(gw.proof(token), options={"verify_signature": False})


def _hmac(gw: Gateway, token: str) -> str:
    secret = b"s" * 32
    head = _b64(json.dumps({"typ": "dpop+jwt", "alg": "HS256",
                            "jwk": {"kty": "oct", "k": _b64(secret)}}).encode())
    body = _b64(json.dumps(_claims(gw, token)).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def _private_jwk(gw: Gateway, token: str) -> str:
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.key))
    return jwt.encode(_claims(gw, token), KEY.key, algorithm="ES256",
                      headers={"typ": "dpop+jwt", "jwk": private})


def _alg_none(gw: Gateway, token: str) -> str:
    jwk = {k: v for k, v in KEY.public_jwk.items() if k in ("kty", "crv", "x", "y")}
    return _forged({"typ": "dpop+jwt", "alg": "none", "jwk": jwk}, _claims(gw, token), b"")


def _wrong_typ(gw: Gateway, token: str) -> str:
    jwk = {k: v for k, v in KEY.public_jwk.items() if k in ("kty", "crv", "x", "y")}
    return jwt.encode(_claims(gw, token), KEY.key, algorithm="ES256",
                      headers={"typ": "jwt", "jwk": jwk})


OTHER_KEY = generate_key()

# name -> proof for the good token (given the gateway and the token)
PROOF_ATTACKS: dict[str, Callable[[Gateway, str], str]] = {
    "other-htu": lambda g, t: g.proof(t, url="http://127.0.0.1:1/graphql"),
    "other-htu-path": lambda g, t: g.proof(t, url=g.url.replace("/graphql", "/events")),
    "other-htm": lambda g, t: g.proof(t, method="GET"),
    "stale-iat": lambda g, t: g.proof(t, iat=_claims(g, t)["iat"] - 120),
    "future-iat": lambda g, t: g.proof(t, iat=_claims(g, t)["iat"] + 120),
    "missing-ath": lambda g, t: g.proof(None),
    "wrong-ath": lambda g, t: g.proof(t, ath=access_token_hash(t + "x")),
    "key-not-matching-cnf-jkt": lambda g, t: g.proof(t, key=OTHER_KEY),
    "hmac-proof": _hmac,
    "alg-none": _alg_none,
    "private-key-in-jwk": _private_jwk,
    "typ-not-dpop": _wrong_typ,
}


def _refused(r: httpx.Response, gw: Gateway, *, error: str = "invalid_dpop_proof") -> None:
    assert r.status_code == 401, r.text[:300]
    body = r.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert "data" not in body
    [challenge] = r.headers.get_list("www-authenticate")  # required: DPoP is the only scheme
    assert challenge.startswith("DPoP ")
    assert f'error="{error}"' in challenge
    assert 'algs="' in challenge
    assert gw.upstream_calls() == 0
    assert HLR.nin not in r.text


def test_a_valid_dpop_request_returns_data(gw: Gateway) -> None:
    token = gw.token()
    r = gw.post(f"DPoP {token}", [gw.proof(token)])
    assert r.status_code == 200, r.text[:300]
    assert r.json()["data"]["patient"]["treatmentLimitations"]


def test_the_same_proof_replayed_is_401(gw: Gateway) -> None:
    token = gw.token()
    proof = gw.proof(token)
    assert gw.post(f"DPoP {token}", [proof]).status_code == 200
    gw.reset_counts()
    r = gw.post(f"DPoP {token}", [proof])
    _refused(r, gw)
    assert "used before" in r.json()["errors"][0]["message"]


def test_the_same_token_as_bearer_is_401(gw: Gateway) -> None:
    token = gw.token()
    r = gw.post(f"Bearer {token}", [gw.proof(token)])
    _refused(r, gw, error="invalid_token")


def test_an_unbound_token_is_401_in_required_mode(gw: Gateway) -> None:
    token = gw.token(key=None)
    _refused(gw.post(f"Bearer {token}"), gw, error="invalid_token")
    _refused(gw.post(f"DPoP {token}", [gw.proof(token)]), gw, error="invalid_token")


@pytest.mark.parametrize("attack", list(PROOF_ATTACKS))
def test_a_broken_proof_is_401_and_reaches_no_upstream(gw: Gateway, attack: str) -> None:
    token = gw.token()
    proof = PROOF_ATTACKS[attack](gw, token)
    r = gw.post(f"DPoP {token}", [proof])
    _refused(r, gw)
    for part in [proof, *proof.split("."), token, *token.split(".")]:
        if len(part) >= 8:
            assert part not in r.text


@pytest.mark.parametrize("count", [0, 2])
def test_no_proof_or_two_proofs_are_401(gw: Gateway, count: int) -> None:
    token = gw.token()
    _refused(gw.post(f"DPoP {token}", [gw.proof(token) for _ in range(count)]), gw)


def test_no_credentials_get_the_dpop_challenge_without_an_error(gw: Gateway) -> None:
    r = gw.post(None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('DPoP realm="kilde", algs="')
    assert "error=" not in r.headers["www-authenticate"]


def test_get_requests_are_bound_to_get(gw: Gateway) -> None:
    token = gw.token()
    params = {"query": QUERY, "variables": json.dumps({"nin": HLR.nin})}
    r = gw.http.get(gw.url, params=params, headers={"authorization": f"DPoP {token}",
                                                    "dpop": gw.proof(token, method="GET")})
    assert r.status_code == 200, r.text[:300]
    r = gw.http.get(gw.url, params=params, headers={"authorization": f"DPoP {token}",
                                                    "dpop": gw.proof(token)})
    assert r.status_code == 401


def test_events_take_dpop_too(gw: Gateway) -> None:
    url = gw.url.replace("/graphql", "/events")
    machine_key = generate_key()
    token = mint_event_token(issuer=gw.settings.auth.issuer, audience=gw.settings.auth.audience,
                             jkt=machine_key.thumbprint)
    event = {"source": "municipal", "patient": HLR.nin}
    r = gw.http.post(url, json=event, headers={
        "authorization": f"DPoP {token}",
        "dpop": dpop_proof(machine_key, "POST", url, access_token=token)})
    assert r.status_code == 202, r.text
    r = gw.http.post(url, json=event, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("DPoP ")


# -- server nonces ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def with_nonces(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _gateway(stack, tmp_path_factory.mktemp("nonce"), dpop="required",
                        dpop_nonce=True)


def test_a_required_nonce_is_handed_out_and_then_accepted(with_nonces: Gateway) -> None:
    gw = with_nonces
    gw.reset_counts()
    token = gw.token()
    r = gw.post(f"DPoP {token}", [gw.proof(token)])
    _refused(r, gw, error="use_dpop_nonce")
    nonce = r.headers["dpop-nonce"]
    wrong = gw.post(f"DPoP {token}", [gw.proof(token, nonce=nonce[::-1])])
    _refused(wrong, gw, error="use_dpop_nonce")
    r = gw.post(f"DPoP {token}", [gw.proof(token, nonce=nonce)])
    assert r.status_code == 200, r.text[:300]
    assert r.json()["data"]["patient"]["treatmentLimitations"]


# -- replicas share the replay store -----------------------------------------------------------

PUBLIC = "https://kilde.kommune.example"


@pytest.fixture(scope="module")
def replicas(stack: Stack, tmp_path_factory: pytest.TempPathFactory,
             redis_url_module: str) -> Iterator[tuple[Gateway, Gateway]]:
    """Two replicas behind one public URL, sharing Redis as production's would."""
    tmp = tmp_path_factory.mktemp("replicas")
    # A Redis call may take 5 s here (production: 0.25 s): this tests what the replicas share, and
    # under load a short timeout sent the replay check to the replica's own store (fail-open by
    # design when Redis is in trouble), which let the other replica accept the replayed proof.
    cache = {"url": redis_url_module, "key": "replica-shared-cache-key-0123456789",
             "op_timeout_seconds": 5.0}
    with contextlib.ExitStack() as both:
        gateways = [both.enter_context(_replica(stack, tmp / str(i), cache)) for i in (1, 2)]
        yield gateways[0], gateways[1]


@contextlib.contextmanager
def _replica(stack: Stack, tmp: Path, cache: dict[str, Any]) -> Iterator[Gateway]:
    tmp.mkdir()
    sock = listening_socket()
    settings = e2e_settings(port_of(sock), stack.sandbox.url, f"sqlite:///{tmp / 'audit.db'}")
    settings = replace(settings, auth=replace(settings.auth, dpop="required", public_url=PUBLIC),
                       cache=replace(settings.cache, **cache))
    with running(demo_app(settings), sock) as server:
        gateway = Gateway(server, settings, stack.sandbox.url)
        yield gateway
        gateway.http.close()


@pytest.fixture(scope="module")
def redis_url_module() -> str:
    from tests.conftest import REDIS_URL, _need

    _need("Redis", "127.0.0.1", 6379)
    return REDIS_URL


def test_a_proof_accepted_by_one_replica_is_refused_by_the_other(
        replicas: tuple[Gateway, Gateway]) -> None:
    one, two = replicas
    token = one.token()
    proof = one.proof(token, url=f"{PUBLIC}/graphql")
    assert one.post(f"DPoP {token}", [proof]).status_code == 200
    two.reset_counts()
    r = two.post(f"DPoP {token}", [proof])
    _refused(r, two)
    assert "used before" in r.json()["errors"][0]["message"]
    fresh = one.proof(token, url=f"{PUBLIC}/graphql")
    assert two.post(f"DPoP {token}", [fresh]).status_code == 200
