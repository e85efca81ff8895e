"""The contract check that a connector calls its upstream with Kilde's HelseID credentials.

Sits in the contract kit beside `checks`. The connector is built with an audience in its
settings (a contract resource, unless the package's settings name one) and asked with the
credentials of a caller, backed by a scripted HelseID; every request its fake upstream then
receives must carry `Authorization: DPoP <the token HelseID issued for that audience>` and a
DPoP proof bound to it (`ath`), and never the caller's own token. A connector that calls
`request_json(..., auth=request.credentials.to(Audience.of(settings)))` passes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from urllib.parse import parse_qs

import httpx
import jwt

from connectors.credentials import (
    HelseIdClient,
    TokenProvider,
    access_token_hash,
    generate_key,
)
from connectors.testing.checks import BASE_URL, ContractSetup, request_for

CONTRACT_RESOURCE = "contract:upstream"
CALLER_TOKEN = "the-callers-own-token"
_ISSUER = "http://helseid.contract"


def _issued(resource: str) -> str:
    return f"kilde-token-for-{resource}"


async def _token_endpoint(request: httpx.Request) -> httpx.Response:
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    return httpx.Response(200, json={"access_token": _issued(form.get("resource", "")),
                                     "token_type": "DPoP", "expires_in": 300})


class _Recording(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[Mapping[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(dict(request.headers))
        return await self.inner.handle_async_request(request)


async def check_upstream_credentials(setup: ContractSetup) -> None:
    """Every upstream request carries the upstream's own DPoP-bound token, never the caller's."""
    settings = setup.settings(BASE_URL)
    if not settings.audience:
        settings = dataclasses.replace(settings, audience=CONTRACT_RESOURCE,
                                       scope=f"{CONTRACT_RESOURCE}/read")
    recording = _Recording(httpx.ASGITransport(app=setup.upstream()))
    helseid_http = httpx.AsyncClient(transport=httpx.MockTransport(_token_endpoint))
    key = generate_key()
    provider = TokenProvider(HelseIdClient(
        helseid_http, issuer=_ISSUER, client_id="kilde", client_key=key, dpop_key=key,
        token_endpoint=f"{_ISSUER}/connect/token"))
    async with httpx.AsyncClient(transport=recording) as http:
        connector = setup.plugin(settings, http)
        try:
            request = dataclasses.replace(request_for(setup, connector),
                                          credentials=provider.for_caller(CALLER_TOKEN))
            await connector.fetch(request)
        finally:
            await connector.aclose()
            await helseid_http.aclose()
    if not recording.seen:
        raise AssertionError(f"Connector {setup.name!r} made no upstream request.")
    expected = f"DPoP {_issued(settings.audience)}"
    for headers in recording.seen:
        if any(CALLER_TOKEN in value for value in headers.values()):
            raise AssertionError(f"Connector {setup.name!r} forwards the caller's token; send "
                                 "the upstream's own (auth=request.credentials.to(audience)).")
        if headers.get("authorization") != expected or "dpop" not in headers:
            raise AssertionError(
                f"Connector {setup.name!r} does not send the upstream's HelseID token and "
                "DPoP proof: pass auth=request.credentials.to(Audience.of(settings)) to "
                "connectors.fhir.request_json.")
        proof = jwt.decode(headers["dpop"], options={"verify_signature": False})
        if proof.get("ath") != access_token_hash(_issued(settings.audience)):
            raise AssertionError(f"Connector {setup.name!r} sends a DPoP proof that is not "
                                 "bound to its token.")
