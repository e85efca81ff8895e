"""The side-by-side benchmark: Kilde, the floor and GraphQL Yoga, in one run, on one machine.

Run: `./dev bench` (= `python -m bench.compare`), options below. One command, in this order:
starts the sandbox (20 ms per upstream call, no faults) in its own process; records the upstream
calls Kilde makes for the legevakt query (`bench.workload.record_plan`), so the floor and the
peer make the same ones; then for each system — Kilde in production mode (`kilde serve`, token
auth, policy, PostgreSQL audit; 1 worker, then 2), the raw floor (`bench.floor`), GraphQL Yoga
on Node.js (`bench/peers/yoga`, installed from npm) and, once the gateway has a cache, Kilde with
a warm Redis cache — checks one answer, warms up, and drives closed-loop load with wrk at each
concurrency. It prints throughput, p50, p99, errors, CPU and RSS of the system's process tree,
the ratios Kilde/Yoga and Kilde/floor and Kilde's p99 overhead over the upstream latency, and
appends all of it with date, commit and command to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.harness import OUT, ROOT, Run, Usage, load
from bench.systems import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    Context,
    System,
    audit_store,
    bench_context,
    cache_supported,
    check_answer,
    kilde_env,
    start_floor,
    start_kilde,
    start_yoga,
    yoga_unavailable,
)
from bench.workload import record_plan, write_plan

SYSTEMS = ("kilde", "kilde-2w", "kilde-warm", "floor", "yoga")


@dataclass
class Result:
    """One system's runs, or why it was not run."""

    system: str
    label: str
    runs: list[Run] = field(default_factory=list)
    skipped: str = ""
    answer: dict[str, Any] | None = None


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


SPEED_LOOP = 10_000_000  # iterations of the machine-speed loop


def machine_speed(repeats: int = 3) -> float:
    """CPU seconds of a fixed pure-Python loop (best of `repeats`), measured before anything
    starts: the same code on two machines differs by this factor, so figures recorded on
    different machines can be compared (absolute ms scale with it; ratios less so)."""
    best = math.inf
    for _ in range(repeats):
        started, total = time.process_time(), 0
        for i in range(SPEED_LOOP):
            total += i
        best = min(best, time.process_time() - started)
    return best


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{head}+uncommitted changes" if git("status", "--porcelain") else head


def _settle(ctx: Context, quiet: float = 0.3, bound: float = 15.0) -> None:
    """Wait until the sandbox's request count stops moving: requests the load generator cut off
    at the end of its run may still be making their upstream calls."""
    last, deadline = ctx.upstream_requests(), time.monotonic() + bound
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = ctx.upstream_requests()
        if now == last:
            return
        last = now


def calls_per_query(system: System, ctx: Context, *, cold: bool, queries: int = 3) -> float:
    """Upstream calls per query, asked one at a time once the system is idle. Under load the
    `upstream calls/req` figure also counts the calls of requests the load generator cut off at
    the end (up to `concurrency` of them, a large share of a short run on a loaded machine)
    and any retries; this one is the system's plan, comparable across systems exactly."""
    _settle(ctx)
    before = ctx.upstream_requests()
    with httpx.Client(timeout=60) as client:
        for _ in range(queries):
            client.post(system.url, content=ctx.body, headers=ctx.headers(cold=cold))
    return (ctx.upstream_requests() - before) / queries


def measure(system: System, ctx: Context, concurrency: int, seconds: float, *,
            cold: bool = True, use_wrk: bool = True) -> Run:
    """One closed-loop run with CPU/RSS of the system and the sandbox and upstream calls."""
    headers = ctx.headers(cold=cold)
    before, sandbox_before = Usage.of(system.pid), Usage.of(ctx.sandbox_pid)
    upstream_before = ctx.upstream_requests()
    run = load(system.url, ctx.body, headers, concurrency, seconds, cpus=ctx.cores.driver,
               use_wrk=use_wrk)
    after, sandbox_after = Usage.of(system.pid), Usage.of(ctx.sandbox_pid)
    run.cpu_seconds = after.cpu_seconds - before.cpu_seconds
    run.rss_mb = after.rss_mb
    run.sandbox_cpu = (sandbox_after.cpu_seconds - sandbox_before.cpu_seconds) / run.seconds
    total = run.ok + run.errors
    run.upstream_per_request = ((ctx.upstream_requests() - upstream_before) / total
                                if total else float("nan"))
    run.upstream_per_query = calls_per_query(system, ctx, cold=cold)
    print(f"  {system.name:10s} c={concurrency:<3d} {run.throughput:7.1f} req/s  "
          f"p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms  errors {run.errors}", flush=True)
    return run


@dataclass
class Entry:
    """A system to run: its result row, how to start it, and whether its requests are cold."""

    result: Result
    starter: Callable[[], AbstractContextManager[System]] | None
    cold: bool = True
    system: System | None = None


def _entries(ctx: Context, wanted: list[str], args: argparse.Namespace, plan_path: Path,
             stack: ExitStack, facts: dict[str, str]) -> list[Entry]:
    postgres = None if args.postgres_url == "none" else args.postgres_url
    entries = []
    for name in wanted:
        if name in ("kilde", "kilde-2w", "kilde-warm"):
            workers = 2 if name == "kilde-2w" else 1
            warm = name == "kilde-warm"
            label = (f"Kilde, {workers} worker{'s' if workers > 1 else ''}, "
                     + ("warm Redis cache" if warm else "cold"))
            result = Result(name, label)
            if warm and not cache_supported():
                result.skipped = ("the gateway has no cache yet (KILDE_CACHE__URL is not read); "
                                  "this row runs once the Redis cache lands")
                entries.append(Entry(result, None))
                continue
            try:
                audit_url, facts["audit"] = stack.enter_context(audit_store(postgres, workers))
            except RuntimeError as exc:
                result.skipped = str(exc)
                entries.append(Entry(result, None))
                continue
            # Two workers pinned to one core would only share it: they get every core.
            cpus = ctx.cores.sut if workers == 1 else None
            entries.append(Entry(result, partial(
                start_kilde, ctx, audit_url, workers=workers, cpus=cpus, name=name,
                cache_url=args.redis_url if warm else ""), cold=not warm))
        elif name == "floor":
            entries.append(Entry(Result(name, "floor (raw aiohttp + orjson, same upstream calls)"),
                                 partial(start_floor, plan_path, ctx.cores.sut)))
        elif name == "yoga":
            result = Result(name, "GraphQL Yoga 5 on Node.js + undici")
            result.skipped = yoga_unavailable() or ""
            entries.append(Entry(result, partial(start_yoga, plan_path, ctx.cores.sut)))
        else:
            raise SystemExit(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    return entries


def run_all(args: argparse.Namespace) -> tuple[list[Result], dict[str, str]]:
    """Start every system, check and warm each, then run each concurrency level on every
    system back to back, so the systems meet the same machine (it drifts on a shared box)."""
    levels = [int(c) for c in args.concurrency.split(",")]
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    facts: dict[str, str] = {}
    use_wrk = args.driver == "wrk"
    with bench_context(args.latency_ms) as ctx, ExitStack() as stack:
        facts["cores"] = ctx.cores.describe()
        plan = record_plan(kilde_env(ctx, 0, "sqlite:///unused"), ctx.sandbox, ctx.token,
                           ctx.nin)
        OUT.mkdir(parents=True, exist_ok=True)
        plan_path = OUT / f"plan-{os.getpid()}.json"
        write_plan(plan, str(plan_path))
        stack.callback(plan_path.unlink, missing_ok=True)
        sources = sorted({c.source for c in plan})
        facts["plan"] = (f"{len(plan)} upstream calls per query to {len(sources)} sources "
                         f"({', '.join(sources)})")
        entries = _entries(ctx, wanted, args, plan_path, stack, facts)
        for entry in entries:
            if entry.result.skipped or entry.starter is None:
                continue
            print(f"{entry.result.label}: starting, checking one answer, warming up", flush=True)
            try:
                entry.system = stack.enter_context(entry.starter())
                entry.result.answer = check_answer(entry.system, ctx, cold=entry.cold)
                if args.warmup > 0:
                    load(entry.system.url, ctx.body, ctx.headers(cold=entry.cold), 8,
                         args.warmup, cpus=ctx.cores.driver, use_wrk=use_wrk)
            except (RuntimeError, OSError, httpx.HTTPError) as exc:
                entry.result.skipped = f"failed: {exc}"
                print(f"  {entry.result.skipped}", flush=True)
        for concurrency in levels:
            for entry in entries:
                if entry.system is None or entry.result.skipped:
                    continue
                try:
                    entry.result.runs.append(measure(entry.system, ctx, concurrency,
                                                     args.seconds, cold=entry.cold,
                                                     use_wrk=use_wrk))
                except (RuntimeError, OSError, httpx.HTTPError) as exc:
                    entry.result.skipped = f"failed: {exc}"
        results = [e.result for e in entries]
        for result in results:
            if (result.system == "kilde-warm" and result.runs
                    and min(r.upstream_per_request for r in result.runs) >= 1):
                result.label += " (the cache did not serve: see upstream calls/req)"
    facts["answers"] = same_answers(results)
    return results, facts


def _without_latency(answer: dict[str, Any]) -> dict[str, Any]:
    patient = dict(answer["data"]["patient"])
    patient["sources"] = [{k: v for k, v in row.items() if k != "latencyMs"}
                          for row in patient.get("sources", [])]
    return patient


def same_answers(results: list[Result]) -> str:
    """Whether the Yoga peer answered exactly what Kilde answered (latencies aside)."""
    answers = {r.system: r.answer for r in results if r.answer is not None}
    if "kilde" not in answers or "yoga" not in answers:
        return "not compared"
    if _without_latency(answers["kilde"]) == _without_latency(answers["yoga"]):
        return "Yoga's answer is the same as Kilde's, field for field (latencies aside)"
    return "Yoga's answer DIFFERS from Kilde's: the comparison is not like for like"


# -- reporting -----------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table(results: list[Result]) -> str:
    lines = ["| system | concurrency | req/s | p50 ms | p99 ms | errors | CPU ms/req | "
             "CPU % | RSS MB | upstream calls/req | sandbox CPU % | upstream calls/query idle |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        if result.skipped:
            lines.append(f"| {result.label} | | | | | | | | | | skipped: {result.skipped} | |")
            continue
        for r in result.runs:
            lines.append(
                f"| {result.label} | {r.concurrency} | {r.throughput:.0f} | {r.p50_ms:.1f} | "
                f"{r.p99_ms:.1f} | {r.errors} | {_fmt(r.cpu_ms_per_request, 2)} | "
                f"{100 * r.cpu_seconds / r.seconds:.0f} | {r.rss_mb:.0f} | "
                f"{_fmt(r.upstream_per_request)} | {100 * r.sandbox_cpu:.0f} | "
                f"{_fmt(r.upstream_per_query)} |")
    return "\n".join(lines)


def ratios(results: list[Result], latency_ms: float) -> tuple[str, list[str]]:
    by = {r.system: {run.concurrency: run for run in r.runs} for r in results if r.runs}
    kilde = by.get("kilde", {})
    lines = ["| concurrency | Kilde/Yoga req/s | Kilde/floor req/s | Kilde warm/Yoga req/s | "
             "Kilde p99 - upstream ms | floor p99 - upstream ms | Yoga p99 - upstream ms |",
             "|---:|---:|---:|---:|---:|---:|---:|"]

    def ratio(a: dict[int, Run], b: dict[int, Run], c: int) -> float:
        if c in a and c in b and b[c].throughput:
            return a[c].throughput / b[c].throughput
        return float("nan")

    def over(a: dict[int, Run], c: int) -> float:
        return a[c].p99_ms - latency_ms if c in a else float("nan")

    yoga, floor, warm = by.get("yoga", {}), by.get("floor", {}), by.get("kilde-warm", {})
    for c in sorted(kilde):
        lines.append(f"| {c} | {_fmt(ratio(kilde, yoga, c), 2)} | {_fmt(ratio(kilde, floor, c), 2)}"
                     f" | {_fmt(ratio(warm, yoga, c), 2)} | {_fmt(over(kilde, c))} | "
                     f"{_fmt(over(floor, c))} | {_fmt(over(yoga, c))} |")

    def verdict(value: float, ok: bool, text: str) -> str:
        state = "not measured" if math.isnan(value) else ("met" if ok else "NOT met")
        return f"- {text}: {_fmt(value, 2)} — {state}"

    # issue 16's targets (quiet machine): the same run decides all of them
    cold32, warm32, p99_8 = ratio(kilde, yoga, 32), ratio(warm, yoga, 32), over(kilde, 8)
    warm_cpu = min((r.cpu_ms_per_request for r in warm.values()
                    if not math.isnan(r.cpu_ms_per_request)), default=float("nan"))
    tail = (kilde[1].p99_ms / kilde[1].p50_ms if 1 in kilde and kilde[1].p50_ms
            else float("nan"))
    targets = [
        verdict(cold32, cold32 >= 0.6, "Kilde/Yoga throughput at concurrency 32, cold (target "
                                        ">= 0.6)"),
        verdict(warm32, warm32 >= 1.5, "Kilde warm / Yoga cold throughput at concurrency 32 "
                                        "(target >= 1.5)"),
        verdict(warm_cpu, warm_cpu <= 2.5, "Kilde CPU ms per warm request, lowest level "
                                           "(target <= 2.5)"),
        verdict(p99_8, p99_8 <= 40, f"Kilde p99 minus the {latency_ms:g} ms upstream "
                                    "at concurrency 8, ms (target <= 40)"),
        verdict(tail, tail <= 1.5, "Kilde p99 / p50 at concurrency 1, cold (target <= 1.5)"),
    ]
    return "\n".join(lines), targets


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def report(results: list[Result], facts: dict[str, str], args: argparse.Namespace,
           command: str, load_before: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    ratio_table, targets = ratios(results, args.latency_ms)
    driver = "wrk 1 thread (closed loop)" if args.driver == "wrk" else "aiohttp client"
    notes = [
        f"`{command}`",
        f"commit {commit()}; {machine()}",
        f"machine speed: {facts.get('speed', 'not measured')}",
        f"load: {driver}, {args.seconds:g} s per level after a {args.warmup:g} s warm-up; "
        f"{facts.get('cores', '')}",
        f"upstream: sandbox at {args.latency_ms:g} ms per call, no faults; "
        f"{facts.get('plan', '')}",
        f"Kilde: `kilde serve`, KILDE_MODE=production (KILDE_AUTH__DPOP=allowed: callers send "
        f"bearer tokens, the DPoP verification cost is in bench/dpop_bench.py), the sandbox's "
        f"HelseID with fresh keys (callers' tokens; Kilde's token exchange per caller and source, "
        f"DPoP proof per upstream call), policy on, audit {facts.get('audit', 'n/a')}, JSON logs "
        f"at WARNING; cold = cache off and "
        "`cache-control: no-cache`, every request goes upstream (see upstream calls/req)",
        f"equivalence: {facts.get('answers', 'not compared')}",
        f"load average before the run: {load_before}"
        + (f"; {args.note}" if args.note else ""),
    ]
    return (f"\n### Side by side, {stamp}\n\n" + "\n".join(f"- {n}" for n in notes)
            + f"\n\n{table(results)}\n\n{ratio_table}\n\nTargets:\n" + "\n".join(targets)
            + "\n")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per concurrency level")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--systems", default="kilde,kilde-2w,kilde-warm,floor,yoga",
                        help=f"comma-separated, from {', '.join(SYSTEMS)}")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES,
                        help="audit store server ('none': SQLite, one worker only)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--driver", choices=("wrk", "aiohttp"), default="wrk")
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--note", default="", help="a sentence for RESULTS.md (e.g. shared "
                                                   "machine)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = "python -m bench.compare " + shlex.join(sys.argv[1:] if argv is None else argv)
    load_before = loadavg()
    speed = machine_speed()
    results, facts = run_all(args)
    facts["speed"] = (f"a pure-Python loop of {SPEED_LOOP:,} additions took {speed:.2f} s CPU "
                      "(best of 3, before the systems started; bench.compare.machine_speed)")
    text = report(results, facts, args, command.strip(), load_before)
    print(text)
    if not args.no_record:
        with open(args.results, "a") as out:
            out.write(text)
        print(f"appended to {args.results}")
    ran = [r for r in results if r.runs]
    clean = all(run.errors == 0 for r in ran for run in r.runs)
    failed = any(r.skipped.startswith("failed") for r in results)
    return 0 if ran and clean and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
