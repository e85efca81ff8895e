"""What one upstream call and one source cost Kilde's own layers, without a socket.

    .venv/bin/python -m bench.call_plumbing [--n 2000] [--only proof|sign|call|source|kj]

Prints CPU microseconds (median of five rounds of `--n`) for: a DPoP proof (ES256) and the
signature alone (`PrivateKey.sign`, the part `openssl speed ecdsap256` bounds); one call's
credentials (`Credentials.to` + `UpstreamAuth.send` with a cached token and its proof, the
send itself answering at once); one source's plumbing (the fetch stage's `Budget` and
request, `fetch_one`, `ResilientConnector`, a connector answering at once); and one
Kjernejournal fetch (/status and four searches through the request helper, to an HTTP client
answering at once). `--only` runs one of them `--n` times and prints nothing, for callgrind:
the difference of the instruction counts of two `--n` is that many iterations.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from connectors.base import ConnectorSettings, FetchRequest, Requester, SourceResult
from connectors.credentials import (
    Audience,
    HelseIdClient,
    IssuedToken,
    TokenProvider,
    dpop_proof,
    generate_key,
)
from connectors.credentials.provider import _Entry
from connectors.deadline import Budget
from connectors.fanout import fetch_one
from connectors.kjernejournal.connector import KjernejournalConnector
from connectors.model import Category, Status
from connectors.resilience import ResilienceSettings, ResilientConnector

NIN = "14033841389"
URL = "http://127.0.0.1:8765/kjernejournal/AllergyIntolerance"
KJ = Audience("nhn:kjernejournal", "nhn:kjernejournal/api")
CALLER = "caller-token"
STATUS = orjson.dumps({"requesterBlocked": False, "privacySettings": {}})
EMPTY = orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []})
REQUEST = FetchRequest(NIN, frozenset({Category.CRITICAL_INFORMATION,
                                       Category.TREATMENT_LIMITATIONS}),
                       requester=Requester(hpr_number="9144902", role_code="LE"),
                       request_id="bench-1")


class _Answer:
    status = 200
    status_code = 200
    headers: Mapping[str, str] = {}

    def __init__(self, content: bytes = b"") -> None:
        self.content = content


class _Http:
    """What the request helper needs of an httpx client, answering at once."""

    event_hooks: Mapping[str, list[Any]] = {"request": [], "response": []}

    async def request(self, method: str, url: str, **_: Any) -> _Answer:
        return _Answer(STATUS if url.endswith("/status") else EMPTY)


class _Instant:
    name = "instant"
    categories = frozenset({Category.MEDICATIONS})

    async def fetch(self, request: FetchRequest) -> SourceResult:
        return SourceResult(self.name, Status.EMPTY)

    async def aclose(self) -> None: ...


def _provider() -> TokenProvider:
    """A provider holding a DPoP-bound token for KJ (user and machine): no HelseID call."""
    key = generate_key()
    provider = TokenProvider(HelseIdClient(_Http(), issuer="https://helseid.bench",  # type: ignore[arg-type]
                                           client_id="kilde", client_key=key, dpop_key=key))
    token = IssuedToken("at-" + "x" * 40, "DPoP", time.time() + 86_400)
    for audience in (KJ, Audience(KJ.resource, KJ.scope, "client_credentials")):
        # the entry a landed token exchange leaves in the provider's cache
        provider._store(provider._key(audience, CALLER, None),
                        _Entry(token, token.expires_at - 30, token.expires_at - 10))
    return provider


async def _pieces() -> dict[str, Callable[[], Awaitable[object] | object]]:
    provider = _provider()
    key = provider.dpop_key
    credentials = provider.for_caller(CALLER)

    async def answered(headers: Mapping[str, str]) -> _Answer:
        return _Answer()

    async def call() -> object:
        auth = credentials.to(KJ)
        assert auth is not None
        return await auth.send("kjernejournal", "GET", URL, answered, timeout=2.0)

    resilient = ResilientConnector(_Instant(), ResilienceSettings())
    kj = ResilientConnector(KjernejournalConnector(ConnectorSettings(
        "kjernejournal", base_url="http://127.0.0.1:8765/kjernejournal", audience=KJ.resource,
        scope=KJ.scope), _Http()), ResilienceSettings())  # type: ignore[arg-type]

    def through(connector: ResilientConnector) -> Callable[[], Awaitable[object]]:
        async def one() -> object:
            budget = Budget(connector.name, 2.0)  # as the fetch stage makes it
            outcome = await fetch_one(connector, budget.request(
                REQUEST, credentials=provider.for_caller(CALLER), timeout=budget.seconds))
            assert outcome.error is None, outcome.error
            return outcome
        return one

    return {
        "proof": lambda: dpop_proof(key, "GET", URL, access_token="t", ath="a" * 43),
        "sign": lambda: key.sign(b"x" * 330),
        "call": call,
        "source": through(resilient),
        "kj": through(kj),
    }


async def _run(fn: Callable[[], Awaitable[object] | object], n: int) -> None:
    for _ in range(n):
        result = fn()
        if asyncio.iscoroutine(result):
            await result


async def main(n: int, only: str | None) -> None:
    pieces = await _pieces()
    if only is not None:
        await _run(pieces[only], n)
        return
    for name, fn in pieces.items():
        await _run(fn, min(n, 200))  # warm
        rounds = []
        for _ in range(5):
            started = time.process_time()
            await _run(fn, n)
            rounds.append((time.process_time() - started) / n * 1e6)
        print(f"{name:8s} {statistics.median(rounds):8.1f} us CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--only", choices=["proof", "sign", "call", "source", "kj"])
    args = parser.parse_args()
    asyncio.run(main(args.n, args.only))
