"""Benchmark: cache hits vs misses for the legevakt query, and single flight under a burst.

Run: `python -m bench.cache_bench [--seconds 5] [--latency-ms 20] [--concurrency 1,32]
[--burst 50] [--redis-url redis://127.0.0.1:6379/9] [--no-record]`. Uses `bench.systems`:
the sandbox at fixed upstream latency, `kilde serve` in production mode (auth, policy and audit
on for every request, hits included) once per configuration - cache off (every request goes
upstream: the miss path), memory cache, Redis cache - and wrk (or aiohttp) for load. Before the
timed runs each configuration gets a burst of identical *cold* legevakt queries at once; the
sandbox's `/_sandbox/requests` counts what reached the upstreams. Appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
from collections.abc import Mapping

import aiohttp
import httpx

from bench.compare import commit, machine
from bench.harness import ROOT, Run, load
from bench.systems import DEFAULT_REDIS, audit_store, bench_context, start_kilde


async def _burst(url: str, body: bytes, headers: Mapping[str, str], n: int) -> int:
    """`n` identical queries at once; how many answered with data and no errors."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n)) as session:
        async def one() -> bool:
            async with session.post(url, data=body, headers=dict(headers)) as resp:
                payload = await resp.read()
                return resp.status == 200 and b'"errors"' not in payload
        return sum(await asyncio.gather(*(one() for _ in range(n))))


def _counts(sandbox: str) -> dict[str, int]:
    return httpx.get(f"{sandbox}/_sandbox/requests", timeout=5).json()  # type: ignore[no-any-return]


def table(rows: list[tuple[str, list[Run], dict[str, int], int, float]], burst: int) -> str:
    out = ["| configuration | concurrency | req/s | p50 ms | p99 ms | errors | upstream calls "
           "per request |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, runs, _, _, _ in rows:
        for r in runs:
            out.append(f"| {name} | {r.concurrency} | {r.throughput:.0f} | {r.p50_ms:.1f} | "
                       f"{r.p99_ms:.1f} | {r.errors} | {r.upstream_per_request:.2f} |")
    out += ["", f"A burst of {burst} identical cold legevakt queries sent at once (upstream "
            "requests counted by the sandbox):", "",
            "| configuration | answered | municipal | kjernejournal | pll | eresept | proevesvar "
            "| total | burst wall ms |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, _, c, ok, wall in rows:
        out.append(f"| {name} | {ok}/{burst} | {c['municipal']} | {c['kjernejournal']} | "
                   f"{c['pll']} | {c['eresept']} | {c['proevesvar']} | {sum(c.values())} | "
                   f"{wall:.0f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="'' skips the Redis run")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    configs = {"cache off (every request a miss)": "", "memory cache (hits)": "memory://"}
    if args.redis_url:
        configs["Redis cache (hits)"] = args.redis_url
    rows = []
    with bench_context(args.latency_ms) as ctx:
        body, warm = ctx.body, ctx.headers(cold=False)
        for name, cache_url in configs.items():
            with audit_store(None, 1) as (audit_url, _), \
                 start_kilde(ctx, audit_url, cache_url=cache_url, cpus=ctx.cores.sut) as kilde:
                httpx.delete(f"{ctx.sandbox}/_sandbox/requests", timeout=5)
                started = time.perf_counter()
                ok = asyncio.run(_burst(kilde.url, body, warm, args.burst))
                wall = (time.perf_counter() - started) * 1000
                counts = _counts(ctx.sandbox)
                runs = []
                for c in levels:
                    before = sum(_counts(ctx.sandbox).values())
                    run = load(kilde.url, body, warm, c, args.seconds, cpus=ctx.cores.driver)
                    run.upstream_per_request = (sum(_counts(ctx.sandbox).values()) - before) / max(
                        1, run.ok + run.errors)
                    runs.append(run)
                rows.append((name, runs, counts, ok, wall))
    result = table(rows, args.burst)
    print(result)
    if not args.no_record:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        redis = f" --redis-url {args.redis_url}" if args.redis_url else " --redis-url ''"
        with open(ROOT / "bench" / "RESULTS.md", "a") as out:
            out.write(f"\n### Cache: hits vs misses, and single flight, {stamp}, commit "
                      f"{commit()}\n\n`python -m bench.cache_bench --seconds {args.seconds:g} "
                      f"--latency-ms {args.latency_ms:g} --concurrency {args.concurrency} "
                      f"--burst {args.burst}{redis}` (production mode, SQLite audit, 1 gateway "
                      f"worker, every source {args.latency_ms:g} ms; {ctx.cores.describe()}; "
                      f"{machine()})\n\n{result}\n")
    return 0 if all(r.errors == 0 for _, runs, _, _, _ in rows for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
