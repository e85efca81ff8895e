"""CPU per legevakt request in one process: the figure that holds on a busy machine.

    .venv/bin/python -m bench.cpu [--mode cold|warm|both] [--requests 300] [--concurrency 8]
                                  [--items N] [--profile out.prof]

Throughput on a shared two-core machine moves 10-50% between runs; the CPU time one process
spends per request moves much less. This runs the gateway exactly as `bench.compare` configures
it (production mode, the sandbox's HelseID with fresh keys, token exchange and a DPoP proof per
upstream call, policy, PostgreSQL audit, JSON logs at WARNING; warm = the Redis cache after one
priming request) but in this process, pinned to the last CPU, and drives it through its ASGI
interface with `--concurrency` requests in flight (no HTTP client, no socket on the caller's
side, so nearly all of the CPU time measured is the gateway's; the sandbox, Redis and
PostgreSQL are other processes). It prints CPU ms and wall ms per request, best of three rounds.
`--profile` writes a cProfile of the last round (read it with `python -m pstats`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from bench.harness import Cores, percentile
from bench.systems import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    Context,
    audit_store,
    bench_context,
    kilde_env,
)


class _GcWatch:
    """Collections per generation and their time (gc.callbacks), for the stall hunt."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = 0.0
        self._started = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
            return
        took = time.thread_time() - self._started
        self.counts[info["generation"]] += 1
        self.seconds[info["generation"]] += took
        self.longest = max(self.longest, took)

    def reset(self) -> None:
        self.counts, self.seconds, self.longest = [0, 0, 0], [0.0, 0.0, 0.0], 0.0

    def describe(self, requests: int) -> str:
        per = sum(self.seconds) * 1000 / requests
        return (f"GC {per:.2f} ms per request (collections gen0/1/2 {self.counts}, "
                f"longest {self.longest * 1000:.1f} ms)")


GC = _GcWatch()


class _Stalls:
    """The event loop's longest synchronous stretches: every callback (a task step, a timer, a
    transport read) timed around `asyncio.Handle._run`, as asyncio's slow-callback log
    would time it, without debug mode's own cost. One callback that runs for 7 ms makes
    every other request in flight wait 7 ms: these are the tail's cause on one core."""

    THRESHOLD = 0.002  # seconds; stretches longer than this are kept by name

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.slow: dict[str, list[float]] = {}
        self._original: Any = None

    def install(self) -> None:
        import asyncio.events as events

        original = self._original = events.Handle._run
        durations, slow, threshold = self.durations, self.slow, self.THRESHOLD
        clock = time.perf_counter

        def _run(handle: Any) -> None:
            started = clock()
            original(handle)
            took = clock() - started
            durations.append(took)
            if took > threshold:
                slow.setdefault(_describe(handle), []).append(took)

        events.Handle._run = _run  # type: ignore[method-assign,assignment]

    def reset(self) -> None:
        self.durations.clear()
        self.slow.clear()

    def describe(self) -> str:
        from bench.harness import percentile

        if not self.durations:
            return "stalls: not measured"
        ms = sorted(d * 1000 for d in self.durations)
        top = sorted(((max(v), len(v), k) for k, v in self.slow.items()), reverse=True)[:6]
        named = "; ".join(f"{k} x{n} (max {m * 1000:.1f} ms)" for m, n, k in top)
        return (f"callbacks {len(ms)}: p50 {percentile(ms, 0.5):.3f} ms, p99 "
                f"{percentile(ms, 0.99):.2f} ms, max {ms[-1]:.1f} ms, "
                f"{sum(1 for d in ms if d > self.THRESHOLD * 1000)} over "
                f"{self.THRESHOLD * 1000:g} ms: {named}")


def _describe(handle: Any) -> str:
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    coro = getattr(owner, "get_coro", None)
    if coro is not None:  # a task step: name the coroutine and where it is suspended
        c = coro()
        frame = getattr(c, "cr_frame", None)
        where = f"@{frame.f_code.co_name}" if frame is not None else ""
        return f"task {getattr(c, '__qualname__', c)}{where}"
    return getattr(callback, "__qualname__", repr(callback))


STALLS = _Stalls()


class Gateway:
    """The app, its lifespan entered, called as an ASGI server would."""

    def __init__(self, env: Mapping[str, str]) -> None:
        from gateway.app import create_app
        from gateway.settings import Settings

        settings = Settings.from_env({k: v for k, v in env.items() if k != "KILDE_PORT"})
        self.app = create_app(settings, tune_gc=True)  # as gateway.asgi builds it
        self._lifespan: Any = None
        self.state: dict[str, Any] = {}

    async def __aenter__(self) -> Gateway:
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.state = dict(await self._lifespan.__aenter__() or {})
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._lifespan.__aexit__(*exc)

    async def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/graphql", "raw_path": b"/graphql",
                 "root_path": "", "query_string": b"", "headers": raw,
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
                 "state": dict(self.state)}
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # a client that stays connected
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


async def measure(ctx: Context, env: Mapping[str, str], *, cold: bool, requests: int,
                  concurrency: int, rounds: int, profile: str | None) -> tuple[float, float]:
    """(CPU ms, wall ms) per request, best round."""
    headers = ctx.headers(cold=cold)
    async with Gateway(env) as gateway:
        for _ in range(3):  # connections, token exchanges, caches, the priming request
            status, answer = await gateway.post(ctx.body, headers)
            if status != 200 or b'"errors"' in answer:
                raise RuntimeError(f"not a clean answer (HTTP {status}): {answer[:300]!r}")
        print(f"  {len(gc.get_objects())} objects tracked by the GC after start "
              f"({gc.get_freeze_count()} frozen)", flush=True)
        best = (float("inf"), float("inf"))
        for round_ in range(rounds):
            todo, failed = requests, 0
            latencies: list[float] = []
            profiler = cProfile.Profile() if profile and round_ == rounds - 1 else None

            async def client(latencies: list[float] = latencies) -> None:
                nonlocal todo, failed
                while todo > 0:
                    todo -= 1
                    started = time.perf_counter()
                    status, answer = await gateway.post(ctx.body, headers)
                    latencies.append((time.perf_counter() - started) * 1000)
                    if status != 200:
                        raise RuntimeError(f"HTTP {status}: {answer[:300]!r}")
                    failed += b'"errors"' in answer  # a source failed (a timeout under valgrind)

            if profiler is not None:
                profiler.enable()
            GC.reset()
            STALLS.reset()
            asked = ctx.upstream_requests()
            _callgrind("on")
            cpu, wall, times = time.process_time(), time.perf_counter(), os.times()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            after = os.times()
            user, system = after.user - times.user, after.system - times.system
            _callgrind("off")
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile or "")
            best = min(best, (cpu * 1000 / requests, wall * 1000 / requests))
            asked = ctx.upstream_requests() - asked
            print(f"  round {round_ + 1}: {cpu * 1000 / requests:.2f} ms CPU per request (user "
                  f"{user * 1000 / requests:.2f}, system {system * 1000 / requests:.2f}); "
                  f"{asked / requests:.2f} upstream calls per request (retries, DPoP nonce "
                  f"challenges); {failed} answers with errors; {GC.describe(requests)}",
                  flush=True)
            print(f"    latency per request: p50 {percentile(latencies, 0.5):.1f} ms, p99 "
                  f"{percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
                  + (f"; {STALLS.describe()}" if STALLS.durations else ""), flush=True)
        return best


def _callgrind(state: str) -> None:
    """Under `valgrind --tool=callgrind --instr-atstart=no`, count instructions only while
    requests run (KILDE_BENCH_CALLGRIND=1): instruction counts do not move with the load."""
    if os.environ.get("KILDE_BENCH_CALLGRIND"):
        import subprocess

        subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=False,
                       capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("cold", "warm", "both"), default="both")
    parser.add_argument("--requests", type=int, default=300, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--items", type=int, default=0, help="extra records per source")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--profile", default=None, help="cProfile output of the last round")
    parser.add_argument("--stalls", action="store_true",
                        help="time every event-loop callback; name those over 2 ms")
    parser.add_argument("--patient", type=float, default=0.0,
                        help="source timeout and request deadline in s (e.g. 60 under valgrind)")
    args = parser.parse_args()
    if args.stalls:
        STALLS.install()
    cores = Cores.detect()
    if cores.sut:
        os.sched_setaffinity(0, {int(c) for c in cores.sut.split(",")})
    results = {}
    with bench_context(args.latency_ms, cores) as ctx, audit_store(args.postgres_url, 1) as (
            audit_url, _):
        if args.items:
            for source in ("municipal", "kjernejournal", "pll", "eresept", "proevesvar"):
                ctx.set_items(source, args.items)
        modes = ("cold", "warm") if args.mode == "both" else (args.mode,)
        for mode in modes:
            # under valgrind a run lasts minutes: the cache entries must outlive it and a Redis
            # call may take longer than 0.25 s, or warm requests go upstream mid-run
            slow = {"KILDE_DEADLINE_SECONDS": str(args.patient),
                    "KILDE_CACHE__OP_TIMEOUT_SECONDS": str(args.patient),
                    "KILDE_CACHE__DEFAULT_TTL_SECONDS": "3600",
                    "KILDE_CACHE__MAX_TTL_SECONDS": "3600", **{
                        f"KILDE_CONNECTORS__{s.upper()}__TIMEOUT": str(args.patient) for s in (
                            "municipal", "kjernejournal", "pll", "eresept", "proevesvar")}
                    } if args.patient else {}
            env = kilde_env(ctx, 0, audit_url, extra_env=slow,
                            cache_url=args.redis_url if mode == "warm" else "")
            cpu, wall = asyncio.run(measure(
                ctx, env, cold=mode == "cold", requests=args.requests,
                concurrency=args.concurrency, rounds=args.rounds,
                profile=f"{args.profile}.{mode}" if args.profile else None))
            results[mode] = {"cpu_ms": round(cpu, 3), "wall_ms": round(wall, 3)}
            print(f"{mode:5s} c={args.concurrency} items={args.items}: {cpu:.2f} ms CPU "
                  f"per request, {wall:.2f} ms wall per request", flush=True)
    print(json.dumps({"load": os.getloadavg(), **results}))


if __name__ == "__main__":
    main()
