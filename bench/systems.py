"""The systems a benchmark runs: the sandbox, Kilde in production mode, the floor, the Yoga peer.

Sits between the benchmarks (`compare`, `scaling`, `soak`, `profile`) and `bench.harness`.
Each `start_*` is a context manager that starts one process pinned to its cores, waits until it
answers, yields a `System`, and stops it. Kilde runs as `kilde serve` with KILDE_MODE=production:
the sandbox's HelseID simulator with fresh keys as its token issuer and as the HelseID it gets
its upstream tokens from (`bench.workload.BenchIssuer`), PostgreSQL audit in a fresh schema
(SQLite for one worker when PostgreSQL is absent), JSON logs at WARNING. Kilde's figures thus
include its outbound credential work (one token exchange per caller and source, amortised,
and a DPoP proof per upstream call); the sandbox's token guards are off, since the floor and
the Yoga peer call it without HelseID.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.harness import (
    OUT,
    ROOT,
    Cores,
    kilde,
    listening_socket,
    port_of,
    process,
    sandbox_env,
)
from bench.workload import BenchIssuer, patient_nin, request_body

YOGA_DIR = ROOT / "bench" / "peers" / "yoga"
DEFAULT_POSTGRES = os.environ.get("KILDE_TEST_POSTGRES_URL",
                                  "postgresql://postgres@127.0.0.1:5432/test")
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"  # its own database: the test suite uses 0
BUILTIN = ("municipal", "kjernejournal", "pll", "eresept", "proevesvar")
HOME_STORE = "0301"


@dataclass(frozen=True)
class System:
    name: str
    url: str  # the GraphQL endpoint
    pid: int


@dataclass
class Context:
    """What every run shares: the sandbox, the issuer and its JWKS, the patient, the cores."""

    sandbox: str
    sandbox_pid: int
    issuer: BenchIssuer
    cores: Cores
    nin: str = field(default_factory=patient_nin)

    @functools.cached_property
    def token(self) -> str:
        """One caller's token for the whole run (an app keeps its token for its lifetime)."""
        return self.issuer.token(self.nin)

    def headers(self, *, cold: bool = True) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if cold:
            headers["Cache-Control"] = "no-cache"
        return headers

    @property
    def body(self) -> bytes:
        return request_body(self.nin)

    def upstream_requests(self) -> int:
        counts = httpx.get(f"{self.sandbox}/_sandbox/requests", timeout=5).json()
        return int(sum(counts.values()))

    def set_items(self, source: str, items: int) -> None:
        httpx.put(f"{self.sandbox}/_sandbox/faults/{source}", json={"items": items},
                  timeout=5).raise_for_status()


@contextmanager
def bench_context(latency_ms: float = 20.0, cores: Cores | None = None) -> Iterator[Context]:
    """The sandbox (fixed latency, no faults) in its own process, and the bench issuer."""
    cores = cores or Cores.detect()
    sock = listening_socket()
    base = f"http://127.0.0.1:{port_of(sock)}"
    with tempfile.TemporaryDirectory(prefix="kilde-bench-keys-") as keys, \
         process(kilde("sandbox", "--fd", str(sock.fileno())), sandbox_env(latency_ms),
                 f"{base}/_sandbox/patients", cpus=cores.sandbox, log="sandbox",
                 sock=sock) as proc:
        issuer = BenchIssuer(base, Path(keys))
        issuer.prepare()
        yield Context(base, proc.pid, issuer, cores)


# -- Kilde ---------------------------------------------------------------------------------------


def extra_stores(count: int) -> list[str]:
    """Municipality numbers for `count` extra municipal stores (bench tenants 1101, 1102, ...)."""
    return [f"{1101 + i:04d}" for i in range(count)]


def kilde_env(ctx: Context, port: int, audit_url: str, *, workers: int = 1,
              cache_url: str = "", sources: tuple[str, ...] = BUILTIN,
              stores: int = 1, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Production settings for `kilde serve` against the bench sandbox.

    `stores` > 1 adds municipal stores (each one more upstream call per request): extra
    tenants whose store URL is the home store's and an agreement letting Oslo's personnel see
    them, so policy lets their records through as it would in a real inter-municipal setup.
    """
    sandbox = ctx.sandbox
    extra = extra_stores(stores - 1)
    store_urls = [f"{HOME_STORE}={sandbox}/municipal/{HOME_STORE}",
                  *(f"{n}={sandbox}/municipal/{HOME_STORE}" for n in extra)]
    tenants = ["0301:Oslo:910000004", "4601:Bergen:920000002", "5001:Trondheim:930000000",
               *(f"{n}:Bench{n}:9{n}0000" for n in extra)]
    env = {
        "KILDE_MODE": "production",
        "KILDE_HOST": "127.0.0.1",
        "KILDE_PORT": str(port),
        "KILDE_WORKERS": str(workers),
        "KILDE_LOG_LEVEL": "WARNING",
        **ctx.issuer.environment(),
        # wrk replays one request, and a DPoP proof is good once: the load runs with bearer
        # tokens; what DPoP adds per request is measured by bench/dpop_bench.py
        "KILDE_AUTH__DPOP": "allowed",
        "KILDE_AUDIT__URL": audit_url,
        "KILDE_TENANTS": ",".join(tenants),
        "KILDE_ENABLED_CONNECTORS": ",".join(sources),
        "KILDE_CONNECTORS__MUNICIPAL__STORES": ",".join(store_urls),
        **{f"KILDE_CONNECTORS__{s.upper()}__BASE_URL": f"{sandbox}/{s}"
           for s in BUILTIN if s != "municipal"},
        "KILDE_CACHE__KEY": secrets.token_urlsafe(32),
    }
    if extra:
        env["KILDE_AGREEMENTS"] = ",".join(f"{n}>{HOME_STORE}" for n in extra)
    if cache_url:
        env["KILDE_CACHE__URL"] = cache_url
    else:
        env["KILDE_CACHE__ENABLED"] = "false"
    env.update(extra_env or {})
    return env


def cache_supported() -> bool:
    """True once the gateway reads a cache URL (the Redis cache has landed)."""
    try:
        from gateway.settings import CacheSettings
    except ImportError:
        return False
    return "url" in CacheSettings.__dataclass_fields__ and (ROOT / "connectors" /
                                                             "cache.py").exists()


@contextmanager
def audit_store(postgres_url: str | None, workers: int) -> Iterator[tuple[str, str]]:
    """(audit URL, description): a fresh PostgreSQL schema, dropped afterwards; SQLite in a
    temporary file for one worker when PostgreSQL is not reachable."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    made = postgres_url is not None and asyncio.run(_schema(postgres_url, f"CREATE SCHEMA {schema}"))
    if made:
        assert postgres_url is not None
        try:
            yield f"{postgres_url}?search_path={schema}", "PostgreSQL"
        finally:
            asyncio.run(_schema(postgres_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        return
    if workers > 1:
        raise RuntimeError("more than one worker needs PostgreSQL for the audit trail")
    path = OUT / f"audit-{schema}.sqlite3"
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        yield f"sqlite:///{path}", "SQLite (PostgreSQL not reachable)"
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


async def _schema(url: str, sql: str) -> bool:
    try:
        import asyncpg

        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, ImportError, Exception):  # any failure: not reachable
        return False
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
    return True


@contextmanager
def start_kilde(ctx: Context, audit_url: str, *, workers: int = 1, cache_url: str = "",
                sources: tuple[str, ...] = BUILTIN, stores: int = 1,
                cpus: str | None = None, prefix: list[str] | None = None,
                name: str = "kilde", extra_env: Mapping[str, str] | None = None,
                ) -> Iterator[System]:
    """`kilde serve` in production mode; `prefix` wraps the command (e.g. a profiler);
    `extra_env` adds or overrides settings."""
    sock = listening_socket()
    port = port_of(sock)
    env = kilde_env(ctx, port, audit_url, workers=workers, cache_url=cache_url,
                    sources=sources, stores=stores, extra_env=extra_env)
    args = [*(prefix or []), *kilde("serve", "--fd", str(sock.fileno()))]
    with process(args, env, f"http://127.0.0.1:{port}/healthz", cpus=cpus, log=name,
                 sock=sock) as proc:
        yield System(name, f"http://127.0.0.1:{port}/graphql", proc.pid)


# -- the floor and the peer ----------------------------------------------------------------------


@contextmanager
def start_floor(plan_path: Path, cpus: str | None = None) -> Iterator[System]:
    sock = listening_socket()
    port = port_of(sock)
    args = [sys.executable, "-m", "bench.floor", "--fd", str(sock.fileno()),
            "--plan", str(plan_path)]
    with process(args, {}, f"http://127.0.0.1:{port}/healthz", cpus=cpus, log="floor",
                 sock=sock) as proc:
        yield System("floor", f"http://127.0.0.1:{port}/graphql", proc.pid)


def yoga_unavailable() -> str | None:
    """Why the Yoga peer cannot run here (None: it can); installs it from npm when needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node and npm are needed for the GraphQL Yoga peer (bench/peers/yoga)"
    if not (YOGA_DIR / "node_modules" / "graphql-yoga").is_dir():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=YOGA_DIR, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"npm ci failed in bench/peers/yoga: {done.stderr.strip()[-300:]}"
    return None


@contextmanager
def start_yoga(plan_path: Path, cpus: str | None = None) -> Iterator[System]:
    sock = listening_socket()
    port = port_of(sock)
    env = {"LISTEN_FD": str(sock.fileno()), "PLAN": str(plan_path), "NODE_ENV": "production"}
    args = [shutil.which("node") or "node", str(YOGA_DIR / "server.mjs")]
    with process(args, env, f"http://127.0.0.1:{port}/healthz", cpus=cpus, log="yoga",
                 sock=sock) as proc:
        yield System("yoga", f"http://127.0.0.1:{port}/graphql", proc.pid)


def check_answer(system: System, ctx: Context, *, cold: bool = True) -> dict[str, object]:
    """One request; the decoded answer, or RuntimeError when it is not clean GraphQL data."""
    response = httpx.post(system.url, content=ctx.body, headers=ctx.headers(cold=cold),
                          timeout=30)
    body = response.json()
    if response.status_code != 200 or body.get("errors") or not body.get("data"):
        raise RuntimeError(f"{system.name} did not answer the legevakt query cleanly "
                           f"(HTTP {response.status_code}): {response.text[:300]}")
    return dict(body)


def env_without(keys: Mapping[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in keys.items() if k not in names}
