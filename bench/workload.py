"""The benchmark's workload: the legevakt query, a bench token issuer, and the upstream plan.

Sits under every benchmark in `bench/`. `QUERY` is the full legevakt summary (README.md, "The legevakt query").
`BenchIssuer` makes the bench sandbox's HelseID simulator fit for a production-mode gateway:
a fresh signing key (never the demo key, which production refuses), Kilde registered with
fresh keys of its own, and tokens with the demo personas' claims.
`record_plan()` runs the query once through an in-process Kilde with a recording transport and
returns the upstream calls Kilde made, so the floor and the Yoga peer make the *same* calls
(method, URL, headers, body), with the patient's number as a placeholder.

>>> plan_source("http://127.0.0.1:9/kjernejournal/status", "http://127.0.0.1:9")
('kjernejournal', 'status')
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization

from connectors.credentials import generate_key
from gateway.demo import DEMO_KID
from sandbox.helseid import RESOURCES
from sandbox.world import by_tag

QUERY = """query Legevakt($nin: String!) { patient(nin: $nin) {
  alerts { kind priority title provenance { source } }
  treatmentLimitations { code { code display } description provenance { source recordId } }
  criticalInformation { type description severity provenance { source } }
  medications { name status dosage { text } conflicts provenances { source recordId } }
  labResults { code { display } issuedAt results { code { code } value unit abnormal } }
  municipalServices { code { code display } status unit phone provenance { source } }
  conditions { code { system code display } clinicalStatus }
  documents { title date }
  sources { source category status latencyMs }
} }"""

PERSONA = "legevakt-lege"
AUDIENCE = "kilde"
NIN_PLACEHOLDER = "@@NIN@@"
# Headers a client library sets on its own; everything else Kilde sent is replayed.
_TRANSPORT_HEADERS = frozenset({"host", "content-length", "accept-encoding", "connection",
                                "user-agent", "traceparent", "tracestate"})
# Kilde's credentials (its upstream token and proof) are never replayed nor written to a plan
# file; the peers call a sandbox whose token guards are off (bench.harness.sandbox_env).
_CREDENTIAL_HEADERS = frozenset({"authorization", "dpop"})


def patient_nin() -> str:
    """The multi-service patient: the fullest summary in the sandbox (every source answers)."""
    return by_tag("multi-service").nin


def request_body(nin: str) -> bytes:
    return json.dumps({"query": QUERY, "variables": {"nin": nin},
                       "operationName": "Legevakt"}).encode()


class BenchIssuer:
    """The bench sandbox's HelseID simulator, made fit for a production-mode gateway: it signs
    with a fresh key (the public demo key is unpublished), and Kilde is registered as client
    `kilde` with fresh keys of its own, written to `folder` (production refuses the sandbox's
    published ones). Tokens carry the demo personas' claims.

    >>> issuer = BenchIssuer("http://127.0.0.1:8001", Path("/tmp/keys"))  # doctest: +SKIP
    >>> issuer.prepare(); token = issuer.token(patient_nin())              # doctest: +SKIP
    """

    def __init__(self, sandbox: str, folder: Path) -> None:
        self.sandbox = sandbox.rstrip("/")
        self.issuer = f"{self.sandbox}/helseid"
        self.folder = folder
        self.client_key = folder / "client.pem"
        self.dpop_key = folder / "dpop.pem"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration/jwks"

    def prepare(self) -> None:
        """Rotate the simulator to a fresh key, drop the demo key, register Kilde's keys."""
        control = f"{self.sandbox}/_sandbox/helseid"
        httpx.post(f"{control}/keys", timeout=10).raise_for_status()
        httpx.delete(f"{control}/keys/{DEMO_KID}", timeout=10).raise_for_status()
        client, dpop = generate_key(), generate_key()
        for key, path in ((client, self.client_key), (dpop, self.dpop_key)):
            path.write_bytes(key.key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        registered = {c["client_id"]: c for c in
                      httpx.get(f"{control}/clients", timeout=10).json()}["kilde"]
        registered["jwks"] = client.public_jwks()
        httpx.put(f"{control}/clients/kilde", json=registered, timeout=10).raise_for_status()

    def environment(self) -> dict[str, str]:
        """`KILDE_*` for a gateway that trusts this issuer and is its client `kilde`."""
        env = {"KILDE_AUTH__ISSUER": self.issuer, "KILDE_AUTH__AUDIENCE": AUDIENCE,
               "KILDE_AUTH__JWKS_URL": self.jwks_url,
               "KILDE_HELSEID__ISSUER": self.issuer, "KILDE_HELSEID__CLIENT_ID": "kilde",
               "KILDE_HELSEID__CLIENT_KEY": str(self.client_key),
               "KILDE_HELSEID__DPOP_KEY": str(self.dpop_key)}
        for source, (resource, scope) in RESOURCES.items():
            env[f"KILDE_CONNECTORS__{source.upper()}__AUDIENCE"] = resource
            env[f"KILDE_CONNECTORS__{source.upper()}__SCOPE"] = scope
        return env

    def token(self, nin: str, persona: str = PERSONA, lifetime: int = 6 * 3600) -> str:
        """`persona`'s token for Kilde (attest bound to `nin`) from the simulator."""
        r = httpx.post(f"{self.sandbox}/_sandbox/helseid/token", json={
            "persona": persona, "patient": nin, "lifetime": lifetime, "audience": AUDIENCE},
            timeout=10)
        r.raise_for_status()
        token: str = r.json()["access_token"]
        return token


# -- the upstream plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One upstream request Kilde made. `stage`: how many of the same source's answers Kilde
    waited for before sending it, one after another: 0 is sent at once; a search by the
    reference an earlier lookup found, or a `next` page (Kilde follows them one by one), comes
    after the answer it needs. The peers send each stage once the one before it answered."""

    source: str
    kind: str
    method: str
    url: str
    headers: dict[str, str]
    body: str
    stage: int = 0


def plan_source(url: str, sandbox: str) -> tuple[str, str]:
    """(source, kind) of an upstream URL under the sandbox: `/kjernejournal/status` ->
    ('kjernejournal', 'status'); a municipal store -> ('municipal', its number)."""
    path = url[len(sandbox):].split("?", 1)[0].strip("/").split("/")
    source = path[0]
    if source == "municipal":
        return source, path[1] if len(path) > 1 else ""
    return source, path[-1] if len(path) > 1 else ""


class _Recorder(httpx.AsyncBaseTransport):
    """Records each call with its stage, read off the order of events: a call's stage is one
    more than the highest stage among its source's calls answered before it was sent (the
    sandbox answers after 20 ms, so calls sent at once are never mistaken for dependent ones).
    It was the `_skip` of a form body, which marked Pasientens prøvesvar's pages only: a
    municipal store's search by reference and its `next` pages went out at once in the peers."""

    def __init__(self, sandbox: str) -> None:
        self.sandbox = sandbox
        self.inner = httpx.AsyncHTTPTransport()
        self.calls: list[Call] = []
        self._answered: dict[str, list[int]] = {}  # per source: stages of answered calls

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        # A municipal store's CapabilityStatement is fetched once per store and kept: it is
        # not part of a request's upstream plan.
        if url.startswith(self.sandbox) and not request.url.path.endswith("/metadata") \
                and not url.startswith(f"{self.sandbox}/helseid"):
            body = request.content.decode()
            source, kind = plan_source(url, self.sandbox)
            headers = {k.lower(): v for k, v in request.headers.items()
                       if k.lower() not in _TRANSPORT_HEADERS | _CREDENTIAL_HEADERS}
            answered = self._answered.setdefault(source, [])
            stage = max(answered) + 1 if answered else 0
            self.calls.append(Call(source, kind, request.method, url, headers, body, stage))
            response = await self.inner.handle_async_request(request)
            answered.append(stage)
            return response
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def record_plan(env: Mapping[str, str], sandbox: str, token: str, nin: str) -> list[Call]:
    """The upstream calls Kilde makes for one legevakt query with `env`'s configuration.

    Runs the gateway in this process (SQLite audit in a temporary directory, cache off) with a
    transport that records every request to the sandbox, then templates the patient's number.
    """
    from gateway.app import create_app
    from gateway.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({
            **{k: v for k, v in env.items()
               if not k.startswith("KILDE_CACHE__") and k != "KILDE_PORT"},  # in-process
            "KILDE_AUDIT__URL": f"sqlite:///{tmp}/plan-audit.sqlite3",
            "KILDE_CACHE__ENABLED": "false", "KILDE_WORKERS": "1",
        })
        recorder = _Recorder(sandbox)
        app = create_app(settings, transport=recorder)
        response = asyncio.run(_ask(app, token, nin))
        if response.status_code != 200 or '"errors"' in response.text:
            raise RuntimeError(f"Kilde did not answer the plan query cleanly "
                               f"(HTTP {response.status_code}): {response.text[:300]}")
    return [_template(c, nin) for c in recorder.calls]


async def _ask(app: Any, token: str, nin: str) -> httpx.Response:
    """One query through `app` in this process, its lifespan state handed to the request."""
    async with app.router.lifespan_context(app) as state:
        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://kilde") as client:
            return await client.post("/graphql", content=request_body(nin), headers={
                "authorization": f"Bearer {token}", "content-type": "application/json",
                "cache-control": "no-cache"})


def _template(call: Call, nin: str) -> Call:
    def sub(text: str) -> str:
        return text.replace(nin, NIN_PLACEHOLDER)

    return Call(call.source, call.kind, call.method, sub(call.url),
                {k: sub(v) for k, v in call.headers.items()}, sub(call.body), call.stage)


def write_plan(calls: list[Call], path: str) -> None:
    with open(path, "w") as out:
        json.dump({"placeholder": NIN_PLACEHOLDER, "recorded": time.time(),
                   "calls": [asdict(c) for c in calls]}, out, indent=1)
