"""Benchmark: throughput with the gateway's Redis up, hung (SIGSTOP) and gone (killed).

Run: `python -m bench.redis_hang [--seconds 10] [--concurrency 16] [--latency-ms 20]
[--no-record]`. Starts a private `redis-server` (never the shared one), the bench sandbox and
`kilde serve` in production mode with the cache, persisted queries and a per-client rate limit
in that Redis, then drives the legevakt query (warm: cache hits while Redis answers) for the
same time in each state: up, stopped (the kernel still accepts connections, nothing answers:
the hard case), gone (connections refused). The bar from issue #12: stopped stays within 80%
of gone. Appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.compare import commit, machine
from bench.harness import ROOT, Run, load
from bench.systems import audit_store, bench_context, start_kilde


@contextmanager
def private_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    with socket.socket() as s:  # redis-server binds by itself: choose a free port first
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _pong(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the private redis-server did not start")
            time.sleep(0.05)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=10)


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def table(runs: dict[str, Run]) -> str:
    out = ["| Redis | req/s | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|"]
    for state, r in runs.items():
        out.append(f"| {state} | {r.throughput:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | "
                   f"{r.errors} |")
    stopped, gone = runs["stopped (SIGSTOP)"], runs["gone (killed)"]
    ratio = stopped.throughput / gone.throughput if gone.throughput else float("nan")
    out += ["", f"stopped / gone throughput: {ratio:.0%} (the bar: at least 80%)"]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    runs: dict[str, Run] = {}
    with private_redis() as (redis, port), bench_context(args.latency_ms) as ctx, \
            audit_store(None, 1) as (audit_url, _), \
            start_kilde(ctx, audit_url, cache_url=f"redis://127.0.0.1:{port}/0",
                        cpus=ctx.cores.sut, extra_env={
                            "KILDE_RATE_LIMIT__REQUESTS": "1000000",
                            "KILDE_RATE_LIMIT__WINDOW_SECONDS": "60"}) as kilde:
        body, warm = ctx.body, ctx.headers(cold=False)
        load(kilde.url, body, warm, args.concurrency, 2, cpus=ctx.cores.driver)  # warm up
        runs["up"] = load(kilde.url, body, warm, args.concurrency, args.seconds,
                          cpus=ctx.cores.driver)
        redis.send_signal(signal.SIGSTOP)
        runs["stopped (SIGSTOP)"] = load(kilde.url, body, warm, args.concurrency,
                                         args.seconds, cpus=ctx.cores.driver)
        redis.send_signal(signal.SIGCONT)
        redis.kill()
        redis.wait(timeout=10)
        runs["gone (killed)"] = load(kilde.url, body, warm, args.concurrency, args.seconds,
                                     cpus=ctx.cores.driver)
    result = table(runs)
    print(result)
    if not args.no_record:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        with open(ROOT / "bench" / "RESULTS.md", "a") as out:
            out.write(f"\n### Redis up, hung, gone, {stamp}, commit {commit()}\n\n"
                      f"`python -m bench.redis_hang --seconds {args.seconds:g} --concurrency "
                      f"{args.concurrency} --latency-ms {args.latency_ms:g}` (production mode, "
                      "SQLite audit, 1 gateway worker, cache + APQ + rate limit in a private "
                      f"redis-server, warm legevakt query, every source {args.latency_ms:g} ms;"
                      f" {ctx.cores.describe()}; {machine()})\n\n{result}\n")
    return 0 if all(r.errors == 0 for r in runs.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
