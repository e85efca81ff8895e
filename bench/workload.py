"""The benchmark's workload: the legevakt query, a bench token issuer, and the upstream plan.

Sits under every benchmark in `bench/`. `QUERY` is DESIGN.md's full legevakt summary.
`BenchIssuer` plays HelseID for a production-mode gateway: its own RSA key (never the demo key,
which production refuses), a JWKS served on loopback, and tokens with the demo personas' claims.
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
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.demo import mint_token
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
ISSUER = "http://kilde-bench/helseid"
AUDIENCE = "kilde"
KID = "kilde-bench-1"
NIN_PLACEHOLDER = "@@NIN@@"
# Headers a client library sets on its own; everything else Kilde sent is replayed.
_TRANSPORT_HEADERS = frozenset({"host", "content-length", "accept-encoding", "connection",
                                "user-agent", "traceparent", "tracestate"})


def patient_nin() -> str:
    """The multi-service patient: the fullest summary in the sandbox (every source answers)."""
    return by_tag("multi-service").nin


def request_body(nin: str) -> bytes:
    return json.dumps({"query": QUERY, "variables": {"nin": nin},
                       "operationName": "Legevakt"}).encode()


class BenchIssuer:
    """A token issuer for production-mode runs: a fresh RSA key per run, served as a JWKS.

    >>> issuer = BenchIssuer()
    >>> issuer.jwks()["keys"][0]["kid"]
    'kilde-bench-1'
    """

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}

    def token(self, nin: str, persona: str = PERSONA, lifetime: int = 6 * 3600) -> str:
        """The demo persona's claims (attest bound to `nin`), issued and signed by this issuer."""
        demo = mint_token(persona, nin, issuer=ISSUER, audience=AUDIENCE, lifetime=lifetime)
        claims = jwt.decode(demo, options={"verify_signature": False})
        return jwt.encode(claims, self._key, algorithm="RS256",
                          headers={"kid": KID, "typ": "at+jwt"})


@contextmanager
def serve_jwks(document: Mapping[str, Any]) -> Iterator[str]:
    """Serve `document` at http://127.0.0.1:PORT/jwks.json from a thread; yields the URL."""
    body = json.dumps(document).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


# -- the upstream plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One upstream request Kilde made. `stage` > 0: a follow-up page, sent only after the
    same source's previous stage answered (Kilde follows `next` links one by one)."""

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


def _stage(body: str) -> int:
    skip = parse_qs(body).get("_skip", ["0"])[0]
    return 1 if skip.isdigit() and int(skip) > 0 else 0


class _Recorder(httpx.AsyncBaseTransport):
    def __init__(self, sandbox: str) -> None:
        self.sandbox = sandbox
        self.inner = httpx.AsyncHTTPTransport()
        self.calls: list[Call] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        # A municipal store's CapabilityStatement is fetched once per store and kept: it is
        # not part of a request's upstream plan.
        if url.startswith(self.sandbox) and not request.url.path.endswith("/metadata"):
            body = request.content.decode()
            source, kind = plan_source(url, self.sandbox)
            headers = {k.lower(): v for k, v in request.headers.items()
                       if k.lower() not in _TRANSPORT_HEADERS}
            self.calls.append(Call(source, kind, request.method, url, headers, body,
                                   _stage(body)))
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
