"""GraphQL over graphql-transport-ws at /graphql, on a real socket (uvicorn + the `websockets`
client): authenticated like a query, decided per change by the same policies, every update
audited, closed when the token expires, and the protocol's close codes for every mistake."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from connectors.credentials import dpop_proof, generate_key
from gateway.app import create_app
from gateway.demo import mint_event_token, mint_token
from gateway.settings import LiveSettings, Settings
from sandbox.app import create_app as create_sandbox
from tests.gateway.inprocess import ISSUER, LEGEVAKT_PATIENT, _Upstreams, settings_for
from tests.gateway.live_client import HUNG, UPDATES, Live, socket
from tests.servers import ServerThread

EVENT_KEY = generate_key()
OTHER_PATIENT = "01017012181"  # valid mod-11, in no attest


@dataclass
class Server:
    thread: ServerThread
    settings: Settings
    audit_path: Path

    @property
    def url(self) -> str:
        return self.thread.url

    def token(self, persona: str = "legevakt-lege", patient: str | None = LEGEVAKT_PATIENT,
              **kw: Any) -> str:
        return mint_token(persona, patient, issuer=ISSUER, audience=self.settings.auth.audience,
                          **kw)

    def init(self, persona: str = "legevakt-lege", patient: str | None = LEGEVAKT_PATIENT,
             **kw: Any) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(persona, patient, **kw)}"}

    async def event(self, **event: Any) -> None:
        """The event store posts a change (DPoP-bound: every mode takes it)."""
        token = mint_event_token(issuer=ISSUER, audience=self.settings.auth.audience,
                                 jkt=EVENT_KEY.thumbprint)
        url = f"{self.url}/events"
        async with httpx.AsyncClient() as client:
            r = await client.post(url, json={"patient": LEGEVAKT_PATIENT, **event}, headers={
                "authorization": f"DPoP {token}",
                "dpop": dpop_proof(EVENT_KEY, "POST", url, access_token=token)})
        assert r.status_code == 202, r.text

    async def metric(self, name: str) -> int:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{self.url}/metrics")).text
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        return int(float(match.group(1))) if match else 0

    async def watchers(self) -> int:
        return await self.metric("kilde_live_watchers")

    async def until_watching(self, count: int = 1) -> None:
        deadline = time.monotonic() + HUNG
        while await self.watchers() < count:
            assert time.monotonic() < deadline, "the subscription never started"
            await asyncio.sleep(0.02)

    def audit_rows(self) -> list[tuple[str, str, str]]:
        with sqlite3.connect(self.audit_path) as db:
            bodies = [r[0] for r in db.execute("SELECT body FROM audit_events ORDER BY seq")]
        return [(json.loads(b)["outcome"], json.loads(b)["reason"], b) for b in bodies]


def _serve(settings: Settings) -> ServerThread:
    app = create_app(settings, transport=_Upstreams(create_sandbox({})))
    thread = ServerThread(app)
    thread.start()
    return thread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    audit = tmp_path / "audit.sqlite3"
    settings = settings_for(f"sqlite:///{audit}",
                            live=LiveSettings(init_timeout_seconds=1.0,
                                              max_connections_per_client=3))
    thread = _serve(settings)
    yield Server(thread, settings, audit)
    thread.stop()


@pytest.fixture
async def subscriber(server: Server) -> AsyncIterator[Live]:
    async with socket(f"{server.url}/graphql") as live:
        assert (await live.init(server.init()))["type"] == "connection_ack"
        await live.subscribe("1", UPDATES, {"nin": LEGEVAKT_PATIENT})
        await server.until_watching()
        yield live


async def test_a_subscriber_hears_a_change_of_its_patient(server: Server,
                                                          subscriber: Live) -> None:
    await server.event(source="municipal", categories=["treatment_limitations"],
                       changedAt="2026-12-02T01:00:00Z")
    message = await subscriber.recv()
    assert message["type"] == "next"
    assert message["id"] == "1"
    assert message["payload"] == {"data": {"patientUpdates": {
        "source": "municipal", "categories": ["TREATMENT_LIMITATIONS"],
        "changedAt": "2026-12-02T01:00:00+00:00", "origin": "SOURCE_EVENT"}}}


async def test_an_event_of_every_category_names_only_those_the_caller_may_see(
        server: Server) -> None:
    async with socket(f"{server.url}/graphql") as live:
        await live.init(server.init("helsefagarbeider"))
        await live.subscribe("hf", UPDATES, {"nin": LEGEVAKT_PATIENT})
        await server.until_watching()
        await server.event(source="municipal")  # every category the store serves
        update = (await live.recv())["payload"]["data"]["patientUpdates"]
    # a helsefagarbeider sees neither conditions nor documents (policies/defaults.toml)
    assert update["categories"] == ["CRITICAL_INFORMATION", "MEDICATIONS",
                                    "MUNICIPAL_SERVICES", "TREATMENT_LIMITATIONS"]


async def test_a_client_who_may_not_see_the_category_hears_nothing_of_it(
        server: Server, subscriber: Live) -> None:
    async with socket(f"{server.url}/graphql") as coc:
        await coc.init(server.init("saksbehandler"))  # COC: municipal services only
        await coc.subscribe("coc", UPDATES, {"nin": LEGEVAKT_PATIENT})
        await server.until_watching(2)
        await server.event(source="municipal", categories=["treatment_limitations"])
        await server.event(source="kjernejournal")  # nothing a case handler may see either
        await server.event(source="municipal", categories=["municipal_services"])
        # the physician hears all three ...
        heard = [(await subscriber.recv())["payload"]["data"]["patientUpdates"]["source"]
                 for _ in range(3)]
        assert heard == ["municipal", "kjernejournal", "municipal"]
        # ... the case handler only the last: the first message it gets is that one
        first = (await coc.recv())["payload"]["data"]["patientUpdates"]
        assert first["categories"] == ["MUNICIPAL_SERVICES"]


async def test_a_change_in_another_municipalitys_store_is_not_heard_across_the_border(
        server: Server) -> None:
    async with socket(f"{server.url}/graphql") as trondheim:
        await trondheim.init(server.init("lege-annen-kommune"))
        await trondheim.subscribe("t", UPDATES, {"nin": LEGEVAKT_PATIENT})
        await server.until_watching()
        await server.event(source="municipal", municipality="0301")  # Oslo's store
        await server.event(source="municipal", municipality="5001")  # Trondheim's own
        update = (await trondheim.recv())["payload"]["data"]["patientUpdates"]
        assert update["source"] == "municipal"
    audited = [body for _, _, body in server.audit_rows() if "CHANGED" in body]
    assert len(audited) == 1  # the one it heard


async def test_every_update_sent_is_audited_and_a_refused_start_too(
        server: Server, subscriber: Live) -> None:
    await server.event(source="pll")
    assert (await subscriber.recv())["type"] == "next"
    rows = server.audit_rows()
    notices = [r for r in rows if '"status":"CHANGED"' in r[2]]
    assert len(notices) == 1
    assert notices[0][0] == "DELIVERED"
    assert LEGEVAKT_PATIENT in notices[0][2]
    async with socket(f"{server.url}/graphql") as live:
        await live.init(server.init())  # attested for LEGEVAKT_PATIENT only
        await live.subscribe("x", UPDATES, {"nin": OTHER_PATIENT})
        refused = await live.recv()
    assert refused["type"] == "error"
    assert refused["payload"][0]["extensions"]["code"] == "FORBIDDEN"
    denied = [r for r in server.audit_rows() if r[0] == "DENIED"]
    assert [r[1] for r in denied] == ["CARE_RELATIONSHIP_MISSING"]
    assert OTHER_PATIENT in denied[0][2]


async def test_a_query_over_the_socket_is_answered_and_audited(server: Server) -> None:
    async with socket(f"{server.url}/graphql") as live:
        await live.init(server.init())
        await live.subscribe("q", "query($nin: String!) { patient(nin: $nin) { "
                             "treatmentLimitations { id } } }", {"nin": LEGEVAKT_PATIENT})
        answer = await live.recv()
        assert answer["type"] == "next"
        assert answer["payload"]["data"]["patient"] is not None
        assert (await live.recv()) == {"type": "complete", "id": "q"}
    assert [r[0] for r in server.audit_rows()] == ["DELIVERED"]


async def test_a_subscription_over_http_is_refused_with_a_clear_error(server: Server) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{server.url}/graphql", headers=server.init(), json={
            "query": UPDATES, "variables": {"nin": LEGEVAKT_PATIENT}})
    error = r.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "graphql-transport-ws" in error["message"]


async def test_a_subscription_outliving_its_token_is_closed(server: Server) -> None:
    async with socket(f"{server.url}/graphql") as live:
        # a token that expires in 4 seconds; the door closes at its exp
        assert (await live.init(server.init(now=time.time() - 3596)))["type"] == \
            "connection_ack"
        with contextlib.suppress(ConnectionClosed):  # a busy machine may reach exp first
            await live.subscribe("1", UPDATES, {"nin": LEGEVAKT_PATIENT})
        assert await live.closed() == (4403, "Token expired")
    deadline = time.monotonic() + HUNG
    while await server.watchers() > 0:  # and the subscription ended with it
        assert time.monotonic() < deadline, "the subscription outlived the connection"
        await asyncio.sleep(0.02)


async def test_an_invalid_identity_number_is_a_bad_user_input(server: Server) -> None:
    async with socket(f"{server.url}/graphql") as live:
        await live.init(server.init())
        await live.subscribe("1", UPDATES, {"nin": "14033841388"})
        error = await live.recv()
    assert error["type"] == "error"
    assert error["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "14033841388" not in str(error)


PROTOCOL_ERRORS: list[tuple[str, list[Any], int]] = [
    ("garbage", ["{not json"], 4400),
    ("not an object", ["[1, 2]"], 4400),
    ("unknown type", [{"type": "connection_init"}, {"type": "hello"}], 4400),
    ("subscribe before init", [{"type": "subscribe", "id": "1",
                                "payload": {"query": "{ me { kind } }"}}], 4401),
    ("second init", [{"type": "connection_init"}, {"type": "connection_init"}], 4429),
    ("subscribe without id", [{"type": "connection_init"},
                              {"type": "subscribe", "payload": {"query": "{ me { kind } }"}}],
     4400),
    ("bad payload", [{"type": "connection_init"},
                     {"type": "subscribe", "id": "1", "payload": {"query": 3}}], 4400),
]


@pytest.mark.parametrize(("case", "messages", "code"), PROTOCOL_ERRORS,
                         ids=[c[0] for c in PROTOCOL_ERRORS])
async def test_protocol_errors_close_with_the_protocols_codes(
        server: Server, case: str, messages: list[Any], code: int) -> None:
    acked = False
    async with socket(f"{server.url}/graphql") as live:
        for message in messages:
            if isinstance(message, dict) and message["type"] == "connection_init":
                await live.send({**message, "payload": server.init()})
                if not acked:
                    assert (await live.recv())["type"] == "connection_ack"
                    acked = True
                continue
            await live.send(message)
        assert (await live.closed())[0] == code


async def test_an_id_in_use_closes_with_4409(server: Server, subscriber: Live) -> None:
    await subscriber.subscribe("1", UPDATES, {"nin": LEGEVAKT_PATIENT})
    assert (await subscriber.closed())[0] == 4409


async def test_a_complete_stops_the_subscription_and_the_id_may_be_used_again(
        server: Server, subscriber: Live) -> None:
    await subscriber.send({"type": "complete", "id": "1"})
    deadline = time.monotonic() + HUNG
    while await server.watchers() > 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await subscriber.subscribe("1", UPDATES, {"nin": LEGEVAKT_PATIENT})
    await server.until_watching()
    await subscriber.send({"type": "ping", "payload": {"n": 1}})
    assert await subscriber.recv() == {"type": "pong", "payload": {"n": 1}}


async def test_no_subprotocol_closes_with_4406(server: Server) -> None:
    async with socket(f"{server.url}/graphql", subprotocols=()) as live:
        assert (await live.closed())[0] == 4406


async def test_no_connection_init_in_time_closes_with_4408(server: Server) -> None:
    async with socket(f"{server.url}/graphql") as live:
        assert (await live.closed())[0] == 4408


REFUSED_INITS: list[tuple[str, Any]] = [
    ("no token", {}),
    ("malformed token", {"authorization": "Bearer not-a-jwt"}),
    ("a machine's token", "machine"),
    ("payload not an object", ["Bearer x"]),
]


@pytest.mark.parametrize(("case", "payload"), REFUSED_INITS, ids=[c[0] for c in REFUSED_INITS])
async def test_a_refused_connection_init_closes_and_says_nothing_personal(
        server: Server, case: str, payload: Any) -> None:
    if payload == "machine":
        payload = {"authorization": "Bearer " + mint_event_token(
            issuer=ISSUER, audience=server.settings.auth.audience)}
    async with socket(f"{server.url}/graphql") as live:
        await live.send({"type": "connection_init", "payload": payload})
        code, reason = await live.closed()
    assert code in (4403, 4400)
    assert not re.search(r"\d{11}", reason)


async def test_connections_per_client_are_limited(server: Server) -> None:
    async with socket(f"{server.url}/graphql") as a, socket(f"{server.url}/graphql") as b, \
            socket(f"{server.url}/graphql") as c, socket(f"{server.url}/graphql") as d:
        for live in (a, b, c):
            assert (await live.init(server.init()))["type"] == "connection_ack"
        await d.send({"type": "connection_init", "payload": server.init()})
        assert (await d.closed())[0] == 1013
    # closed ones are given back (the server notices the closes on its own time)
    deadline = time.monotonic() + HUNG
    while await server.metric("kilde_live_connections") > 0:
        assert time.monotonic() < deadline, "connections were never given back"
        await asyncio.sleep(0.02)
    async with socket(f"{server.url}/graphql") as e:
        assert (await e.init(server.init()))["type"] == "connection_ack"


def test_the_live_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"KILDE_MODE": "demo", "KILDE_LIVE__MAX_OPERATIONS": "3",
                                  "KILDE_LIVE__INIT_TIMEOUT_SECONDS": "2.5"})
    assert (settings.live.max_operations, settings.live.init_timeout_seconds) == (3, 2.5)
    assert replace(settings.live, max_connections_per_client=0).max_connections_per_client == 0


async def test_an_attest_that_grows_too_old_ends_the_subscription_at_the_next_change(
        server: Server) -> None:
    async with socket(f"{server.url}/graphql") as live:
        # the attest (ATT-58: valid 60 minutes after its toa) is 2 seconds from too old
        await live.init(server.init(attest_age=3598))
        await live.subscribe("1", UPDATES, {"nin": LEGEVAKT_PATIENT})
        await server.until_watching()
        deadline = time.monotonic() + HUNG
        while True:  # each change is decided again: updates until the attest is too old
            await server.event(source="pll")
            message = await live.recv()
            if "errors" in message.get("payload", {}):
                break
            assert message["payload"]["data"]["patientUpdates"]["source"] == "pll"
            assert time.monotonic() < deadline, "the attest never grew old"
        assert message["type"] == "next"
        assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert (await live.recv()) == {"type": "complete", "id": "1"}
    assert [r[1] for r in server.audit_rows() if r[0] == "DENIED"] == ["ATTEST_EXPIRED"]


@pytest.fixture
def dpop_server(tmp_path: Path) -> Iterator[Server]:
    audit = tmp_path / "audit.sqlite3"
    base = settings_for(f"sqlite:///{audit}")
    settings = replace(base, auth=replace(base.auth, dpop="required"))
    thread = _serve(settings)
    yield Server(thread, settings, audit)
    thread.stop()


def _dpop_init(server: Server, *, method: str = "GET", url: str | None = None,
               key: Any = None) -> dict[str, str]:
    key = key or DPOP_KEY
    token = server.token(jkt=DPOP_KEY.thumbprint)
    proof = dpop_proof(key, method, url or f"{server.url}/graphql", access_token=token)
    return {"authorization": f"DPoP {token}", "dpop": proof}


DPOP_KEY = generate_key()


async def test_with_dpop_required_the_handshake_proof_is_get_on_the_http_url(
        dpop_server: Server) -> None:
    async with socket(f"{dpop_server.url}/graphql") as live:
        assert (await live.init(_dpop_init(dpop_server)))["type"] == "connection_ack"
        await live.subscribe("1", UPDATES, {"nin": LEGEVAKT_PATIENT})
        await dpop_server.until_watching()
        await dpop_server.event(source="municipal", categories=["treatment_limitations"])
        assert (await live.recv())["type"] == "next"


def _bearer(server: Server) -> dict[str, str]:
    return {"authorization": f"Bearer {server.token(jkt=DPOP_KEY.thumbprint)}"}


WRONG_PROOFS: list[tuple[str, Any]] = [
    ("a bearer token", _bearer),
    ("no proof", lambda s: {"authorization": _dpop_init(s)["authorization"]}),
    ("proof for POST", lambda s: _dpop_init(s, method="POST")),
    ("proof naming the ws URL", lambda s: _dpop_init(
        s, url=s.url.replace("http", "ws") + "/graphql")),
    ("proof for another path", lambda s: _dpop_init(s, url=f"{s.url}/events")),
    ("proof by another key", lambda s: _dpop_init(s, key=generate_key())),
]


@pytest.mark.parametrize(("case", "make"), WRONG_PROOFS, ids=[w[0] for w in WRONG_PROOFS])
async def test_with_dpop_required_anything_else_closes_4403(
        dpop_server: Server, case: str, make: Any) -> None:
    async with socket(f"{dpop_server.url}/graphql") as live:
        await live.send({"type": "connection_init", "payload": make(dpop_server)})
        code, reason = await live.closed()
    assert code == 4403
    assert reason.startswith("Forbidden")


async def test_a_replayed_handshake_proof_is_refused(dpop_server: Server) -> None:
    payload = _dpop_init(dpop_server)
    async with socket(f"{dpop_server.url}/graphql") as live:
        assert (await live.init(payload))["type"] == "connection_ack"
    async with socket(f"{dpop_server.url}/graphql") as again:
        await again.send({"type": "connection_init", "payload": payload})
        assert (await again.closed())[0] == 4403
