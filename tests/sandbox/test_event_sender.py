"""The sandbox's event store tells Kilde when its data changes: a real gateway with the sandbox
mounted (as in the demo), a live subscriber on the gateway's WebSocket, and the sender posting
to the gateway's POST /events with the event store's own DPoP-bound machine token."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sandbox import events
from sandbox.app import create_app as create_sandbox
from sandbox.world import by_tag
from tests.gateway.live_client import UPDATES, socket
from tests.servers import ServerThread, demo_app, e2e_settings, listening_socket, port_of

PATIENT = by_tag("multi-service")


@dataclass
class Stack:
    url: str
    sandbox: Any
    settings: Any


@pytest.fixture
def stack(tmp_path: Any) -> Iterator[Stack]:
    sock = listening_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    sandbox = create_sandbox({"KILDE_SANDBOX__EVENTS_URL": f"{url}/events"})
    settings = e2e_settings(port_of(sock), url, f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    server = ServerThread(demo_app(settings, sandbox=sandbox), sock)
    server.start()
    yield Stack(url, sandbox, settings)
    server.stop()


def _token(stack: Stack) -> str:
    return str(stack.sandbox.state.helseid.persona_token(
        "legevakt-lege", PATIENT.nin, issuer=stack.settings.auth.issuer))


async def _watching(stack: Stack) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while True:
            text = (await client.get(f"{stack.url}/metrics")).text
            if re.search(r"^kilde_live_watchers [1-9]", text, re.M):
                return
            assert time.monotonic() < deadline, "never subscribed"
            await asyncio.sleep(0.02)


async def test_a_change_in_the_sandbox_reaches_a_subscriber_through_kilde(stack: Stack) -> None:
    sender = stack.sandbox.state.events
    assert sender is not None
    async with socket(f"{stack.url}/graphql") as live:
        await live.init({"authorization": f"Bearer {_token(stack)}"})
        await live.subscribe("1", UPDATES, {"nin": PATIENT.nin})
        await _watching(stack)
        events.current_root.set(stack.url)  # as the sandbox's middleware does per request
        sender.changed(PATIENT.nin, municipality="0301", categories=["treatment_limitations"])
        await sender.drain()
        update = (await live.recv())["payload"]["data"]["patientUpdates"]
    assert (update["source"], update["categories"], update["origin"]) == (
        "municipal", ["TREATMENT_LIMITATIONS"], "SOURCE_EVENT")
    assert (sender.sent, sender.failed) == (1, 0)


async def test_a_kilde_that_is_not_there_is_logged_without_the_patient(
        caplog: pytest.LogCaptureFixture) -> None:
    sock = listening_socket()  # bound, never served: connections are refused
    sandbox = create_sandbox({"KILDE_SANDBOX__EVENTS_URL":
                              f"http://127.0.0.1:{port_of(sock)}/events"})
    sender = sandbox.state.events
    events.current_root.set("http://sandbox.test")
    with caplog.at_level(logging.WARNING, logger="kilde.sandbox.events"):
        sender.changed(PATIENT.nin, municipality="0301")
        await sender.drain()
    sock.close()
    assert (sender.sent, sender.failed) == (0, 1)
    assert "not delivered" in caplog.text
    assert PATIENT.nin not in caplog.text


def test_no_events_url_means_no_sender() -> None:
    assert create_sandbox({}).state.events is None
