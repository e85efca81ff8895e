"""The whole gateway in-process over httpx.ASGITransport, with the sandbox as its upstreams.

`gateway(**changes)` runs the app's real lifespan with settings of the test's choosing (limits,
persisted queries, rate limits, CORS, production mode) and yields a `Harness`: `post`/`get`
talk to /graphql, `upstream_calls()` reads the sandbox's request counters, so a test can show
that a refused query reached no upstream. Tokens are signed with the demo key and served from
an issuer JWKS that is not the demo route, so production mode works too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx

from connectors.base import ConnectorSettings
from gateway.app import create_app
from gateway.demo import demo_jwks, mint_token
from gateway.settings import BUILTIN_CONNECTORS, Settings
from sandbox.app import create_app as create_sandbox

ISSUER = "http://idp.test/helseid"
JWKS_URL = "http://idp.test/jwks.json"
SANDBOX = "http://sandbox.test"
LEGEVAKT_PATIENT = "14033841389"
LEGEVAKT_QUERY = """query Legevakt($nin: String!) { patient(nin: $nin) {
  alerts { kind title } medications { name } sources { source category status } } }"""


class _Upstreams(httpx.AsyncBaseTransport):
    """The issuer's JWKS, the test's own JSON `documents` (URL -> body, e.g. an EPJ's JWKS),
    and everything else to the sandbox app."""

    def __init__(self, sandbox: Any, documents: Mapping[str, Any] | None = None) -> None:
        self.sandbox = httpx.ASGITransport(sandbox)
        self.documents = dict(documents or {})

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == JWKS_URL:
            return httpx.Response(200, json=demo_jwks())
        if str(request.url) in self.documents:
            return httpx.Response(200, json=self.documents[str(request.url)])
        return await self.sandbox.handle_async_request(request)


@dataclass
class Harness:
    client: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    settings: Settings
    state: Any = None  # the app's lifespan State (gateway/app.py): store, endpoint, metrics

    def token(self, persona: str = "legevakt-lege", patient: str | None = LEGEVAKT_PATIENT,
              **kw: Any) -> str:
        return mint_token(persona, patient, issuer=ISSUER, audience=self.settings.auth.audience,
                          **kw)

    def auth(self, persona: str = "legevakt-lege",
             patient: str | None = LEGEVAKT_PATIENT) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(persona, patient)}"}

    async def post(self, body: Any, headers: dict[str, str] | None = None,
                   token: bool = True, **kw: Any) -> httpx.Response:
        all_headers = {**(self.auth() if token else {}), **(headers or {})}
        return await self.client.post("/graphql", json=body, headers=all_headers, **kw)

    async def get(self, params: dict[str, str], headers: dict[str, str] | None = None,
                  token: bool = True) -> httpx.Response:
        all_headers = {**(self.auth() if token else {}), **(headers or {})}
        return await self.client.get("/graphql", params=params, headers=all_headers)

    async def upstream_calls(self) -> int:
        counts = (await self.sandbox.get("/_sandbox/requests")).json()
        return sum(_total(v) for v in counts.values())


def _total(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_total(v) for v in value.values())
    return int(value) if isinstance(value, int | float) else 0


def settings_for(audit_url: str = "sqlite:///:memory:", **changes: Any) -> Settings:
    """Demo settings pointed at the in-process sandbox and test issuer, with `changes`."""
    base = Settings.from_env({"KILDE_MODE": "demo"})
    connectors = {n: ConnectorSettings(n, timeout=1.0) for n in BUILTIN_CONNECTORS}
    settings = replace(base, connectors=connectors,
                       auth=replace(base.auth, issuer=ISSUER, jwks_url=JWKS_URL),
                       audit=replace(base.audit, url=audit_url)).with_sandbox(SANDBOX)
    return replace(settings, **changes)


@contextlib.asynccontextmanager
async def gateway(settings: Settings | None = None, tracer_provider: Any = None,
                  documents: Mapping[str, Any] | None = None,
                  **changes: Any) -> AsyncIterator[Harness]:
    """The gateway app with its lifespan running, and clients for it and its sandbox;
    `documents` are JSON bodies served at the given upstream URLs."""
    settings = settings or settings_for(**changes)
    sandbox = create_sandbox({})
    app = create_app(settings, transport=_Upstreams(sandbox, documents),
                     tracer_provider=tracer_provider)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        async with httpx.AsyncClient(transport=httpx.ASGITransport(with_state),
                                     base_url="http://kilde.test") as client, \
                httpx.AsyncClient(transport=httpx.ASGITransport(sandbox),
                                  base_url=SANDBOX) as upstream:
            await upstream.delete("/_sandbox/requests")
            yield Harness(client, upstream, settings, (state or {}).get("kilde"))
