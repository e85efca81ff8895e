"""The whole gateway in-process over httpx.ASGITransport, with the sandbox as its upstreams.

`gateway(**changes)` runs the app's real lifespan with settings of the test's choosing (limits,
persisted queries, rate limits, CORS, production mode) and yields a `Harness`: `post`/`get`
talk to /graphql, `upstream_calls()` reads the sandbox's request counters, so a test can show
that a refused query reached no upstream. The sandbox's HelseID simulator is the issuer: the
callers' tokens are its own (signed with the demo key), and the gateway exchanges them there
for each source's token. In production mode Kilde gets fresh keys of its own, registered with
the simulator, since production refuses the sandbox's published ones.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization

from connectors.base import ConnectorSettings
from connectors.credentials import generate_key
from gateway.app import create_app
from gateway.demo import mint_token
from gateway.settings import BUILTIN_CONNECTORS, Settings
from sandbox.app import create_app as create_sandbox
from sandbox.helseid import jwks_url, kilde_settings
from tests.servers import DEADLINE, SOURCE_TIMEOUT

SANDBOX = "http://sandbox.test"
ISSUER = f"{SANDBOX}/helseid"
LEGEVAKT_PATIENT = "14033841389"
LEGEVAKT_QUERY = """query Legevakt($nin: String!) { patient(nin: $nin) {
  alerts { kind title } medications { name } sources { source category status } } }"""


class _Upstreams(httpx.AsyncBaseTransport):
    """The test's own JSON `documents` (URL -> body, e.g. an EPJ's JWKS), and everything else
    to the sandbox app (whose HelseID simulator is the issuer)."""

    def __init__(self, sandbox: Any, documents: Mapping[str, Any] | None = None) -> None:
        self.sandbox = httpx.ASGITransport(sandbox)
        self.documents = dict(documents or {})

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
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
    connectors = {n: ConnectorSettings(n, timeout=SOURCE_TIMEOUT) for n in BUILTIN_CONNECTORS}
    helseid, audiences = kilde_settings(SANDBOX)
    settings = replace(base, connectors=connectors, deadline_seconds=DEADLINE,
                       auth=replace(base.auth, issuer=ISSUER, jwks_url=jwks_url(ISSUER)),
                       audit=replace(base.audit, url=audit_url))
    settings = settings.with_sandbox(SANDBOX).with_helseid(helseid, audiences)
    helseid_settings = replace(settings.helseid, timeout_seconds=SOURCE_TIMEOUT)
    return replace(settings, helseid=helseid_settings, **changes)


def _own_keys(settings: Settings, sandbox: Any, folder: Path) -> Settings:
    """Fresh client and DPoP keys for Kilde, the client key registered with the simulator."""
    client_key, dpop_key = generate_key(), generate_key()
    paths = {}
    for name, key in (("client_key", client_key), ("dpop_key", dpop_key)):
        path = folder / f"{name}.pem"
        path.write_bytes(key.key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        paths[name] = str(path)
    registered = sandbox.state.helseid.clients["kilde"]
    registered.keys = [dict(client_key.public_jwk)]
    return replace(settings, helseid=replace(settings.helseid, **paths))


@contextlib.asynccontextmanager
async def gateway(settings: Settings | None = None, tracer_provider: Any = None,
                  documents: Mapping[str, Any] | None = None,
                  **changes: Any) -> AsyncIterator[Harness]:
    """The gateway app with its lifespan running, and clients for it and its sandbox;
    `documents` are JSON bodies served at the given upstream URLs."""
    settings = settings or settings_for(**changes)
    sandbox = create_sandbox({})
    with tempfile.TemporaryDirectory() as folder:
        if settings.production:
            settings = _own_keys(settings, sandbox, Path(folder))
        app = create_app(settings, transport=_Upstreams(sandbox, documents),
                         tracer_provider=tracer_provider)
        async with _running(app, sandbox, settings) as harness:
            yield harness


@contextlib.asynccontextmanager
async def _running(app: Any, sandbox: Any, settings: Settings) -> AsyncIterator[Harness]:
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
