"""Benchmark plumbing: processes pinned to cores, load from wrk (or aiohttp), CPU and RSS.

Used by every benchmark in `bench/` and the test suite's smoke run. `process()` starts a real
process (optionally `taskset`-pinned), waits until it answers, and stops it; `load()` drives one
closed-loop run with wrk when it is installed (a Lua script posts the body and counts answers
that are not clean GraphQL data as errors) or with an aiohttp client in this process otherwise;
`Usage` reads CPU seconds and RSS of a process and its children from /proc.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SOURCES = ("MUNICIPAL", "KJERNEJOURNAL", "PLL", "ERESEPT", "PROEVESVAR")


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of `values` by nearest rank, as every table here reports it
    (NaN for none)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def listening_socket() -> socket.socket:
    """A TCP socket bound to a loopback port the OS chose. The server process is handed this
    socket itself (`process(..., sock=...)`, `--fd N`), never only its number, so nothing else
    can take the port in between."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None,
              ) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process for {url} exited with status {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


@dataclass(frozen=True)
class Cores:
    """Which CPUs each role runs on (`taskset -c` lists); None: not pinned.

    On two or more cores the system under test gets its own core and the load generator and
    the sandbox share the other, so the gateway never competes with its load for a CPU.
    """

    sut: str | None
    driver: str | None
    sandbox: str | None

    @classmethod
    def detect(cls) -> Cores:
        count = len(os.sched_getaffinity(0))
        if count < 2 or shutil.which("taskset") is None:
            return cls(None, None, None)
        cpus = sorted(os.sched_getaffinity(0))
        return cls(str(cpus[-1]), str(cpus[0]), str(cpus[0]))

    def describe(self) -> str:
        if self.sut is None:
            return "not pinned (one core, or no taskset)"
        return (f"taskset: system under test on CPU {self.sut}; load generator and sandbox on "
                f"CPU {self.driver}")


def pinned(args: Sequence[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *args] if cpus else list(args)


@contextmanager
def process(args: list[str], env: Mapping[str, str], ready_url: str, *,
            cpus: str | None = None, log: str | None = None, timeout: float = 60.0,
            sock: socket.socket | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start `args` (pinned to `cpus`), wait for `ready_url`, yield, then stop it (SIGTERM).
    `sock` is passed to the process (its `--fd`) and closed here once it has it."""
    OUT.mkdir(parents=True, exist_ok=True)
    sink = open(OUT / f"{log}.log", "wb") if log else None  # closed below
    output = sink if sink is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(pinned(args, cpus), env={**os.environ, **env}, cwd=ROOT,
                                stdout=output, stderr=output, start_new_session=True,
                                pass_fds=(sock.fileno(),) if sock is not None else ())
    finally:
        if sock is not None:
            sock.close()
    try:
        wait_http(ready_url, timeout, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if sink is not None:
            sink.close()


def sandbox_env(latency_ms: float, items: Mapping[str, int] | None = None) -> dict[str, str]:
    # the floor and the Yoga peer call the fakes without HelseID; Kilde still gets and sends
    # its tokens (the simulator answers either way), so its figures include that work
    env = {"KILDE_SANDBOX__REQUIRE_TOKENS": "false"}
    for source in SOURCES:
        env[f"KILDE_SANDBOX__{source}__LATENCY_MS"] = str(latency_ms)
        env[f"KILDE_SANDBOX__{source}__FAULT"] = "none"
    for source, count in (items or {}).items():
        env[f"KILDE_SANDBOX__{source.upper()}__ITEMS"] = str(count)
    return env


def kilde(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", *args]


# -- measuring -----------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _tree(root: int) -> list[int]:
    """`root` and every descendant (uvicorn's worker processes, node's helpers)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            parents[int(entry)] = int(fields[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        found.extend(frontier)
    return found


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system) and resident memory of a process tree at one moment."""

    cpu_seconds: float
    rss_mb: float

    @classmethod
    def of(cls, pid: int | None) -> Usage:
        if pid is None:
            return cls(0.0, 0.0)
        ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
        cpu = rss = 0.0
        for member in _tree(pid):
            fields = _stat(member)
            if fields is None:
                continue
            cpu += (int(fields[11]) + int(fields[12])) / ticks
            rss += int(fields[21]) * page / 1e6
        return cls(cpu, rss)


@dataclass
class Run:
    """The figures of one closed-loop run at one concurrency."""

    concurrency: int
    ok: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float = 0.0  # of the system under test, during the run
    rss_mb: float = 0.0  # of the system under test, at the end of the run
    driver: str = "wrk"
    sandbox_cpu: float = 0.0  # sandbox CPU seconds per wall second (1.0 = one core busy)
    upstream_per_request: float = float("nan")  # under the load (retries and cut-off requests)
    upstream_per_query: float = float("nan")  # one query at a time after the run: the exact plan

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / self.ok if self.ok else float("nan")


WRK_SCRIPT = """-- generated by bench/harness.py: POST one GraphQL body, count unclean answers as errors
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
%(headers)s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"data"', 1, true)
     or string.find(body, '"errors"', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"bad":%%d,"socket_errors":%%d,' ..
    '"p50_us":%%f,"p99_us":%%f}\\n',
    summary.requests, summary.duration, b, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_script(body: bytes, headers: Mapping[str, str]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in headers.items())
    path = OUT / f"wrk-{os.getpid()}-{abs(hash((body, tuple(headers.items()))))}.lua"
    path.write_text(WRK_SCRIPT % {"body": body.decode(), "headers": lines})
    return path


def wrk(url: str, body: bytes, headers: Mapping[str, str], concurrency: int, seconds: float,
        cpus: str | None = None) -> Run:
    """One wrk run (one thread, `concurrency` connections, closed loop)."""
    script = wrk_script(body, headers)
    args = pinned(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
                   "--timeout", "10s", "-s", str(script), url], cpus)
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures: {done.stdout[-400:]} {done.stderr[-400:]}")
    figures = json.loads(line.removeprefix("WRKJSON "))
    bad = int(figures["bad"])
    return Run(concurrency, int(figures["requests"]) - bad, bad + int(figures["socket_errors"]),
               figures["duration_us"] / 1e6, figures["p50_us"] / 1000,
               figures["p99_us"] / 1000)


async def drive(url: str, body: bytes, headers: Mapping[str, str], concurrency: int,
                seconds: float, check: bytes = b'"data"') -> Run:
    """The fallback load generator: `concurrency` aiohttp clients post back to back."""
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

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    median = statistics.median(latencies) if latencies else float("nan")
    return Run(concurrency, len(latencies), errors, elapsed,
               median, percentile(latencies, 0.99), driver="aiohttp")


def load(url: str, body: bytes, headers: Mapping[str, str], concurrency: int, seconds: float,
         *, cpus: str | None = None, use_wrk: bool = True) -> Run:
    """One run with wrk when installed (and wanted), else with the aiohttp client."""
    if use_wrk and shutil.which("wrk"):
        return wrk(url, body, headers, concurrency, seconds, cpus)
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    return asyncio.run(drive(url, body, headers, concurrency, seconds))
