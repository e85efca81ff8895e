"""Benchmark: which HTTP client keeps a five-source fan-out from being the bottleneck.

Run: `python -m bench.http_clients [--seconds 5] [--concurrency 32]`. Starts the sandbox with
20 ms latency in its own process, then for each client runs `concurrency` workers that each do
five concurrent GETs (one per source) back to back, and prints fan-outs per second. The result
chose the transport in `connectors/http.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from bench.harness import kilde, listening_socket, port_of, process, sandbox_env


async def _loop(one: Callable[[], Awaitable[None]], concurrency: int, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await one()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


async def run(base: str, concurrency: int, seconds: float) -> dict[str, float]:
    urls = [f"{base}/{s}/metadata" for s in ("pll", "eresept", "proevesvar", "kjernejournal",
                                               "municipal")]
    results = {}
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)

    async with httpx.AsyncClient(limits=limits) as client:
        async def fan_httpx() -> None:
            await asyncio.gather(*(client.get(u) for u in urls))
        results["httpx (httpcore)"] = await _loop(fan_httpx, concurrency, seconds)

    transport = AiohttpTransport(limits=limits, trust_env=False)
    async with httpx.AsyncClient(transport=transport, limits=limits) as client:
        async def fan_bridge() -> None:
            await asyncio.gather(*(client.get(u) for u in urls))
        results["httpx on aiohttp transport (Kilde)"] = await _loop(fan_bridge, concurrency,
                                                                    seconds)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        async def fan_aiohttp() -> None:
            async def get(u: str) -> None:
                async with session.get(u) as r:
                    await r.read()
            await asyncio.gather(*(get(u) for u in urls))
        results["aiohttp"] = await _loop(fan_aiohttp, concurrency, seconds)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    sock = listening_socket()
    base = f"http://127.0.0.1:{port_of(sock)}"
    with process(kilde("sandbox", "--fd", str(sock.fileno())), sandbox_env(20),
                 f"{base}/_sandbox/patients", sock=sock):
        results = asyncio.run(run(base, args.concurrency, args.seconds))
    print(f"five-source fan-outs per second at concurrency {args.concurrency} "
          "(20 ms upstream latency):")
    for name, rate in results.items():
        print(f"  {name:38s} {rate:8.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
