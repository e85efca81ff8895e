"""Keys that rotate, over real HTTP: a key the issuer removes is refused within the refresh.

An issuer of the test's own (discovery document and JWKS on a loopback port, keys it can add
and remove) stands in for HelseID; the gateway has no JWKS URL configured, so it finds the key
set through discovery, and refreshes it every second (`KILDE_AUTH__JWKS_REFRESH_SECONDS=1`).
The refresh is checked on use, so the first request after the interval is the one that must
see the removal: the wait in the test is the behaviour under test, not a synchronisation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.credentials import PrivateKey, generate_key
from gateway.app import create_app
from gateway.demo import mint_token
from sandbox.app import create_app as create_sandbox
from sandbox.world import by_tag
from tests.e2e.conftest import Stack
from tests.servers import ServerThread, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

HLR = by_tag("legevakt-hlr")
QUERY = "query($nin: String!) { patient(nin: $nin) { treatmentLimitations { code { code } } } }"
REFRESH = 1.0


class Issuer:
    """A HelseID stand-in: discovery, a JWKS of the keys it currently publishes, and counts."""

    def __init__(self) -> None:
        self.url = ""
        self.keys = {"old": generate_key(kid="old"), "new": generate_key(kid="new")}
        self.published = {"old", "new"}
        self.asked: list[str] = []

    def app(self) -> Starlette:
        async def discovery(request: Request) -> JSONResponse:
            self.asked.append("discovery")
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/keys"})

        async def keys(request: Request) -> JSONResponse:
            self.asked.append("keys")
            return JSONResponse({"keys": [dict(self.keys[k].public_jwk)
                                          for k in sorted(self.published)]})

        return Starlette(routes=[Route("/.well-known/openid-configuration", discovery),
                                 Route("/keys", keys)])

    def sign(self, claims: dict[str, Any], kid: str) -> str:
        key: PrivateKey = self.keys[kid]
        return jwt.encode({**claims, "iss": self.url}, key.key, algorithm=key.alg,
                          headers={"kid": kid, "typ": "at+jwt"})


@pytest.fixture(scope="module")
def issued(stack: Stack, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Issuer, ServerThread]]:
    issuer = Issuer()
    with running(issuer.app()) as idp:
        issuer.url = idp.url
        sock = listening_socket()
        audit = Path(tmp_path_factory.mktemp("rotation")) / "audit.sqlite3"
        settings = e2e_settings(port_of(sock), stack.sandbox.url, f"sqlite:///{audit}")
        settings = replace(settings, auth=replace(
            settings.auth, issuer=issuer.url, jwks_url="", jwks_refresh_seconds=REFRESH,
            jwks_min_refresh_seconds=REFRESH / 2))
        with running(create_app(settings), sock) as gateway:
            yield issuer, gateway


def _ask(gateway: ServerThread, token: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/graphql", headers={"authorization": f"Bearer {token}"},
                      json={"query": QUERY, "variables": {"nin": HLR.nin}}, timeout=10)


def test_a_removed_key_is_refused_within_the_refresh_interval(
        issued: tuple[Issuer, ServerThread]) -> None:
    issuer, gateway = issued
    claims = jwt.decode(mint_token("legevakt-lege", HLR.nin, issuer="x", audience="kilde"),
                        options={"verify_signature": False})
    old, new = issuer.sign(claims, "old"), issuer.sign(claims, "new")
    assert _ask(gateway, old).status_code == 200
    assert _ask(gateway, new).status_code == 200
    assert issuer.asked[:2] == ["discovery", "keys"]  # found through discovery

    issuer.published.discard("old")  # the issuer rotates the old key out
    removed_at = time.monotonic()
    time.sleep(REFRESH)  # the refresh interval: the behaviour under test
    refused = _ask(gateway, old)
    assert refused.status_code == 401, refused.text[:300]
    assert "signing key" in refused.json()["errors"][0]["message"]
    assert time.monotonic() - removed_at < REFRESH + 5  # generous bound for a loaded machine
    assert _ask(gateway, new).status_code == 200  # the key still published keeps working


def test_a_new_key_is_picked_up_on_first_sight(issued: tuple[Issuer, ServerThread]) -> None:
    issuer, gateway = issued
    issuer.keys["newer"] = generate_key(kid="newer")
    issuer.published.add("newer")
    claims = jwt.decode(mint_token("legevakt-lege", HLR.nin, issuer="x", audience="kilde"),
                        options={"verify_signature": False})
    time.sleep(REFRESH / 2)  # past the minimum interval between refreshes for unknown keys
    assert _ask(gateway, issuer.sign(claims, "newer")).status_code == 200


# -- the same against the sandbox's HelseID simulator ------------------------------------------

@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ServerThread]]:
    """A sandbox of this module's own (its simulator's keys are rotated and removed here) and
    a gateway trusting the simulator as its issuer, found through discovery."""
    with running(create_sandbox({})) as sandbox:
        sock = listening_socket()
        audit = Path(tmp_path_factory.mktemp("simulated")) / "audit.sqlite3"
        settings = e2e_settings(port_of(sock), sandbox.url, f"sqlite:///{audit}")
        settings = replace(settings, auth=replace(
            settings.auth, issuer=f"{sandbox.url}/helseid", jwks_url="",
            jwks_refresh_seconds=REFRESH, jwks_min_refresh_seconds=REFRESH / 2))
        with running(create_app(settings), sock) as gateway:
            yield sandbox.url, gateway


def _simulator_token(sandbox: str) -> str:
    r = httpx.post(f"{sandbox}/_sandbox/helseid/token",
                   json={"persona": "legevakt-lege", "patient": HLR.nin})
    r.raise_for_status()
    return str(r.json()["access_token"])


def test_a_key_removed_from_the_simulator_is_refused_within_the_refresh_interval(
        simulated: tuple[str, ServerThread]) -> None:
    sandbox, gateway = simulated
    before = _simulator_token(sandbox)
    assert _ask(gateway, before).status_code == 200
    old = jwt.get_unverified_header(before)["kid"]
    rotated = httpx.post(f"{sandbox}/_sandbox/helseid/keys").json()
    after = _simulator_token(sandbox)
    assert jwt.get_unverified_header(after)["kid"] == rotated["signing"] != old
    # an unknown kid refreshes the keys, at most once per minimum interval: wait that out
    # since the first fetch (which happened before the first answer), then it is fetched
    time.sleep(REFRESH / 2)
    assert _ask(gateway, after).status_code == 200
    httpx.delete(f"{sandbox}/_sandbox/helseid/keys/{old}").raise_for_status()
    time.sleep(REFRESH)  # the refresh interval: the behaviour under test
    refused = _ask(gateway, before)
    assert refused.status_code == 401, refused.text[:300]
    assert "signing key" in refused.json()["errors"][0]["message"]
    assert _ask(gateway, after).status_code == 200
