"""Benchmark: CPU per upstream HTTP exchange, for Kilde's client and the alternatives.

Run: `python -m bench.http_clients [--seconds 4] [--concurrency 1,32] [--clients a,b]`.
Starts the sandbox (20 ms latency per call) in its own process on one CPU, pins this process to
the other, and for each client runs `concurrency` workers that each send one keep-alive GET to
a FHIR source after another, with the headers a Kilde upstream call carries (accept, a
`DPoP` authorization of a ~1.2 KB token, a ~0.6 KB proof), and reads the body. It prints the
process's CPU time (all threads: a Rust-backed client's I/O threads count) per request and
requests per second. `--fanout` keeps the older measure: five-source fan-outs per second, which
chose aiohttp under httpx's API in `connectors/http.py`.

Clients not installed (`pyreqwest`, `rnet`, `aiosonic`, `curl_cffi`: `pip install` them to
compare) are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import resource
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from bench.harness import Cores, kilde, listening_socket, port_of, process, sandbox_env
from connectors.fhir import FHIR_JSON, request_json_response
from connectors.http import create_http_client

SOURCES = ("pll", "eresept", "proevesvar", "kjernejournal", "municipal")
# FHIR answers of 0.2-3 KB from two municipal stores (GET routes that need no patient headers)
PATHS = ("municipal/0301/metadata", "municipal/0301/Condition?patient=x",
         "municipal/4601/metadata", "municipal/0301/Flag?patient=x",
         "municipal/4601/AllergyIntolerance?patient=x")
HEADERS = {
    "authorization": "DPoP " + "t" * 1200,
    "dpop": "p" * 600,
}

FORM = {"patient": "x", "_count": "50"}

One = Callable[[str], Awaitable[None]]
Maker = Callable[[], contextlib.AbstractAsyncContextManager[One]]


@contextlib.asynccontextmanager
async def kilde_now() -> AsyncIterator[One]:
    """What a connector's call costs in the request path today: `request_json_response` on
    the client `create_http_client` builds (JSON decoding included, as Kilde always does it)."""
    http = create_http_client()

    async def one(url: str) -> None:
        await request_json_response(http, "bench", "GET", url, timeout=5.0, headers=HEADERS)

    try:
        yield one
    finally:
        await http.aclose()


@contextlib.asynccontextmanager
async def kilde_form() -> AsyncIterator[One]:
    """The same with a form POST (a FHIR `_search`, as proevesvar sends every cold request)."""
    http = create_http_client()

    async def one(url: str) -> None:
        store = "/".join(url.split("/")[:5])  # http://host:port/municipal/NNNN
        await request_json_response(http, "bench", "POST", f"{store}/Condition/_search",
                                    timeout=5.0, headers=HEADERS, data=FORM)

    try:
        yield one
    finally:
        await http.aclose()


@contextlib.asynccontextmanager
async def aiohttp_kilde_shape() -> AsyncIterator[One]:
    """aiohttp as `connectors.fhir._send_aiohttp` used it at 26f4c55: Kilde's session (its
    pool subclass, the stale-connection middleware), a `ClientTimeout` per call, a headers
    dict, `read()`."""
    http = create_http_client()
    session: aiohttp.ClientSession = http.session  # type: ignore[attr-defined]

    async def one(url: str) -> None:
        async with session.request(
                "GET", url, headers={"accept": FHIR_JSON, **HEADERS}, params=None, data=None,
                timeout=aiohttp.ClientTimeout(total=5.0), allow_redirects=False) as response:
            _ = response.content_length
            await response.read()

    try:
        yield one
    finally:
        await http.aclose()


@contextlib.asynccontextmanager
async def aiohttp_plain() -> AsyncIterator[One]:
    """aiohttp with its defaults and none of Kilde's additions."""
    async with aiohttp.ClientSession() as session:
        async def one(url: str) -> None:
            async with session.get(url, headers={"accept": FHIR_JSON, **HEADERS}) as response:
                await response.read()
        yield one


@contextlib.asynccontextmanager
async def aiohttp_tuned() -> AsyncIterator[One]:
    """aiohttp with what its source spends per call cut: no cookie jar (DummyCookieJar), no
    middleware, one ClientTimeout reused, no auto User-Agent header."""
    timeout = aiohttp.ClientTimeout(total=5.0)
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, keepalive_timeout=4.0),
            cookie_jar=aiohttp.DummyCookieJar(), skip_auto_headers=("User-Agent",),
            trust_env=False) as session:
        async def one(url: str) -> None:
            async with session.request("GET", url, headers={"accept": FHIR_JSON, **HEADERS},
                                       timeout=timeout, allow_redirects=False) as response:
                await response.read()
        yield one


@contextlib.asynccontextmanager
async def httpx_plain() -> AsyncIterator[One]:
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        async def one(url: str) -> None:
            (await client.get(url, headers={"accept": FHIR_JSON, **HEADERS})).read()
        yield one


@contextlib.asynccontextmanager
async def pyreqwest_client() -> AsyncIterator[One]:
    from pyreqwest.client import ClientBuilder

    async with (ClientBuilder().max_connections(512).follow_redirects(False)
                .pool_idle_timeout(timedelta(seconds=4)).build()) as client:
        timeout = timedelta(seconds=5)

        async def one(url: str) -> None:
            response = await (client.get(url).headers({"accept": FHIR_JSON, **HEADERS})
                              .timeout(timeout).build().send())
            await response.bytes()
        yield one


@contextlib.asynccontextmanager
async def rnet_client() -> AsyncIterator[One]:
    import rnet

    client = rnet.Client(allow_redirects=False, cookie_store=False, pool_idle_timeout=4,
                         timeout=5)

    async def one(url: str) -> None:
        response = await client.get(url, headers={"accept": FHIR_JSON, **HEADERS})
        await response.bytes()
    yield one


@contextlib.asynccontextmanager
async def aiosonic_client() -> AsyncIterator[One]:
    import aiosonic

    client = aiosonic.HTTPClient()

    async def one(url: str) -> None:
        response = await client.get(url, headers={"accept": FHIR_JSON, **HEADERS})
        await response.content()
    try:
        yield one
    finally:
        await client.connector.cleanup()


@contextlib.asynccontextmanager
async def curl_cffi_client() -> AsyncIterator[One]:
    from curl_cffi import AsyncSession

    async with AsyncSession(max_clients=512, allow_redirects=False) as session:
        async def one(url: str) -> None:
            response = await session.get(url, headers={"accept": FHIR_JSON, **HEADERS},
                                         timeout=5.0)
            _ = response.content
        yield one


class _RawConnection(asyncio.Protocol):
    """One keep-alive connection that writes a request and waits for a Content-Length body:
    the event loop's and the kernel's share of an exchange, with no HTTP client around it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.index(b"content-length:") + 15
        length = int(head[start:head.index(b"\r\n", start)])
        if len(self.buffer) >= end + 4 + length:
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            self.waiter.set_result(body)


@contextlib.asynccontextmanager
async def raw_protocol() -> AsyncIterator[One]:
    """Not a client: the floor under every client on this event loop (see `_RawConnection`)."""
    loop = asyncio.get_running_loop()
    idle: list[_RawConnection] = []
    extra = "".join(f"{k}: {v}\r\n" for k, v in {"accept": FHIR_JSON, **HEADERS}.items())

    async def one(url: str) -> None:
        parts = url.split("/", 3)
        if idle:
            conn = idle.pop()
        else:
            host, port = parts[2].split(":")
            _, conn = await loop.create_connection(_RawConnection, host, int(port))
        conn.waiter = loop.create_future()
        assert conn.transport is not None
        conn.transport.write(f"GET /{parts[3]} HTTP/1.1\r\nhost: {parts[2]}\r\n{extra}\r\n"
                             .encode())
        await conn.waiter
        idle.append(conn)

    try:
        yield one
    finally:
        for conn in idle:
            assert conn.transport is not None
            conn.transport.close()


CLIENTS: dict[str, tuple[str, Maker]] = {
    "raw": ("floor: raw asyncio Protocol, no HTTP client", raw_protocol),
    "kilde": ("Kilde now: connectors.fhir.request_json_response (+ JSON decode)", kilde_now),
    "kilde-form": ("Kilde now, a form POST (_search)", kilde_form),
    "aiohttp-kilde": ("aiohttp, Kilde's 26f4c55 _send_aiohttp shape", aiohttp_kilde_shape),
    "aiohttp": ("aiohttp, defaults", aiohttp_plain),
    "aiohttp-tuned": ("aiohttp tuned (no jar/middleware, one timeout)", aiohttp_tuned),
    "httpx": ("httpx (httpcore)", httpx_plain),
    "pyreqwest": ("pyreqwest (Rust reqwest)", pyreqwest_client),
    "rnet": ("rnet (Rust)", rnet_client),
    "aiosonic": ("aiosonic", aiosonic_client),
    "curl_cffi": ("curl_cffi AsyncSession", curl_cffi_client),
}


async def measure(make: Maker, base: str, concurrency: int, seconds: float,
                  exchanges: int = 0) -> tuple[float, float, float]:
    """(CPU µs per request, of which system µs, requests per second) of `concurrency`
    back-to-back workers for `seconds` (or `exchanges` each, after as many to warm up);
    CPU is the whole process's, every thread's."""
    urls = [f"{base}/{p}" for p in PATHS]
    async with make() as one:
        done = 0
        stop = time.perf_counter() + seconds

        async def worker(index: int, count: int) -> None:
            nonlocal done
            i = index
            while time.perf_counter() < stop if not count else i < index + count:
                await one(urls[i % len(urls)])
                i += 1
                done += 1

        await asyncio.gather(*(worker(i, exchanges or 1) for i in range(concurrency)))  # warm
        done = 0
        _callgrind("on")
        before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        await asyncio.gather(*(worker(i, exchanges) for i in range(concurrency)))
        after = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - wall
        _callgrind("off")
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return (user + system) / done * 1e6, system / done * 1e6, done / wall


def _callgrind(state: str) -> None:
    """Under `valgrind --tool=callgrind --instr-atstart=no` (KILDE_BENCH_CALLGRIND=1), count
    instructions only while the measured exchanges run, as `bench.cpu` does."""
    if os.environ.get("KILDE_BENCH_CALLGRIND"):
        subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=False,
                       capture_output=True)


async def fanouts(base: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Five-source fan-outs per second (the measure that chose aiohttp under httpx's API)."""
    urls = [f"{base}/{s}/metadata" for s in SOURCES]
    results = {}
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)

    async def loop(one: Callable[[], Awaitable[None]]) -> float:
        done = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await one()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)

    async with httpx.AsyncClient(limits=limits) as client:
        async def fan_httpx() -> None:
            await asyncio.gather(*(client.get(u) for u in urls))
        results["httpx (httpcore)"] = await loop(fan_httpx)

    transport = AiohttpTransport(limits=limits, trust_env=False)
    async with httpx.AsyncClient(transport=transport, limits=limits) as client:
        async def fan_bridge() -> None:
            await asyncio.gather(*(client.get(u) for u in urls))
        results["httpx on aiohttp transport"] = await loop(fan_bridge)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        async def fan_aiohttp() -> None:
            async def get(u: str) -> None:
                async with session.get(u) as r:
                    await r.read()
            await asyncio.gather(*(get(u) for u in urls))
        results["aiohttp"] = await loop(fan_aiohttp)
    return results


def _available(name: str) -> bool:
    module = {"pyreqwest": "pyreqwest", "rnet": "rnet", "aiosonic": "aiosonic",
              "curl_cffi": "curl_cffi"}.get(name)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--rounds", type=int, default=1, help="best of N per cell")
    parser.add_argument("--exchanges", type=int, default=0,
                        help="a fixed count per worker instead of --seconds (for callgrind)")
    parser.add_argument("--fanout", action="store_true",
                        help="five-source fan-outs per second instead (the older measure)")
    args = parser.parse_args(argv)
    cores = Cores.detect()
    sock = listening_socket()
    base = f"http://127.0.0.1:{port_of(sock)}"
    levels = [int(c) for c in args.concurrency.split(",")]
    with process(kilde("sandbox", "--fd", str(sock.fileno())), sandbox_env(20),
                 f"{base}/_sandbox/patients", sock=sock, cpus=cores.sandbox):
        if cores.sut is not None:
            os.sched_setaffinity(0, {int(c) for c in cores.sut.split(",")})
        if args.fanout:
            results = asyncio.run(fanouts(base, levels[-1], args.seconds))
            print(f"five-source fan-outs per second at concurrency {levels[-1]} "
                  "(20 ms upstream latency):")
            for label, rate in results.items():
                print(f"  {label:38s} {rate:8.0f}/s")
            return 0
        print(f"CPU per upstream GET (keep-alive, 20 ms upstream latency), {cores.describe()}; "
              f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}")
        print(f"| client | {' | '.join(f'c={c} CPU µs/req (sys) | c={c} req/s' for c in levels)} |")
        print(f"|---|{'---:|---:|' * len(levels)}")
        for name in args.clients.split(","):
            label, make = CLIENTS[name]
            if not _available(name):
                print(f"| {label} | not installed |")
                continue
            cells: list[Any] = []
            for level in levels:
                runs = [asyncio.run(measure(make, base, level, args.seconds, args.exchanges))
                        for _ in range(args.rounds)]
                cpu, system, rate = min(runs)
                cells += [f"{cpu:.0f} ({system:.0f})", f"{rate:.0f}"]
            print(f"| {label} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
