"""`kilde serve` drains in-flight requests on SIGTERM before it exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from gateway.demo import mint_token
from sandbox.app import create_app as create_sandbox
from sandbox.helseid import kilde_environment
from tests.servers import inherited, listening_socket, port_of, running

NIN = "14033841389"
QUERY = "query($nin: String!) { patient(nin: $nin) { alerts { title } sources { status } } }"


def _env(port: int, sandbox: str, audit: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILDE_")}
    env.update({
        "KILDE_MODE": "demo",  # the gateway serves the demo JWKS itself
        "KILDE_PORT": str(port),
        **kilde_environment(sandbox),
        "KILDE_AUDIT__URL": f"sqlite:///{audit}",
        "KILDE_DEADLINE_SECONDS": "6",
        "KILDE_CONNECTORS__MUNICIPAL__STORES": ",".join(
            f"{n}={sandbox}/municipal/{n}" for n in ("0301", "4601", "5001")),
        "KILDE_LOG_LEVEL": "WARNING",
    })
    for name in ("kjernejournal", "pll", "eresept", "proevesvar"):
        env[f"KILDE_CONNECTORS__{name.upper()}__BASE_URL"] = f"{sandbox}/{name}"
        env[f"KILDE_CONNECTORS__{name.upper()}__TIMEOUT"] = "5"
    return env


@pytest.mark.slow
def test_sigterm_lets_the_in_flight_request_finish_then_exits(tmp_path: Path) -> None:
    with running(create_sandbox({})) as sandbox:
        httpx.put(f"{sandbox.url}/_sandbox/faults/kjernejournal",
                  json={"mode": "none", "latency_ms": 1500}).raise_for_status()
        sock = listening_socket()
        port = port_of(sock)
        kilde = Path(sys.executable).with_name("kilde")
        with inherited(sock) as (fd_args, popen):
            proc = subprocess.Popen([str(kilde), "serve", *fd_args],
                                    env=_env(port, sandbox.url, tmp_path / "audit.sqlite3"),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    **popen)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, "kilde serve exited"
                assert time.monotonic() < deadline, "kilde serve did not start"
                time.sleep(0.1)
            token = mint_token("legevakt-lege", NIN, issuer=f"{sandbox.url}/helseid",
                               audience="kilde")
            answer: dict[str, httpx.Response] = {}

            def ask() -> None:
                answer["r"] = httpx.post(f"{base}/graphql", json={
                    "query": QUERY, "variables": {"nin": NIN}},
                    headers={"authorization": f"Bearer {token}"}, timeout=15)

            asker = threading.Thread(target=ask)
            asker.start()
            while not httpx.get(f"{sandbox.url}/_sandbox/requests").json().get("kjernejournal"):
                time.sleep(0.02)  # the request is now in flight, waiting on kjernejournal
            proc.send_signal(signal.SIGTERM)
            asker.join(timeout=15)
            # uvicorn drains, then re-raises the signal it caught, so the exit reports SIGTERM
            assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
            response = answer["r"]
            assert response.status_code == 200
            statuses = {s["status"] for s in response.json()["data"]["patient"]["sources"]}
            assert "TIMEOUT" not in statuses
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
