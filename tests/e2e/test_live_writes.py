"""The Done-when of #17's live half, over real HTTP and a real WebSocket against a demo gateway
and its own sandbox: a subscriber of the multi-service patient hears a recordTreatmentLimitation
(from Kilde's own write, and again from the municipal store's event store), a subscriber whose
token may not see treatment limitations hears nothing of it, every update sent is audited, and
`kilde audit verify` passes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.demo import mint_event_token, mint_token
from sandbox import world
from sandbox.app import create_app as create_sandbox
from tests.e2e.auditing import kilde_audit_verify, read_events
from tests.gateway.live_client import UPDATES, Live, socket
from tests.servers import ServerThread, demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

MULTI = world.by_tag("multi-service").nin
RECORD = """mutation($nin: String!, $input: TreatmentLimitationInput!) {
  recordTreatmentLimitation(nin: $nin, input: $input) { id provenance { source } } }"""
HLR = {"code": "304253006", "display": "Ikke gjenoppliv (HLR-minus)",
       "decidedBy": "Dr. Sykehjem", "reason": "Pasientens ønske, drøftet med pårørende",
       "decidedAt": "2026-11-30T10:00:00+01:00"}


class LiveStack:
    def __init__(self, gateway: ServerThread, settings: Any, audit_url: str) -> None:
        self.gateway, self.settings, self.audit_url = gateway, settings, audit_url
        self.url = gateway.url

    def token(self, persona: str) -> str:
        return mint_token(persona, MULTI, issuer=self.settings.auth.issuer,
                          audience=self.settings.auth.audience)

    async def watchers(self) -> float:
        async with httpx.AsyncClient() as client:
            for line in (await client.get(f"{self.url}/metrics")).text.splitlines():
                if line.startswith("kilde_live_watchers "):
                    return float(line.split()[1])
        return 0.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    audit_url = f"sqlite:///{tmp_path_factory.mktemp('live-writes') / 'audit.sqlite3'}"
    sock = listening_socket()
    gateway_url = f"http://127.0.0.1:{port_of(sock)}"
    # the sandbox's event store reports each record stored to this gateway's /events
    with running(create_sandbox({"KILDE_SANDBOX__EVENTS_URL": f"{gateway_url}/events"})) as sb:
        settings = e2e_settings(port_of(sock), sb.url, audit_url)
        with running(demo_app(settings), sock) as gateway:
            yield LiveStack(gateway, settings, audit_url)


async def _subscribed(stack: LiveStack, live: Live, persona: str, count: int) -> None:
    ack = await live.init({"authorization": f"Bearer {stack.token(persona)}"})
    assert ack["type"] == "connection_ack"
    await live.subscribe(persona, UPDATES, {"nin": MULTI})
    for _ in range(1500):  # until the subscription watches (bounded: a hung test ends)
        if await stack.watchers() >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the subscription never started")


async def _update(live: Live) -> dict[str, Any]:
    message = await live.recv()
    assert message["type"] == "next", message
    return message["payload"]["data"]["patientUpdates"]  # type: ignore[no-any-return]


async def test_a_write_reaches_the_subscriber_who_may_see_it_and_no_other(
        stack: LiveStack) -> None:
    async with socket(f"{stack.url}/graphql") as lege, \
            socket(f"{stack.url}/graphql") as coc:
        await _subscribed(stack, lege, "legevakt-lege", 1)
        await _subscribed(stack, coc, "saksbehandler", 2)  # COC: municipal services only
        async with httpx.AsyncClient(timeout=15) as http:
            r = await http.post(f"{stack.url}/graphql", headers={
                "authorization": f"Bearer {stack.token('legevakt-lege')}"}, json={
                "query": RECORD, "variables": {"nin": MULTI, "input": {
                    **HLR, "clientIdentifier": uuid.uuid4().hex}}})
            assert r.json()["data"]["recordTreatmentLimitation"]["provenance"]["source"] == \
                "municipal", r.text
            heard = [await _update(lege), await _update(lege)]
            # Kilde's own write, and the store's event store reporting the record it stored
            assert sorted(u["origin"] for u in heard) == ["KILDE_WRITE", "SOURCE_EVENT"]
            assert all(u["categories"] == ["TREATMENT_LIMITATIONS"] for u in heard)
            assert all(u["source"] == "municipal" for u in heard)
            # the case handler heard nothing of it: the first it hears is a change it may see
            token = mint_event_token(issuer=stack.settings.auth.issuer,
                                     audience=stack.settings.auth.audience)
            r = await http.post(f"{stack.url}/events", headers={
                "authorization": f"Bearer {token}"}, json={
                "source": "municipal", "patient": MULTI, "categories": ["municipal_services"]})
            assert r.status_code == 202, r.text
            first = await _update(coc)
            assert (first["categories"], first["origin"]) == (["MUNICIPAL_SERVICES"],
                                                             "SOURCE_EVENT")
    events = await asyncio.to_thread(read_events, stack.audit_url)
    notices = [e for e in events if any(d.status == "CHANGED" for d in e.deliveries)]
    # the physician was sent both treatment-limitation updates and the services one, the case
    # handler the services one only: each update sent is audited, nothing else
    assert sorted(tuple(d.category for d in e.deliveries) for e in notices) == [
        ("municipal_services",), ("municipal_services",), ("treatment_limitations",),
        ("treatment_limitations",)]
    assert all(e.outcome == "DELIVERED" and e.patient_nin == MULTI for e in notices)
    verified = await asyncio.to_thread(kilde_audit_verify, stack.audit_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
