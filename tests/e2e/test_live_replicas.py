"""Two gateway replicas on one Redis, over real sockets: a subscriber on one hears a change
posted to the other; with Redis cut away from a replica during a subscription, that replica
still delivers the changes it hears itself, and when Redis returns its subscribers are told to
re-query (RESYNC) and hear the other replica again."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.demo import mint_event_token, mint_token
from sandbox.app import create_app as create_sandbox
from tests.conftest import _need
from tests.gateway.inprocess import ISSUER, LEGEVAKT_PATIENT, _Upstreams, settings_for
from tests.gateway.live_client import HUNG, UPDATES, Live, socket
from tests.proxy import TcpProxy
from tests.servers import ServerThread

pytestmark = [pytest.mark.slow, pytest.mark.redis]


class Replica:
    def __init__(self, redis_url: str, key: str, namespace: str) -> None:
        base = settings_for()
        self.settings = replace(base, cache=replace(
            base.cache, url=redis_url, key=key, namespace=namespace, retry_seconds=0.1,
            op_timeout_seconds=5.0))  # a cut resets at once; a slow Redis under load is not a cut
        self.thread = ServerThread(create_app(self.settings,
                                              transport=_Upstreams(create_sandbox({}))))
        self.thread.start()
        self.url = self.thread.url

    def token(self) -> str:
        return mint_token("legevakt-lege", LEGEVAKT_PATIENT, issuer=ISSUER,
                          audience=self.settings.auth.audience)

    async def event(self, source: str, expect: int = 202) -> None:
        token = mint_event_token(issuer=ISSUER, audience=self.settings.auth.audience)
        async with httpx.AsyncClient() as client:
            r = await client.post(f"{self.url}/events", headers={
                "authorization": f"Bearer {token}"}, json={"source": source,
                                                            "patient": LEGEVAKT_PATIENT})
        assert r.status_code == expect, r.text

    async def until(self, name: str, value: str) -> None:
        """Wait until /readyz or /metrics says so."""
        deadline = time.monotonic() + HUNG
        async with httpx.AsyncClient() as client:
            while True:
                if name == "live":
                    if (await client.get(f"{self.url}/readyz")).json().get("live") == value:
                        return
                else:
                    text = (await client.get(f"{self.url}/metrics")).text
                    match = re.search(rf"^{name} (\S+)$", text, re.M)
                    if match and float(match.group(1)) >= float(value):
                        return
                assert time.monotonic() < deadline, f"{name} never reached {value}"
                await asyncio.sleep(0.05)


@pytest.fixture
def replicas() -> Iterator[tuple[Replica, Replica, TcpProxy]]:
    _need("Redis", "127.0.0.1", 6379)
    proxy = TcpProxy("127.0.0.1", 6379)
    key, namespace = secrets.token_hex(24), f"live-e2e-{secrets.token_hex(4)}:"
    a = Replica(f"redis://{proxy.url_host}/0", key, namespace)
    b = Replica("redis://127.0.0.1:6379/0", key, namespace)
    try:
        yield a, b, proxy
    finally:
        a.thread.stop()
        b.thread.stop()
        proxy.close()


async def _subscribe(replica: Replica, live: Live) -> None:
    assert (await live.init({"authorization": f"Bearer {replica.token()}"}))["type"] == \
        "connection_ack"
    await live.subscribe("1", UPDATES, {"nin": LEGEVAKT_PATIENT})
    await replica.until("kilde_live_watchers", "1")


async def _source(live: Live) -> Any:
    update = (await live.recv())["payload"]["data"]["patientUpdates"]
    return update["source"] if update["origin"] != "RESYNC" else "RESYNC"


async def test_replicas_share_changes_and_survive_redis_going_away_during_a_subscription(
        replicas: tuple[Replica, Replica, TcpProxy]) -> None:
    a, b, proxy = replicas
    await a.until("live", "ok")
    await b.until("live", "ok")
    async with socket(f"{a.url}/graphql") as on_a, socket(f"{b.url}/graphql") as on_b:
        await _subscribe(a, on_a)
        await _subscribe(b, on_b)
        await a.event("municipal")
        assert await _source(on_b) == "municipal"  # posted to a, heard on b
        assert await _source(on_a) == "municipal"
        await b.event("pll")
        assert await _source(on_a) == "pll"
        assert await _source(on_b) == "pll"

        proxy.cut()  # a loses Redis in the middle of its subscription
        await a.until("live", "degraded")
        # a still delivers its own; its cache cannot record the eviction, so the event store
        # is told to send it again (503), but a's subscriber has heard it
        await a.event("kjernejournal", expect=503)
        assert await _source(on_a) == "kjernejournal"
        await b.event("eresept")  # b's own subscriber hears b; a cannot, for now
        assert await _source(on_b) == "eresept"

        proxy.restore()
        await a.until("live", "ok")
        assert await _source(on_a) == "RESYNC"  # it may have missed eresept: ask again
        await b.event("proevesvar")
        assert await _source(on_a) == "proevesvar"
        assert await _source(on_b) == "proevesvar"  # b never heard a's kjernejournal
