"""Soak: Kilde at half its peak throughput for five minutes, watching errors and RSS.

Run: `python -m bench.soak [--minutes 5] [--rate R]`. Starts the sandbox (20 ms) and Kilde in
production mode (PostgreSQL audit, cache off), measures peak throughput with a short
closed-loop run at concurrency 32 unless `--rate` is given, then sends the legevakt query at
half that rate, open loop (a request every 1/rate seconds whether or not earlier ones have
answered, so a slow gateway queues work instead of slowing the load), for `--minutes`. It
samples the gateway's RSS every few seconds and reports errors, latency per minute and RSS
growth (first minute against last), appends them to bench/RESULTS.md and plots
bench/soak.png (with the `bench` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.compare import commit, loadavg, machine
from bench.harness import ROOT, Usage, load, percentile
from bench.systems import DEFAULT_POSTGRES, audit_store, bench_context, check_answer, start_kilde


@dataclass
class Minute:
    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)

    def pct(self, q: float) -> float:
        return percentile(self.latencies, q)


async def open_loop(url: str, body: bytes, headers: dict[str, str], rate: float,
                    seconds: float, pid: int, sample_every: float = 5.0) -> list[Minute]:
    minutes = [Minute() for _ in range(int(seconds // 60) + 1)]
    start = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=1024)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def one(minute: Minute) -> None:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    ok = resp.status == 200 and b'"data"' in payload and b'"errors"' not in payload
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                minute.ok += 1
                minute.latencies.append((time.perf_counter() - t0) * 1000)
            else:
                minute.errors += 1

        async def sampler() -> None:
            while (now := time.perf_counter() - start) < seconds:
                minutes[int(now // 60)].rss.append(Usage.of(pid).rss_mb)
                await asyncio.sleep(sample_every)

        tasks: set[asyncio.Task[None]] = set()
        sampling = asyncio.create_task(sampler())
        i = 0
        while (due := i / rate) < seconds:
            delay = start + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(minutes[int(due // 60)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        await asyncio.gather(*tasks)
        sampling.cancel()
    return [m for m in minutes if m.ok or m.errors]


def plot(minutes: list[Minute], path: Path, rate: float) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is missing (pip install -e '.[bench]')"
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rss = [(i * 60 + j * 60 / max(1, len(m.rss)), v) for i, m in enumerate(minutes)
           for j, v in enumerate(m.rss)]
    left.plot([t for t, _ in rss], [v for _, v in rss], ".-")
    left.set_xlabel("seconds")
    left.set_ylabel("gateway RSS, MB")
    left.set_ylim(bottom=0)
    left.set_title("RSS under steady load")
    xs = list(range(1, len(minutes) + 1))
    right.plot(xs, [m.pct(0.5) for m in minutes], "o-", label="p50")
    right.plot(xs, [m.pct(0.99) for m in minutes], "x--", label="p99")
    right.set_xlabel("minute")
    right.set_ylabel("latency, ms")
    right.set_ylim(bottom=0)
    right.legend()
    right.set_title("latency per minute")
    figure.suptitle(f"Kilde soak at {rate:.1f} req/s (half of peak), open loop")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return f"plot: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0, help="req/s; default half of peak")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--plot", default=str(ROOT / "bench" / "soak.png"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    command = "python -m bench.soak " + shlex.join(sys.argv[1:] if argv is None else argv)
    load_before = loadavg()
    with bench_context() as ctx, audit_store(args.postgres_url, 1) as (audit_url, audit), \
         start_kilde(ctx, audit_url, cpus=ctx.cores.sut, name="kilde-soak") as kilde:
        check_answer(kilde, ctx)
        peak = ""
        rate = args.rate
        if not rate:
            run = load(kilde.url, ctx.body, ctx.headers(), 32, 15, cpus=ctx.cores.driver)
            rate = run.throughput / 2
            peak = f"peak {run.throughput:.1f} req/s (closed loop, concurrency 32, 15 s); "
        if ctx.cores.driver:
            os.sched_setaffinity(0, {int(ctx.cores.driver)})
        print(f"{peak}soak at {rate:.1f} req/s for {args.minutes:g} min", flush=True)
        minutes = asyncio.run(open_loop(kilde.url, ctx.body, ctx.headers(), rate,
                                        args.minutes * 60, kilde.pid))
        cores = ctx.cores.describe()
    errors = sum(m.errors for m in minutes)
    first, last = statistics.mean(minutes[0].rss), statistics.mean(minutes[-1].rss)
    growth = last - first
    flat = abs(growth) <= max(10.0, 0.05 * first)
    rows = ["| minute | ok | errors | p50 ms | p99 ms | RSS MB mean | RSS MB min-max |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for i, m in enumerate(minutes, 1):
        rss = m.rss or [float("nan")]
        rows.append(f"| {i} | {m.ok} | {m.errors} | {m.pct(0.5):.1f} | {m.pct(0.99):.1f} | "
                    f"{statistics.mean(rss):.2f} | {min(rss):.2f}-{max(rss):.2f} |")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"\n### Soak, {stamp}\n\n- `{command.strip()}`\n- commit {commit()}; {machine()}; "
            f"{cores}\n- Kilde in production mode, 1 worker, audit {audit}, cold; {peak}"
            f"open loop at {rate:.1f} req/s for {args.minutes:g} min; "
            f"{plot(minutes, Path(args.plot), rate)}\n- load average before the run: "
            f"{load_before}" + (f"; {args.note}" if args.note else "") + "\n\n"
            + "\n".join(rows) + f"\n\nErrors: {errors} "
            f"({'none' if errors == 0 else 'NOT zero'}). RSS first minute {first:.1f} MB, last "
            f"minute {last:.1f} MB ({growth:+.2f} MB; {sum(len(m.rss) for m in minutes)} samples): {'flat' if flat else 'NOT flat'} "
            "(flat = within 10 MB or 5%).\n")
    print(text)
    if not args.no_record:
        with open(args.results, "a") as out:
            out.write(text)
    return 0 if errors == 0 and flat else 1


if __name__ == "__main__":
    raise SystemExit(main())
