"""Benchmark plumbing: start the sandbox and the gateway as real processes, drive load, measure.

Used by `bench/legevakt.py` and the test suite's smoke run. Load is generated with aiohttp in
this process (an async client on its own core where the machine has one); CPU and RSS of the
gateway process are read from /proc.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


@contextmanager
def process(args: list[str], env: Mapping[str, str], ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(ready_url)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def sandbox_env(latency_ms: float) -> dict[str, str]:
    env = {}
    for source in ("MUNICIPAL", "KJERNEJOURNAL", "PLL", "ERESEPT", "PROEVESVAR"):
        env[f"KILDE_SANDBOX__{source}__LATENCY_MS"] = str(latency_ms)
    return env


def gateway_env(port: int, sandbox: str, audit_url: str) -> dict[str, str]:
    return {
        "KILDE_PORT": str(port),
        "KILDE_AUTH__JWKS_URL": f"http://127.0.0.1:{port}/_demo/jwks.json",
        "KILDE_AUDIT__URL": audit_url,
        "KILDE_LOG_LEVEL": "WARNING",
        "KILDE_CONNECTORS__MUNICIPAL__STORES": ",".join(
            f"{n}={sandbox}/municipal/{n}" for n in ("0301", "4601", "5001")),
        "KILDE_CONNECTORS__KJERNEJOURNAL__BASE_URL": f"{sandbox}/kjernejournal",
        "KILDE_CONNECTORS__PLL__BASE_URL": f"{sandbox}/pll",
        "KILDE_CONNECTORS__ERESEPT__BASE_URL": f"{sandbox}/eresept",
        "KILDE_CONNECTORS__PROEVESVAR__BASE_URL": f"{sandbox}/proevesvar",
    }


def kilde(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", *args]


@dataclass
class Run:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    cpu_seconds: float = 0.0
    rss_mb: float = 0.0

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


def _proc_cpu_rss(pid: int) -> tuple[float, float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        rss_pages = int(fields[21])
        return cpu, rss_pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


async def drive(url: str, body: bytes, headers: Mapping[str, str], concurrency: int,
                seconds: float, pid: int | None = None, check: bytes = b'"data"') -> Run:
    """`concurrency` clients post `body` back to back for `seconds`; one Run of figures."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=dict(headers)) as resp:
                        payload = await resp.read()
                        ok = resp.status == 200 and check in payload and b'"errors"' not in payload
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

        cpu0, _ = _proc_cpu_rss(pid) if pid else (0.0, 0.0)
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu1, rss = _proc_cpu_rss(pid) if pid else (0.0, 0.0)
    return Run(concurrency, len(latencies), errors, elapsed, latencies, cpu1 - cpu0, rss)
