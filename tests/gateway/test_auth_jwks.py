"""Keys that rotate: discovery from the issuer, a refresh schedule, removed keys refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.auth import Authenticator, AuthError, JwksCache, JwksUnavailableError
from gateway.auth.discovery import discover_jwks_uri
from gateway.auth.jwks import MAX_STALE_SECONDS
from gateway.settings import DEMO_TENANTS, AuthSettings
from tests.gateway.test_auth import NOW, claims, public_jwks, sign

ISSUER = "https://helseid-sts.test.example"
KEYS_AT = "https://keys.test.example/jwks"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Issuer:
    """A fake HelseID: a discovery document and a key set, counting what it is asked."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = public_jwks()
        self.discovery: dict[str, Any] = {"issuer": ISSUER, "jwks_uri": KEYS_AT}
        self.asked: list[str] = []
        self.down = False

    def remove(self, kid: str) -> None:
        self.keys = {"keys": [k for k in self.keys["keys"] if k["kid"] != kid]}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(str(request.url))
        if self.down:
            raise httpx.ConnectError("issuer down")
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        if str(request.url) == self.discovery["jwks_uri"]:
            return httpx.Response(200, json=self.keys)
        return httpx.Response(404)


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
async def http(issuer: Issuer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle)) as client:
        yield client


def cache(http: httpx.AsyncClient, clock: Clock, *, url: str = "", refresh: float = 300.0
          ) -> JwksCache:
    return JwksCache(url, http, issuer=ISSUER, min_refresh_seconds=30, refresh_seconds=refresh,
                     clock=clock)


async def test_the_key_set_is_found_through_discovery(issuer: Issuer,
                                                      http: httpx.AsyncClient) -> None:
    jwks = cache(http, Clock())
    assert (await jwks.key("rsa-1")).key_id == "rsa-1"
    assert issuer.asked == [f"{ISSUER}/.well-known/openid-configuration", KEYS_AT]


async def test_a_configured_jwks_url_skips_discovery(issuer: Issuer,
                                                     http: httpx.AsyncClient) -> None:
    jwks = cache(http, Clock(), url=KEYS_AT)
    await jwks.key("rsa-1")
    assert issuer.asked == [KEYS_AT]


@pytest.mark.parametrize(
    ("document", "what"),
    [
        pytest.param({"issuer": "https://evil.example", "jwks_uri": KEYS_AT}, "another issuer",
                     id="other-issuer"),
        pytest.param({"issuer": ISSUER}, "no usable jwks_uri", id="no-jwks-uri"),
        pytest.param({"issuer": ISSUER, "jwks_uri": "file:///etc/keys"}, "no usable jwks_uri",
                     id="not-http"),
        pytest.param([1, 2], "another issuer", id="not-an-object"),
    ],
)
async def test_a_discovery_document_that_does_not_fit_is_refused(
        issuer: Issuer, http: httpx.AsyncClient, document: Any, what: str) -> None:
    issuer.discovery = document
    with pytest.raises(JwksUnavailableError, match=what):
        await discover_jwks_uri(ISSUER, http, timeout=1.0)


async def test_a_removed_key_is_refused_after_the_next_scheduled_refresh(
        issuer: Issuer, http: httpx.AsyncClient) -> None:
    clock = Clock()
    jwks = cache(http, clock, refresh=60)
    await jwks.key("rsa-1")
    issuer.remove("rsa-1")
    clock.now += 59  # the keys are still current: no fetch, the old key still works
    assert (await jwks.key("rsa-1")).key_id == "rsa-1"
    clock.now += 1  # the refresh is due: the issuer no longer has the key
    with pytest.raises(AuthError, match="not known to the issuer"):
        await jwks.key("rsa-1")
    assert (await jwks.key("ec-1")).key_id == "ec-1"  # the remaining key still works


async def test_discovery_is_asked_again_at_each_refresh_and_followed(
        issuer: Issuer, http: httpx.AsyncClient) -> None:
    clock = Clock()
    jwks = cache(http, clock, refresh=60)
    await jwks.key("rsa-1")
    issuer.discovery = {"issuer": ISSUER, "jwks_uri": "https://keys.test.example/v2"}
    issuer.keys = {"keys": [{**public_jwks()["keys"][1], "kid": "ec-2"}]}
    clock.now += 60
    assert (await jwks.key("ec-2")).key_id == "ec-2"
    assert issuer.asked[-1] == "https://keys.test.example/v2"
    assert jwks.discoveries == 2


async def test_an_unreachable_issuer_keeps_the_keys_for_a_bounded_time(
        issuer: Issuer, http: httpx.AsyncClient) -> None:
    clock = Clock()
    jwks = cache(http, clock, refresh=60)
    await jwks.key("rsa-1")
    issuer.down = True
    clock.now += 61
    assert (await jwks.key("rsa-1")).key_id == "rsa-1"  # a hiccup is not an outage
    asked = len(issuer.asked)
    clock.now += 10  # inside the minimum interval after a failure: the issuer is not asked
    await jwks.key("rsa-1")
    assert len(issuer.asked) == asked
    clock.now = 1000.0 + 60 + MAX_STALE_SECONDS
    with pytest.raises(JwksUnavailableError):
        await jwks.key("rsa-1")
    issuer.down = False
    clock.now += 30
    assert (await jwks.key("rsa-1")).key_id == "rsa-1"  # back as soon as the issuer is


async def test_a_token_verified_before_its_key_was_removed_is_refused_too(
        issuer: Issuer, http: httpx.AsyncClient) -> None:
    settings = AuthSettings(issuer=ISSUER, audience="kilde", jwks_url="", dpop="allowed",
                            jwks_refresh_seconds=60)
    auth = Authenticator(settings, http, DEMO_TENANTS, clock=lambda: NOW)
    clock = Clock()
    auth.jwks = cache(http, clock, refresh=60)
    token = "Bearer " + sign(claims(**{"iss": ISSUER}))
    assert (await auth.authenticate(token)).hpr_number == "9144901"
    issuer.remove("rsa-1")
    clock.now += 60
    with pytest.raises(AuthError, match="not known to the issuer"):
        await auth.authenticate(token)


def test_the_refresh_settings_are_checked_at_start() -> None:
    from gateway.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="JWKS_REFRESH_SECONDS"):
        Settings.from_env({"KILDE_MODE": "demo", "KILDE_AUTH__JWKS_REFRESH_SECONDS": "0"})
    with pytest.raises(SettingsError, match="MIN_REFRESH_SECONDS must not exceed"):
        Settings.from_env({"KILDE_MODE": "demo", "KILDE_AUTH__JWKS_REFRESH_SECONDS": "10",
                           "KILDE_AUTH__JWKS_MIN_REFRESH_SECONDS": "30"})
