"""Valid HelseID credentials for a test that calls a sandbox fake directly (not via Kilde).

The fakes refuse a call without a DPoP-bound token for their own resource (`sandbox.guard`).
Give the test's httpx client `auth=sandbox_auth(sandbox_app)`: each request then carries a
token the simulator would have issued for that fake (chosen by the first path segment) and a
fresh DPoP proof for its method and URL.

    app = create_sandbox({})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sandbox", auth=sandbox_auth(app)) as http:
        await http.post("/kjernejournal/status", json={"nin": nin})
    # a sandbox on a loopback port: httpx.get(f"{server.url}/pll/...", auth=sandbox_auth(app))

A connector test against the sandbox gives its FetchRequest
`credentials=caller_credentials(app, http, base_url, persona=..., patient=...)` and its
ConnectorSettings the fake's `audience`/`scope` (`sandbox.helseid.RESOURCES`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx

from connectors.credentials import (
    Credentials,
    HelseIdClient,
    PrivateKey,
    TokenProvider,
    dpop_proof,
    load_private_key,
)
from sandbox.helseid import KILDE_CLIENT_ID, RESOURCES, HelseId, key_file, kilde_settings


class SandboxAuth(httpx.Auth):
    """Signs requests to the sandbox's fakes as Kilde would (see the module docstring)."""

    def __init__(self, helseid: HelseId, *, key: PrivateKey | None = None, root: str = "",
                 lifetime: int = 300) -> None:
        self.helseid = helseid
        self.key = key or load_private_key(key_file("kilde-dpop.json"))
        self.root = root.rstrip("/")  # where the sandbox is mounted ("" on its own server)
        self.lifetime = lifetime

    def token_for(self, source: str, issuer: str) -> str:
        resource, scope = RESOURCES[source]
        return self.helseid.mint({"sub": KILDE_CLIENT_ID, "scope": scope}, issuer=issuer,
                                 audience=resource, client_id=KILDE_CLIENT_ID,
                                 lifetime=self.lifetime, jkt=self.key.thumbprint)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.path[len(self.root):]
        source = path.lstrip("/").split("/", 1)[0]
        if source in RESOURCES:
            origin = f"{request.url.scheme}://{request.url.netloc.decode()}{self.root}"
            token = self.token_for(source, f"{origin}/helseid")
            request.headers["authorization"] = f"DPoP {token}"
            request.headers["dpop"] = dpop_proof(self.key, request.method, str(request.url),
                                                 access_token=token)
        yield request


def sandbox_auth(sandbox: Any, **options: Any) -> SandboxAuth:
    """`SandboxAuth` for a sandbox app (`sandbox.app.create_app`) or its `HelseId`."""
    helseid = sandbox if isinstance(sandbox, HelseId) else sandbox.state.helseid
    return SandboxAuth(helseid, **options)


def kilde_provider(http: httpx.AsyncClient, base_url: str) -> TokenProvider:
    """Kilde as the sandbox's registered client `kilde` (token exchange, client credentials)
    for a sandbox at `base_url` reached through `http`."""
    helseid, _ = kilde_settings(base_url)
    client = HelseIdClient(http, issuer=helseid["issuer"], client_id=helseid["client_id"],
                           client_key=load_private_key(helseid["client_key"]),
                           dpop_key=load_private_key(helseid["dpop_key"]))
    return TokenProvider(client)


def caller_credentials(sandbox: Any, http: httpx.AsyncClient, base_url: str, *,
                       persona: str = "legevakt-lege", patient: str | None = None
                       ) -> Credentials:
    """`FetchRequest.credentials` for a connector test against the sandbox: `persona`'s token
    (from the simulator) exchanged by Kilde, as the gateway does per request."""
    helseid = sandbox if isinstance(sandbox, HelseId) else sandbox.state.helseid
    token = helseid.persona_token(persona, patient, issuer=f"{base_url.rstrip('/')}/helseid")
    return kilde_provider(http, base_url).for_caller(token)
