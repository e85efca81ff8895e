"""Helpers for the audit end-to-end tests: a gateway on a chosen audit store (in a thread, or as
a `kilde serve` process), and reading the trail back through a sink of our own."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt

from gateway.audit import AuditEvent, open_audit_sink
from gateway.demo import mint_token
from gateway.demo.tokens import DEMO_KID, DEMO_PRIVATE_KEY_PEM
from gateway.settings import Settings
from sandbox.helseid import kilde_environment
from tests.servers import (
    ServerThread,
    demo_app,
    e2e_settings,
    inherited,
    listening_socket,
    port_of,
    running,
)

ROOT = Path(__file__).resolve().parents[2]


class AuditedGateway:
    """A real gateway on a loopback port writing to `audit_url`."""

    def __init__(self, server: ServerThread, settings: Settings, audit_url: str) -> None:
        self.server = server
        self.settings = settings
        self.audit_url = audit_url

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, persona: str, patient: str | None = None, **kw: Any) -> str:
        return mint_token(persona, patient, issuer=self.settings.auth.issuer,
                          audience=self.settings.auth.audience, **kw)

    def query(self, query: str, token: str | None, variables: dict[str, Any] | None = None,
              timeout: float = 10.0) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables
                          or {}}, headers=headers, timeout=timeout)

    def events(self) -> list[AuditEvent]:
        return read_events(self.audit_url)

    def officer(self, orgnr: str | None = None) -> str:
        """The demo privacy officer (Oslo kommune); with `orgnr`, the same person as the
        privacy officer of another municipality (the token's organisation claim decides)."""
        token = self.token("personvernombud")
        if orgnr is None:
            return token
        claims = jwt.decode(token, options={"verify_signature": False})
        claims["helseid://claims/client/claims/orgnr_parent"] = orgnr
        return jwt.encode(claims, DEMO_PRIVATE_KEY_PEM, algorithm="RS256",
                          headers={"kid": DEMO_KID, "typ": "at+jwt"})


@contextmanager
def audited_gateway(sandbox_url: str, audit_url: str, **overrides: Any) -> Iterator[AuditedGateway]:
    sock = listening_socket()
    settings = e2e_settings(port_of(sock), sandbox_url, audit_url, **overrides)
    with running(demo_app(settings), sock) as server:
        yield AuditedGateway(server, settings, audit_url)


def read_events(audit_url: str) -> list[AuditEvent]:
    """Every event in the trail, oldest first."""

    async def read() -> list[AuditEvent]:
        sink = await open_audit_sink(audit_url, retention_days=36500)
        try:
            events: list[AuditEvent] = []
            after = None
            while True:
                page = await sink.query(patient_nin=None, start=None, end=None, first=1000,
                                        after=after)
                events.extend(page.events)
                if not page.has_next_page:
                    return events[::-1]
                after = page.end_cursor
        finally:
            await sink.aclose()

    return asyncio.run(read())


def by_request(events: list[AuditEvent], request_id: str) -> list[AuditEvent]:
    return [e for e in events if e.request_id == request_id]


def kilde_audit_verify(audit_url: str) -> subprocess.CompletedProcess[str]:
    """`kilde audit verify --url ...` as a user runs it: a separate process."""
    return subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify", "--url",
                           audit_url], cwd=ROOT, env=dict(os.environ), capture_output=True,
                          text=True, timeout=60, check=False)


def serve_env(port: int, sandbox_url: str, audit_url: str, **extra: str) -> dict[str, str]:
    """`kilde serve` configuration for a gateway on `port` against the sandbox at `sandbox_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILDE_")}
    env.update({
        "KILDE_MODE": "demo",  # the gateway serves the demo JWKS itself
        "KILDE_PORT": str(port),
        # callers' tokens from the sandbox's HelseID, which also gives Kilde its upstream tokens
        **kilde_environment(sandbox_url),
        "KILDE_AUDIT__URL": audit_url,
        "KILDE_LOG_LEVEL": "WARNING",
        "KILDE_CONNECTORS__MUNICIPAL__STORES": ",".join(
            f"{n}={sandbox_url}/municipal/{n}" for n in ("0301", "4601", "5001")),
        **{f"KILDE_CONNECTORS__{s.upper()}__BASE_URL": f"{sandbox_url}/{s}"
           for s in ("kjernejournal", "pll", "eresept", "proevesvar", "persontjenesten")},
    })
    env.update(extra)
    return env


def start_serve(env: Mapping[str, str], output: Path,
                sock: socket.socket) -> subprocess.Popen[bytes]:
    """`python -m gateway.cli serve` on `sock` (from `listening_socket()`), with stdout and
    stderr both written to `output`; returns once it answers `/readyz`, or raises with the
    process killed."""
    url = f"http://127.0.0.1:{port_of(sock)}/readyz"
    with output.open("wb") as sink, inherited(sock) as (fd_args, popen):
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", *fd_args],
                                cwd=ROOT, env=dict(env), stdout=sink, stderr=subprocess.STDOUT,
                                **popen)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200 and proc.poll() is None:
                return proc  # (alive: the answer is not from another server on a reused port)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=10)
            raise RuntimeError(f"kilde serve did not come up: {output.read_text()[-2000:]}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)
