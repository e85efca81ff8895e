"""Profile Kilde under load with py-spy: where the gateway's CPU goes, by function and package.

Run: `python -m bench.profile [--seconds 20] [--concurrency 32]` (py-spy comes with the `bench`
extra; attaching needs ptrace rights, e.g. root). Starts the sandbox (20 ms) and Kilde in
production mode (PostgreSQL audit, cache off) pinned to its core, drives the legevakt query
closed loop, and samples the gateway with `py-spy record --pid`: once in raw (collapsed-stack)
form, summarised here as the top functions by own time, by total time and by package, and once
as a flame graph (bench/out/profile-kilde.svg). Idle samples (the event loop waiting) are left
out, so the shares are shares of the gateway's CPU time. The summary goes to bench/RESULTS.md.
`--warm` profiles Kilde with a warm Redis cache instead (no upstream calls): what a request
costs besides fetching.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from bench.compare import commit, loadavg, machine
from bench.harness import OUT, Run, load
from bench.systems import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    audit_store,
    bench_context,
    check_answer,
    start_kilde,
)

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
PACKAGES = (
    ("gateway/", "kilde gateway/"), ("schema/", "kilde schema/"),
    ("policies/", "kilde policies/"), ("connectors/", "kilde connectors/"),
    ("sandbox/", "sandbox"), ("strawberry/", "strawberry"), ("graphql/", "graphql-core"),
    ("httpx_aiohttp/", "httpx-aiohttp"), ("httpx/", "httpx"), ("httpcore/", "httpcore"),
    ("aiohttp/", "aiohttp"), ("asyncpg/", "asyncpg"), ("uvicorn/", "uvicorn"),
    ("starlette/", "starlette"), ("jwt/", "pyjwt"), ("cryptography/", "cryptography"),
    ("tenacity/", "tenacity"), ("redis/", "redis"), ("prometheus_client/", "prometheus"),
    ("asyncio/", "asyncio"), ("logging/", "logging"), ("json/", "json"), ("re/", "re"),
    ("<string>", "generated (dataclass __init__ etc.)"), ("<frozen", "stdlib (frozen)"),
)
# Phases of a request: a sample goes to the first rule that matches walking from the leaf up.
PHASES = (
    (("connectors/fhir.py", "httpx/", "httpx_aiohttp/", "httpcore/", "aiohttp/client",
      "aiohttp/connector", "aiohttp/streams", "aiohttp/http_parser", "aiohttp/helpers"),
     "upstream HTTP client (httpx on aiohttp)"),
    (("gateway/audit/", "gateway/recording.py", "asyncpg/"), "audit trail (events, PostgreSQL)"),
    (("gateway/auth/", "jwt/", "cryptography/"), "authentication (JWT, JWKS, attest)"),
    (("policies/",), "policy decisions"),
    (("connectors/",), "connectors: mapping, fan-out, resilience, cache"),
    (("schema/",), "schema resolvers and the patient pipeline"),
    (("strawberry/", "graphql/"), "GraphQL parse, validate, execute (strawberry, graphql-core)"),
    (("gateway/", "starlette/", "uvicorn/", "orjson"), "HTTP server and endpoint"),
)


def spy(pid: int, seconds: float, path: Path, fmt: str, rate: int) -> None:
    subprocess.run(["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)),
                    "--rate", str(rate), "--format", fmt, "--output", str(path)],
                   check=True, capture_output=True)


def frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    names = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw.strip())
        names.append(f"{match['func']} ({_short(match['file'])})" if match else raw.strip())
    return names, int(count)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def package(frame: str) -> str:
    file = frame.rsplit("(", 1)[-1]
    return next((label for prefix, label in PACKAGES if file.startswith(prefix)), "other")


def phase(stack: list[str]) -> str:
    for frame in reversed(stack):
        file = frame.rsplit("(", 1)[-1]
        for prefixes, name in PHASES:
            if file.startswith(prefixes):
                return name
    return "event loop and the rest (asyncio, stdlib)"


def summarise(raw: Path, top: int) -> tuple[int, str]:
    phases: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = frames(line)
        samples += count
        own[stack[-1]] += count
        phases[phase(stack)] += count
        by_package[package(stack[-1])] += count
        for name in set(stack):
            total[name] += count

    def rows(counter: Counter[str], title: str) -> list[str]:
        out = [f"\n{title}:\n", "| share | samples | function (file) |", "|---:|---:|---|"]
        for name, n in counter.most_common(top):
            out.append(f"| {100 * n / samples:.1f}% | {n} | `{name}` |")
        return out

    lines = ["\nCPU time by request phase (a sample counts for the innermost phase on its "
             "stack):\n", "| share | phase |", "|---:|---|"]
    lines += [f"| {100 * n / samples:.1f}% | {name} |" for name, n in phases.most_common()]
    lines += ["\nOwn time by package (where the leaf frame is):\n", "| share | package |",
              "|---:|---|"]
    lines += [f"| {100 * n / samples:.1f}% | {name} |" for name, n in by_package.most_common()]
    lines += rows(own, f"Top {top} functions by own time")
    frames_of_interest = Counter({k: v for k, v in total.items() if v < samples and (
                                  package(k).startswith("kilde") or package(k) in (
                                      "strawberry", "graphql-core", "asyncpg", "pyjwt",
                                      "httpx", "httpx-aiohttp", "aiohttp"))})
    lines += rows(frames_of_interest, f"Top {top} functions by total time (Kilde and its "
                                      "libraries; a frame counts once per stack)")
    return samples, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="sampling window")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--warm", action="store_true",
                        help="profile with a warm Redis cache (no upstream calls)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("py-spy is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    command = "python -m bench.profile " + shlex.join(sys.argv[1:] if argv is None else argv)
    OUT.mkdir(parents=True, exist_ok=True)
    name = "profile-kilde-warm" if args.warm else "profile-kilde"
    raw, svg = OUT / f"{name}.txt", OUT / f"{name}.svg"
    load_before = loadavg()
    runs: list[Run] = []
    with bench_context() as ctx, audit_store(args.postgres_url, 1) as (audit_url, audit), \
         start_kilde(ctx, audit_url, cpus=ctx.cores.sut, name="kilde-profile",
                     cache_url=args.redis_url if args.warm else "") as kilde:
        headers = ctx.headers(cold=not args.warm)
        check_answer(kilde, ctx, cold=not args.warm)
        load(kilde.url, ctx.body, headers, 8, 2, cpus=ctx.cores.driver)
        for fmt, path in (("raw", raw), ("flamegraph", svg)):
            sampler = threading.Thread(target=spy, args=(kilde.pid, args.seconds, path, fmt,
                                                         args.rate))
            sampler.start()
            runs.append(load(kilde.url, ctx.body, headers, args.concurrency,
                             args.seconds + 1, cpus=ctx.cores.driver))
            sampler.join()
        cores = ctx.cores.describe()
    samples, summary = summarise(raw, args.top)
    run = runs[0]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"\n### Profile of Kilde under load, {stamp}\n\n- `{command.strip()}`\n"
            f"- commit {commit()}; {machine()}; {cores}\n- Kilde in production mode, 1 worker, "
            f"audit {audit}, {'warm Redis cache' if args.warm else 'cold'}; closed loop at concurrency {args.concurrency}: "
            f"{run.throughput:.1f} req/s, p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, "
            f"{run.errors} errors while sampled\n- py-spy {args.rate} Hz for {args.seconds:g} s, "
            f"{samples} non-idle samples; flame graph {svg.relative_to(OUT.parent.parent)} "
            f"(not committed)\n- load average before the run: {load_before}"
            + (f"; {args.note}" if args.note else "") + "\n" + summary + "\n")
    print(text)
    if not args.no_record:
        with open(args.results, "a") as out:
            out.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
