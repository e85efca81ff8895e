"""Scaling curves: Kilde's latency against sources, items per source and concurrency.

Run: `python -m bench.scaling [--seconds 5]` (needs the `bench` extra for the plot:
`pip install -e '.[bench]'`). Against the sandbox at 20 ms per upstream call, with the floor
(`bench.floor`, the same upstream calls) beside Kilde at every point so the sandbox's own cost
can be told from Kilde's:

- sources, 1 to 10, at concurrency 1: 1-5 are the built-in connectors in registry order
  (municipal, kjernejournal, pll, eresept, proevesvar); 6-10 add municipal stores, each one more
  upstream call (Kilde has five connector types; a municipality's store is the source it has
  many of). Extra stores are other tenants with an agreement, so their records pass policy.
- items per source, 10 to 1,000, at concurrency 1: the sandbox's `items` knob gives the
  multi-service patient that many extra records in every source.
- concurrency 1 to 64 at the base configuration, with the Yoga peer too.

Writes a table to bench/RESULTS.md and the plot to bench/scaling.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.compare import commit, loadavg, machine
from bench.harness import OUT, ROOT, Run, load
from bench.systems import (
    BUILTIN,
    DEFAULT_POSTGRES,
    Context,
    System,
    audit_store,
    bench_context,
    check_answer,
    kilde_env,
    start_floor,
    start_kilde,
    start_yoga,
    yoga_unavailable,
)
from bench.workload import record_plan, write_plan


@dataclass
class Point:
    curve: str  # sources | items | concurrency
    x: int
    system: str
    run: Run
    upstream_calls: int


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def sources_config(n: int) -> tuple[tuple[str, ...], int]:
    """(enabled connectors, municipal stores) for `n` sources."""
    if n <= len(BUILTIN):
        return BUILTIN[:n], 1
    return BUILTIN, 1 + n - len(BUILTIN)


def _plan(ctx: Context, name: str, sources: tuple[str, ...] = BUILTIN, stores: int = 1,
          ) -> tuple[Path, int]:
    env = kilde_env(ctx, 0, "sqlite:///unused", sources=sources, stores=stores)
    calls = record_plan(env, ctx.sandbox, ctx.token, ctx.nin)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"plan-scaling-{name}.json"
    write_plan(calls, str(path))
    return path, len(calls)


def _check(system: System, ctx: Context) -> None:
    """One request first; an unclean answer is reported, and the point still measured (its
    errors column says how often it happened)."""
    try:
        check_answer(system, ctx)
    except RuntimeError as exc:
        print(f"  warning: {str(exc)[:240]}", flush=True)


def _point(curve: str, x: int, system: str, url: str, ctx: Context, concurrency: int,
           seconds: float, calls: int) -> Point:
    run = load(url, ctx.body, ctx.headers(), concurrency, seconds, cpus=ctx.cores.driver)
    print(f"  {curve:11s} {x:5d} {system:6s} p50 {run.p50_ms:7.1f} ms  p99 {run.p99_ms:7.1f} ms"
          f"  {run.throughput:6.1f} req/s  errors {run.errors}", flush=True)
    return Point(curve, x, system, run, calls)


def sweep_sources(ctx: Context, audit_url: str, counts: Sequence[int], seconds: float,
                  ) -> list[Point]:
    points = []
    for n in counts:
        sources, stores = sources_config(n)
        plan, calls = _plan(ctx, f"sources-{n}", sources, stores)
        with start_kilde(ctx, audit_url, sources=sources, stores=stores,
                         cpus=ctx.cores.sut) as kilde:
            _check(kilde, ctx)
            load(kilde.url, ctx.body, ctx.headers(), 2, 1, cpus=ctx.cores.driver)
            points.append(_point("sources", n, "kilde", kilde.url, ctx, 1, seconds, calls))
        with start_floor(plan, ctx.cores.sut) as floor:
            load(floor.url, ctx.body, ctx.headers(), 2, 1, cpus=ctx.cores.driver)
            points.append(_point("sources", n, "floor", floor.url, ctx, 1, seconds, calls))
    return points


def sweep_items(ctx: Context, audit_url: str, counts: Sequence[int], seconds: float,
                ) -> list[Point]:
    points = []
    with start_kilde(ctx, audit_url, cpus=ctx.cores.sut) as kilde:
        for n in counts:
            for source in BUILTIN:
                ctx.set_items(source, n)
            plan, calls = _plan(ctx, f"items-{n}")
            _check(kilde, ctx)
            load(kilde.url, ctx.body, ctx.headers(), 1, 1, cpus=ctx.cores.driver)
            points.append(_point("items", n, "kilde", kilde.url, ctx, 1, seconds, calls))
            with start_floor(plan, ctx.cores.sut) as floor:
                load(floor.url, ctx.body, ctx.headers(), 1, 1, cpus=ctx.cores.driver)
                points.append(_point("items", n, "floor", floor.url, ctx, 1, seconds, calls))
        for source in BUILTIN:
            ctx.set_items(source, 0)
    return points


def sweep_concurrency(ctx: Context, audit_url: str, levels: Sequence[int], seconds: float,
                      ) -> list[Point]:
    points = []
    plan, calls = _plan(ctx, "concurrency")
    starters: list[tuple[str, Callable[[], AbstractContextManager[System]]]] = [
        ("kilde", partial(start_kilde, ctx, audit_url, cpus=ctx.cores.sut)),
        ("floor", partial(start_floor, plan, ctx.cores.sut))]
    if yoga_unavailable() is None:
        starters.append(("yoga", partial(start_yoga, plan, ctx.cores.sut)))
    for name, starter in starters:
        with starter() as system:
            _check(system, ctx)
            load(system.url, ctx.body, ctx.headers(), 8, 2, cpus=ctx.cores.driver)
            for c in levels:
                points.append(_point("concurrency", c, name, system.url, ctx, c, seconds, calls))
    return points


def table(points: list[Point]) -> str:
    lines = []
    for curve, unit in (("sources", "sources"), ("items", "items per source"),
                        ("concurrency", "concurrency")):
        rows = [p for p in points if p.curve == curve]
        if not rows:
            continue
        systems = sorted({p.system for p in rows}, key=["kilde", "floor", "yoga"].index)
        head = " | ".join(f"{s} p50 ms | {s} p99 ms | {s} req/s | {s} errors" for s in systems)
        lines += [f"\nLatency vs {unit}:\n", f"| {unit} | upstream calls | {head} |",
                  "|---:|---:|" + "---:|" * (4 * len(systems))]
        for x in sorted({p.x for p in rows}):
            at = {p.system: p for p in rows if p.x == x}
            cells = " | ".join(
                f"{at[s].run.p50_ms:.1f} | {at[s].run.p99_ms:.1f} | {at[s].run.throughput:.0f} | "
                f"{at[s].run.errors}" if s in at else "n/a | n/a | n/a | n/a" for s in systems)
            calls = next(iter(at.values())).upstream_calls
            lines.append(f"| {x} | {calls} | {cells} |")
    return "\n".join(lines)


def summary(points: list[Point]) -> list[str]:
    """The sources target: Kilde's p50 at 10 sources within 20% of its p50 at 1 source."""
    kilde = {p.x: p.run for p in points if p.curve == "sources" and p.system == "kilde"}
    if not kilde:
        return []
    low, high = kilde[min(kilde)], kilde[max(kilde)]
    growth = high.p50_ms / low.p50_ms - 1
    state = "met" if growth <= 0.20 else "NOT met"
    return [f"- Kilde p50 at {max(kilde)} sources vs {min(kilde)}: {low.p50_ms:.1f} -> "
            f"{high.p50_ms:.1f} ms ({100 * growth:+.0f}%; target within 20%) - {state}"]


def plot(points: list[Point], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is missing (pip install -e '.[bench]')"
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    styles = {"kilde": "tab:blue", "floor": "tab:gray", "yoga": "tab:orange"}
    for ax, curve, label in zip(axes, ("sources", "items", "concurrency"),
                                ("sources (upstream stores)", "items per source",
                                 "concurrent clients"), strict=True):
        rows = [p for p in points if p.curve == curve]
        if not rows:
            ax.set_visible(False)
            continue
        for system in ("kilde", "floor", "yoga"):
            mine = sorted((p for p in rows if p.system == system), key=lambda p: p.x)
            if not mine:
                continue
            xs = [p.x for p in mine]
            ax.plot(xs, [p.run.p50_ms for p in mine], "o-", color=styles[system],
                    label=f"{system} p50")
            ax.plot(xs, [p.run.p99_ms for p in mine], "x--", color=styles[system],
                    label=f"{system} p99", alpha=0.6)
        if curve != "sources":
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("latency, ms")
        ax.set_title(f"latency vs {label}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle("Kilde legevakt query, sandbox at 20 ms per upstream call "
                    "(floor = same upstream calls, no gateway)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"plot: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per point")
    parser.add_argument("--sources", default="1,2,3,4,5,6,7,8,9,10")
    parser.add_argument("--items", default="10,30,100,300,1000")
    parser.add_argument("--concurrency", default="1,2,4,8,16,32,64")
    parser.add_argument("--curves", default="sources,items,concurrency")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--plot", default=str(ROOT / "bench" / "scaling.png"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    command = "python -m bench.scaling " + shlex.join(sys.argv[1:] if argv is None else argv)
    curves = set(args.curves.split(","))
    load_before = loadavg()
    points: list[Point] = []
    with bench_context() as ctx, audit_store(args.postgres_url, 1) as (audit_url, audit):
        if "sources" in curves:
            points += sweep_sources(ctx, audit_url, ints(args.sources), args.seconds)
        if "items" in curves:
            points += sweep_items(ctx, audit_url, ints(args.items), args.seconds)
        if "concurrency" in curves:
            points += sweep_concurrency(ctx, audit_url, ints(args.concurrency), args.seconds)
        cores = ctx.cores.describe()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    pictured = plot(points, Path(args.plot))
    text = (f"\n### Scaling curves, {stamp}\n\n- `{command.strip()}`\n- commit {commit()}; "
            f"{machine()}; {cores}\n- Kilde in production mode, audit {audit}, cold (cache off);"
            f" closed loop, {args.seconds:g} s per point; {pictured}\n- load average before "
            f"the run: {load_before}" + (f"; {args.note}" if args.note else "") + "\n"
            + "\n".join(summary(points)) + "\n" + table(points) + "\n")
    print(text)
    if not args.no_record:
        with open(args.results, "a") as out:
            out.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
