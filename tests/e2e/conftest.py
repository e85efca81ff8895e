"""End-to-end fixtures: the sandbox and the gateway as real servers on loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.demo import mint_token
from gateway.settings import Settings
from sandbox.app import create_app as create_sandbox
from tests.e2e.client import Client
from tests.servers import ServerThread, demo_app, e2e_settings, listening_socket, port_of, running


class Stack:
    def __init__(self, gateway: ServerThread, sandbox: ServerThread, settings: Settings,
                 audit_path: Path) -> None:
        self.gateway = gateway
        self.sandbox = sandbox
        self.settings = settings
        self.audit_path = audit_path

    def token(self, persona: str, patient: str | None = None, **kw: object) -> str:
        return mint_token(persona, patient, issuer=self.settings.auth.issuer,
                          audience=self.settings.auth.audience, **kw)  # type: ignore[arg-type]

    def query(self, query: str, token: str | None, variables: dict[str, object] | None = None,
              timeout: float = 10.0) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.gateway.url}/graphql", json={"query": query,
                          "variables": variables or {}}, headers=headers, timeout=timeout)

    def fault(self, source: str, **knobs: object) -> None:
        r = httpx.put(f"{self.sandbox.url}/_sandbox/faults/{source}", json=knobs)
        r.raise_for_status()

    def requests(self) -> dict[str, int]:
        return httpx.get(f"{self.sandbox.url}/_sandbox/requests").json()  # type: ignore[no-any-return]

    def reset(self) -> None:
        for source in ("municipal", "kjernejournal", "pll", "eresept", "proevesvar",
                       "persontjenesten"):
            self.fault(source, mode="none", latency_ms=0, jitter_ms=0, error_rate=0)
        httpx.delete(f"{self.sandbox.url}/_sandbox/requests")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    audit_path = tmp_path_factory.mktemp("audit") / "audit.sqlite3"
    with running(create_sandbox({})) as sandbox:
        sock = listening_socket()
        settings = e2e_settings(port_of(sock), sandbox.url, f"sqlite:///{audit_path}")
        with running(demo_app(settings), sock) as gateway:
            yield Stack(gateway, sandbox, settings, audit_path)


@pytest.fixture
def e2e(stack: Stack) -> Iterator[Stack]:
    stack.reset()
    yield stack
    stack.reset()


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[Client]:
    """A keep-alive client to the shared stack, one per test module."""
    stack.reset()
    client = Client(stack.gateway.url, stack.sandbox.url, stack.settings)
    yield client
    client.close()


@pytest.fixture
def gw(client: Client) -> Client:
    """The module's client with the sandbox's request counters at zero."""
    client.reset_counts()
    return client
