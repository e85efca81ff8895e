"""Benchmark: the legevakt query through Kilde against the sandbox at fixed upstream latency.

Run: `./dev bench [--seconds 10] [--latency-ms 20] [--concurrency 1,8,32,64] [--no-record]`.
Starts the sandbox and the gateway (`kilde serve`, SQLite audit unless --audit-url) as separate
processes, drives the full legevakt summary for the multi-service patient with a valid token
(auth, policy and audit on), prints throughput and p50/p99 per concurrency level, and appends
the figures to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from bench.harness import ROOT, Run, drive, free_port, gateway_env, kilde, process, sandbox_env
from gateway.demo import mint_token
from gateway.settings import AuthSettings
from sandbox.world import by_tag

QUERY = """query Legevakt($nin: String!) { patient(nin: $nin) {
  alerts { kind priority title provenance { source } }
  treatmentLimitations { code { code display } description provenance { source recordId } }
  criticalInformation { type description severity provenance { source } }
  medications { name status dosage { text } conflicts provenances { source recordId } }
  labResults { code { display } issuedAt results { code { code } value unit abnormal } }
  municipalServices { code { code display } status unit phone provenance { source } }
  conditions { code { system code display } clinicalStatus }
  documents { title date }
  sources { source category status latencyMs }
} }"""


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


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


async def run_levels(url: str, levels: list[int], seconds: float, pid: int) -> list[Run]:
    nin = by_tag("multi-service").nin
    auth = AuthSettings()
    token = mint_token("legevakt-lege", nin, issuer=auth.issuer, audience=auth.audience,
                       lifetime=3600)
    body = json.dumps({"query": QUERY, "variables": {"nin": nin}}).encode()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    await drive(url, body, headers, 4, min(2.0, seconds), pid)  # warm up
    return [await drive(url, body, headers, c, seconds, pid) for c in levels]


def table(runs: list[Run], latency_ms: float) -> str:
    lines = ["| concurrency | req/s | p50 ms | p99 ms | errors | gateway CPU s | gateway RSS MB |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r.concurrency} | {r.throughput:.0f} | {r.p50:.1f} | {r.pct(0.99):.1f} "
                     f"| {r.errors} | {r.cpu_seconds:.1f} | {r.rss_mb:.0f} |")
    lines.append(f"\nUpstream latency {latency_ms:.0f} ms per source; sequential fan-out would "
                 f"put p50 at >= {5 * latency_ms:.0f} ms.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--audit-url", default="")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]

    sbx_port, gw_port = free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sbx_port}"
    with tempfile.TemporaryDirectory() as tmp:
        audit_url = args.audit_url or f"sqlite:///{tmp}/audit.sqlite3"
        with process(kilde("sandbox", "--port", str(sbx_port)), sandbox_env(args.latency_ms),
                     f"{sandbox}/_sandbox/patients"), \
             process(kilde("serve", "--port", str(gw_port)),
                     gateway_env(gw_port, sandbox, audit_url),
                     f"http://127.0.0.1:{gw_port}/healthz") as gw:
            runs = asyncio.run(run_levels(f"http://127.0.0.1:{gw_port}/graphql", levels,
                                          args.seconds, gw.pid))
    result = table(runs, args.latency_ms)
    print(result)
    if not args.no_record:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        audit = "PostgreSQL" if args.audit_url.startswith("postgres") else "SQLite"
        with open(ROOT / "bench" / "RESULTS.md", "a") as out:
            out.write(f"\n### Legevakt query, {stamp}, commit {commit()}\n\n"
                      f"`python -m bench.legevakt --seconds {args.seconds:g} --latency-ms "
                      f"{args.latency_ms:g} --concurrency {args.concurrency}` "
                      f"({audit} audit, 1 gateway worker; {machine()})\n\n{result}\n")
    return 0 if all(r.errors == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
