"""Crash test: under concurrent load the gateway process is SIGKILLed; every response a client
received with patient data must have its audit event in the store afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from gateway.audit import verify_url
from gateway.demo import mint_token
from sandbox.world import by_tag
from tests.e2e.auditing import read_events, serve_env, start_serve, stop
from tests.e2e.conftest import Stack
from tests.servers import listening_socket, port_of

pytestmark = pytest.mark.slow

CLIENTS = 16
KILL_AFTER_S = 1.5
MAX_WAIT_S = 20.0  # on a loaded machine, wait for CLIENTS deliveries before killing
QUERY = """query($nin: String!) { patient(nin: $nin) {
  nin treatmentLimitations { code { code } } medications { name } } }"""


async def _load(url: str, jobs: list[tuple[str, str]], proc: subprocess.Popen[bytes]) -> list[
        tuple[int, str, bytes]]:
    """CLIENTS clients post back to back until the gateway dies: (status, request id, body)."""
    received: list[tuple[int, str, bytes]] = []
    killed = asyncio.Event()
    enough = asyncio.Event()

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        nin, token = jobs[i % len(jobs)]
        body = json.dumps({"query": QUERY, "variables": {"nin": nin}})
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        while True:
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    payload = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                if killed.is_set():
                    return
                continue
            received.append((resp.status, resp.headers.get("x-request-id", ""), payload))
            if len(received) >= CLIENTS:
                enough.set()

    async def killer() -> None:
        await asyncio.sleep(KILL_AFTER_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), MAX_WAIT_S)
        proc.kill()  # SIGKILL: no shutdown, no flush, no lifespan exit
        killed.set()

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
        await asyncio.gather(killer(), *(client(i, session) for i in range(CLIENTS)))
    return received


def _with_patient_data(status: int, payload: bytes) -> bool:
    if status != 200:
        return False
    try:
        patient = json.loads(payload)["data"]["patient"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(patient and (patient["treatmentLimitations"] or patient["medications"]))


def test_every_delivered_response_is_audited_when_the_gateway_is_killed(
    stack: Stack, tmp_path: Path
) -> None:
    stack.reset()
    audit_url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    sock = listening_socket()
    port = port_of(sock)
    settings = stack.settings  # the same sandbox HelseID issues the callers' tokens
    jobs = [(p.nin, mint_token(persona, p.nin, issuer=settings.auth.issuer,
                               audience=settings.auth.audience))
            for persona, p in (("legevakt-lege", by_tag("legevakt-hlr")),
                               ("hjemmesykepleier", by_tag("multi-service")))]
    proc = start_serve(serve_env(port, stack.sandbox.url, audit_url), tmp_path / "gateway.log",
                       sock)
    try:
        received = asyncio.run(_load(f"http://127.0.0.1:{port}/graphql", jobs, proc))
    finally:
        stop(proc, signal.SIGKILL)
    assert proc.returncode == -9

    delivered = [rid for status, rid, payload in received if _with_patient_data(status, payload)]
    assert len(delivered) >= CLIENTS, f"only {len(delivered)} deliveries before the kill"
    assert len(set(delivered)) == len(delivered)
    recorded = {e.request_id for e in read_events(audit_url) if e.outcome == "DELIVERED"}
    missing = [rid for rid in delivered if rid not in recorded]
    assert not missing, f"{len(missing)} of {len(delivered)} delivered responses have no event"
    assert asyncio.run(verify_url(audit_url)).ok
