"""Run the real gateway and sandbox on loopback ports, in a background thread, for tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import uvicorn

from connectors.base import ConnectorSettings
from gateway.app import create_app
from gateway.demo import demo_routes
from gateway.headlimit import uvicorn_options
from gateway.settings import BUILTIN_CONNECTORS, Settings
from sandbox import helseid as sandbox_helseid

# A source's timeout in the test stacks: a healthy sandbox answers in milliseconds, but CI shares
# two cores with a loaded machine, where a legevakt query (nine upstream calls, a token exchange and
# a DPoP proof each, all in the test's own process) has taken over a second. Tests of timeouts hang a
# source on purpose and wait this long; tests of anything else must never meet it.
SOURCE_TIMEOUT = 4.0
DEADLINE = SOURCE_TIMEOUT + 2.0  # the request's deadline must not cut a source's timeout short
# The token exchange at the sandbox's HelseID (one per caller and source, all at once on a cold
# query) gets the same headroom: at 2 s under load every source of a query failed with UNAVAILABLE.


def listening_socket() -> socket.socket:
    """A TCP socket bound to a loopback port the OS chose, for one server to take over.

    The server is handed this very socket (never only its number), so no other process on
    the machine can take the port between choosing it and serving on it.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


@contextmanager
def inherited(sock: socket.socket) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """For a `kilde demo|serve|sandbox` subprocess: the `--fd` arguments and the Popen
    keywords that pass `sock` to it. The test's own copy is closed afterwards."""
    fd = sock.fileno()
    try:
        yield ["--fd", str(fd)], {"pass_fds": (fd,)}
    finally:
        sock.close()


class ServerThread:
    """One uvicorn server for an ASGI app, on its own event loop in a daemon thread."""

    def __init__(self, app: Any, sock: socket.socket | None = None) -> None:
        self.sock = sock or listening_socket()
        self.port = port_of(self.sock)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                access_log=False, lifespan="on", log_level="warning",
                                timeout_graceful_shutdown=1, **uvicorn_options())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()  # (uvicorn closes it too, unless the server never started)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def demo_app(settings: Settings, **kw: Any) -> Any:
    """`create_app` with the demo's routes (its JWKS, tokens, web app), as `kilde demo` builds
    it; the settings must be demo settings (`e2e_settings`)."""
    return create_app(settings, extra_routes=demo_routes(settings), **kw)


def e2e_settings(gateway_port: int, sandbox_url: str, audit_url: str, **overrides: Any) -> Settings:
    """Demo settings for a gateway on `gateway_port` against the sandbox at `sandbox_url`:
    the sandbox's HelseID simulator is trusted for callers' tokens (mint them with
    `gateway.demo.mint_token(..., issuer=settings.auth.issuer)` or the simulator) and gives
    Kilde its upstream tokens (token exchange per caller and source)."""
    settings = Settings.from_env({"KILDE_MODE": "demo"})
    helseid, audiences = sandbox_helseid.kilde_settings(sandbox_url)
    auth = replace(settings.auth, issuer=helseid["issuer"],
                   jwks_url=sandbox_helseid.jwks_url(helseid["issuer"]))
    timeout = overrides.pop("source_timeout", SOURCE_TIMEOUT)
    # the shared stack tests live, unretried behaviour with no breaker carrying failures from
    # one test into the next; cache and resilience tests build their own stack with them
    overrides.setdefault("cache", replace(settings.cache, enabled=False))
    overrides.setdefault("resilience", replace(settings.resilience, enabled=False))
    connectors = {n: ConnectorSettings(n, timeout=timeout) for n in BUILTIN_CONNECTORS}
    overrides.setdefault("deadline_seconds", DEADLINE)
    settings = replace(settings, port=gateway_port, auth=auth, connectors=connectors,
                       audit=replace(settings.audit, url=audit_url), **overrides)
    settings = settings.with_sandbox(sandbox_url).with_helseid(helseid, audiences)
    return replace(settings, helseid=replace(settings.helseid, timeout_seconds=SOURCE_TIMEOUT))


@contextmanager
def running(app: Any, sock: socket.socket | None = None) -> Iterator[ServerThread]:
    server = ServerThread(app, sock)
    server.start()
    try:
        yield server
    finally:
        server.stop()
