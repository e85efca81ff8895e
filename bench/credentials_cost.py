"""What Kilde's outbound HelseID credentials cost per request, measured piece by piece.

    .venv/bin/python -m bench.credentials_cost [--n 2000] [--queries 300]

Prints the CPU time of one DPoP proof (ES256, what every upstream call signs), a cached token
lookup (what every upstream call after the first does), the headers for one call (lookup +
proof), one client assertion (RS256, one per token request), and one token exchange against
the sandbox's HelseID simulator in this process (ASGI, no network: the simulator's checks and
signing included), then the amortised per-query cost for the legevakt query (five sources,
about seven upstream calls) with one exchange per source per token lifetime. Last, the whole
legevakt query over loopback through two gateways in this process against one sandbox (token
guards off, so the upstream work is the same): one with HelseID credentials, one without,
queried in turn by one caller; the difference of their medians is what the credentials add.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def compare_end_to_end(queries: int) -> tuple[float, float]:
    """Median ms of the legevakt query with and without upstream credentials (see above)."""
    from dataclasses import replace

    from gateway.demo import mint_token
    from gateway.settings import HelseIdSettings
    from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

    nin = "14033841389"
    body = {"query": "query($nin: String!) { patient(nin: $nin) { alerts { title } "
                     "medications { name } sources { source status } } }",
            "variables": {"nin": nin}}
    with contextlib.ExitStack() as stack:
        sandbox = stack.enter_context(running(create_sandbox(
            {"KILDE_SANDBOX__REQUIRE_TOKENS": "false"})))
        urls, tokens = [], []
        for credentials in (True, False):
            sock = listening_socket()
            settings = e2e_settings(port_of(sock), sandbox.url, "sqlite:///:memory:",
                                    source_timeout=5.0)
            if not credentials:
                settings = replace(settings, helseid=HelseIdSettings())
            urls.append(stack.enter_context(running(demo_app(settings), sock)).url)
            tokens.append(mint_token("legevakt-lege", nin, issuer=settings.auth.issuer,
                                     audience=settings.auth.audience))
        timings: list[list[float]] = [[], []]
        with httpx.Client(timeout=10) as http:
            for i in range(queries + 10):
                for which in (0, 1) if i % 2 else (1, 0):
                    started = time.perf_counter()
                    r = http.post(f"{urls[which]}/graphql", json=body,
                                  headers={"authorization": f"Bearer {tokens[which]}"})
                    elapsed = time.perf_counter() - started
                    assert r.status_code == 200, r.text[:200]
                    assert "errors" not in r.json(), r.text[:200]
                    if i >= 10:  # the first exchanges and connections are the warm-up
                        timings[which].append(elapsed * 1000)
    return statistics.median(timings[0]), statistics.median(timings[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="calls per round (5 rounds)")
    parser.add_argument("--lifetime", type=float, default=300.0,
                        help="upstream token lifetime in s (HelseID's is usually longer)")
    parser.add_argument("--queries-per-minute", type=float, default=2.0,
                        help="one caller's legevakt queries per minute, for amortising")
    parser.add_argument("--queries", type=int, default=300,
                        help="end-to-end queries per gateway (0: skip that part)")
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
    if args.queries:
        with_credentials, without = compare_end_to_end(args.queries)
        print(f"legevakt query over loopback, median of {args.queries}: {with_credentials:.2f} "
              f"ms with credentials, {without:.2f} ms without "
              f"(+{with_credentials - without:.2f} ms)")


if __name__ == "__main__":
    main()
