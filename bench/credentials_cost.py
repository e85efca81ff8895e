"""What Kilde's outbound HelseID credentials cost per request, measured piece by piece.

    .venv/bin/python -m bench.credentials_cost [--n 2000]

Prints the CPU time of one DPoP proof (ES256, what every upstream call signs), a cached token
lookup (what every upstream call after the first does), the headers for one call (lookup +
proof), one client assertion (RS256, one per token request), and one token exchange against
the sandbox's HelseID simulator in this process (ASGI, no network: the simulator's checks and
signing included), then the amortised per-query cost for the legevakt query (five sources,
about seven upstream calls) with one exchange per source per token lifetime.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from connectors.credentials import (
    Audience,
    HelseIdClient,
    TokenProvider,
    dpop_proof,
    load_private_key,
)
from sandbox.app import create_app as create_sandbox
from sandbox.helseid import RESOURCES, key_file

BASE = "http://sandbox"
CALLS_PER_QUERY = 7  # the legevakt query: municipal 1, KJ 3-4, PLL 1, e-resept 1, prøvesvar 1
SOURCES_PER_QUERY = 5


def _per_call(fn: Callable[[], object], n: int) -> float:
    """Median microseconds of `fn` over five rounds of `n` calls."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(rounds)


async def _per_call_async(fn: Callable[[], Awaitable[object]], n: int) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            await fn()
        rounds.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(rounds)


async def measure(n: int) -> dict[str, float]:
    app = create_sandbox({})
    dpop_key = load_private_key(key_file("kilde-dpop.json"))
    client_key = load_private_key(key_file("kilde-client.json"))
    kj = Audience(*RESOURCES["kjernejournal"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        client = HelseIdClient(http, issuer=f"{BASE}/helseid", client_id="kilde",
                               client_key=client_key, dpop_key=dpop_key)
        provider = TokenProvider(client)
        caller = app.state.helseid.persona_token("legevakt-lege", "14033841389",
                                                 issuer=f"{BASE}/helseid")
        auth = provider.for_caller(caller).to(kj)
        assert auth is not None
        await provider.token(kj, caller, source="kjernejournal", timeout=5)  # warm
        url = f"{BASE}/kjernejournal/Condition"
        figures = {
            "dpop_proof_us": _per_call(lambda: dpop_proof(dpop_key, "GET", url,
                                                          access_token=caller), n),
            "client_assertion_us": _per_call(client.client_assertion, max(1, n // 10)),
            "cached_token_us": await _per_call_async(
                lambda: provider.token(kj, caller, source="kjernejournal", timeout=5), n),
            "call_headers_us": await _per_call_async(
                lambda: auth.headers("kjernejournal", "GET", url, timeout=5), n),
        }
        exchanges = max(1, n // 50)

        async def exchange() -> object:
            return await client.exchange(caller, resource=kj.resource, scope=kj.scope)

        figures["token_exchange_us"] = await _per_call_async(exchange, exchanges)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="calls per round (5 rounds)")
    parser.add_argument("--lifetime", type=float, default=300.0,
                        help="upstream token lifetime in s (HelseID's is usually longer)")
    parser.add_argument("--queries-per-minute", type=float, default=2.0,
                        help="one caller's legevakt queries per minute, for amortising")
    args = parser.parse_args()
    f = asyncio.run(measure(args.n))
    for name, value in f.items():
        print(f"{name:24s} {value:9.1f} µs")
    per_query_calls = CALLS_PER_QUERY * f["call_headers_us"]
    queries_per_token = max(1.0, args.queries_per_minute * args.lifetime / 60)
    exchange_share = SOURCES_PER_QUERY * f["token_exchange_us"] / queries_per_token
    print(f"per legevakt query: {per_query_calls:.0f} µs for {CALLS_PER_QUERY} calls' headers "
          f"+ {exchange_share:.0f} µs exchange share ({SOURCES_PER_QUERY} exchanges per "
          f"{queries_per_token:.0f} queries of one caller) = "
          f"{per_query_calls + exchange_share:.0f} µs CPU")


if __name__ == "__main__":
    main()
