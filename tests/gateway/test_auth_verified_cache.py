"""Verified tokens are remembered by hash until they expire, and not a second longer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.auth import Authenticator, AuthError
from gateway.auth import tokens as token_module
from gateway.demo import demo_jwks, mint_token
from gateway.settings import DEMO_TENANTS, AuthSettings

DEMO = AuthSettings(issuer="http://kilde-demo/helseid", audience="kilde", dpop="allowed",
                    jwks_url="http://kilde-demo/jwks")
PATIENT = "14033841389"
NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(
            lambda r: httpx.Response(200, json=demo_jwks()))) as http:
        yield http


async def test_the_same_token_is_verified_once(client: httpx.AsyncClient,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = token_module.validate

    async def counting(*args: object, **kwargs: object) -> dict[str, object]:
        nonlocal calls
        calls += 1
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("gateway.auth.authenticator.validate", counting)
    auth = Authenticator(DEMO, client, DEMO_TENANTS, clock=Clock())
    token = mint_token("legevakt-lege", PATIENT, issuer=DEMO.issuer, audience=DEMO.audience,
                       now=NOW)
    first = await auth.authenticate(f"Bearer {token}")
    second = await auth.authenticate(f"Bearer {token}")
    assert first == second
    assert calls == 1
    assert token.encode() not in repr(auth._verified).encode()


async def test_a_remembered_token_still_expires(client: httpx.AsyncClient) -> None:
    clock = Clock()
    auth = Authenticator(DEMO, client, DEMO_TENANTS, clock=clock)
    token = mint_token("legevakt-lege", PATIENT, issuer=DEMO.issuer, audience=DEMO.audience,
                       now=NOW, lifetime=60)
    await auth.authenticate(f"Bearer {token}")
    clock.now = NOW + 60 + DEMO.leeway_seconds + 1
    with pytest.raises(AuthError, match="expired"):
        await auth.authenticate(f"Bearer {token}")


async def test_a_tampered_copy_of_a_remembered_token_is_still_rejected(
        client: httpx.AsyncClient) -> None:
    auth = Authenticator(DEMO, client, DEMO_TENANTS, clock=Clock())
    token = mint_token("legevakt-lege", PATIENT, issuer=DEMO.issuer, audience=DEMO.audience,
                       now=NOW)
    await auth.authenticate(f"Bearer {token}")
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    with pytest.raises(AuthError):
        await auth.authenticate(f"Bearer {forged}")
