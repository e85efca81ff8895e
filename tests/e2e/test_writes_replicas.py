"""Writes across replicas and outages (#17): two gateways on one Redis answer a repeated
Idempotency-Key with the first result; with Redis gone the store's conditional create still
makes one record; a write evicts the cached read on every replica; and an audit trail lost
between attempt and outcome reports the write as unknown, never as done."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.demo import mint_token
from gateway.settings import CacheSettings
from sandbox import world
from sandbox.app import create_app as create_sandbox
from tests.conftest import _need
from tests.e2e.auditing import read_events
from tests.proxy import TcpProxy
from tests.servers import ServerThread, demo_app, e2e_settings, listening_socket, port_of, running

MULTI = world.by_tag("multi-service").nin
RECORD = """
mutation($nin: String!, $input: TreatmentLimitationInput!) {
  recordTreatmentLimitation(nin: $nin, input: $input) { id provenance { recordId } }
}"""
LIMITATIONS = """query($nin: String!) { patient(nin: $nin) {
  treatmentLimitations { provenance { recordId fromCache } } } }"""
HLR = {"code": "304253006", "decidedBy": "Dr. Sykehjem", "reason": "Pasientens ønske",
       "decidedAt": "2026-11-30T10:00:00+01:00"}


def _post(url: str, token: str, query: str, variables: dict[str, Any],
          key: str | None = None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"}
    if key:
        headers["idempotency-key"] = key
    r = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables},
                   headers=headers, timeout=20)
    return r.json()  # type: ignore[no-any-return]


class Replicas:
    def __init__(self, a: ServerThread, b: ServerThread, sandbox: ServerThread, settings: Any,
                 proxy: TcpProxy) -> None:
        self.a, self.b, self.sandbox, self.settings, self.proxy = a, b, sandbox, settings, proxy

    def token(self) -> str:
        return mint_token("legevakt-lege", MULTI, issuer=self.settings.auth.issuer,
                          audience=self.settings.auth.audience)

    def consents(self) -> int:
        written = httpx.get(f"{self.sandbox.url}/_sandbox/written").json()
        return int(written.get("0301", {}).get("Consent", 0))

    def municipal_requests(self) -> int:
        return int(httpx.get(f"{self.sandbox.url}/_sandbox/requests").json()["municipal"])

    def reset_counts(self) -> None:
        httpx.delete(f"{self.sandbox.url}/_sandbox/requests")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    _need("Redis", "127.0.0.1", 6379)
    proxy = TcpProxy("127.0.0.1", 6379)
    folder = tmp_path_factory.mktemp("replicas")
    cache = CacheSettings(url=f"redis://{proxy.url_host}/0", key=secrets.token_hex(24),
                          default_ttl_seconds=120, retry_seconds=0.2,
                          namespace=f"w{uuid.uuid4().hex[:8]}:")
    try:
        with running(create_sandbox({})) as sandbox:
            sock_a, sock_b = listening_socket(), listening_socket()
            a_settings = e2e_settings(port_of(sock_a), sandbox.url,
                                      f"sqlite:///{folder / 'a.sqlite3'}", cache=cache,
                                      source_timeout=3.0)
            b_settings = e2e_settings(port_of(sock_b), sandbox.url,
                                      f"sqlite:///{folder / 'b.sqlite3'}", cache=cache,
                                      source_timeout=3.0)
            with running(demo_app(a_settings), sock_a) as a, \
                    running(demo_app(b_settings), sock_b) as b:
                yield Replicas(a, b, sandbox, a_settings, proxy)
    finally:
        proxy.close()


def test_a_repeat_on_another_replica_returns_the_first_result(replicas: Replicas) -> None:
    token, key = replicas.token(), uuid.uuid4().hex
    variables = {"nin": MULTI, "input": HLR}
    first = _post(replicas.a.url, token, RECORD, variables, key)
    assert "errors" not in first, first
    count = replicas.consents()
    replicas.reset_counts()
    again = _post(replicas.b.url, token, RECORD, variables, key)
    assert again == first
    assert replicas.consents() == count
    assert replicas.municipal_requests() == 0  # replica b answered from Redis


def test_with_redis_down_the_stores_conditional_create_still_makes_one_record(
        replicas: Replicas) -> None:
    token, key = replicas.token(), uuid.uuid4().hex
    variables = {"nin": MULTI, "input": HLR}
    replicas.proxy.cut()
    try:
        first = _post(replicas.a.url, token, RECORD, variables, key)
        assert "errors" not in first, first
        count = replicas.consents()
        again = _post(replicas.b.url, token, RECORD, variables, key)
        assert "errors" not in again, again
        assert (again["data"]["recordTreatmentLimitation"]["provenance"]["recordId"]
                == first["data"]["recordTreatmentLimitation"]["provenance"]["recordId"])
        assert replicas.consents() == count  # the store found the first record
    finally:
        replicas.proxy.restore()


def test_a_write_evicts_the_cached_read_on_every_replica(replicas: Replicas) -> None:
    token = replicas.token()
    _post(replicas.a.url, token, LIMITATIONS, {"nin": MULTI})  # fill replica a's cache
    cached = _post(replicas.a.url, token, LIMITATIONS, {"nin": MULTI})
    assert all(t["provenance"]["fromCache"]
               for t in cached["data"]["patient"]["treatmentLimitations"])
    made = _post(replicas.b.url, token, RECORD, {"nin": MULTI, "input": HLR},
                 uuid.uuid4().hex)
    record_id = made["data"]["recordTreatmentLimitation"]["provenance"]["recordId"]
    after = _post(replicas.a.url, token, LIMITATIONS, {"nin": MULTI})
    ids = [t["provenance"]["recordId"] for t in after["data"]["patient"]["treatmentLimitations"]]
    assert record_id in ids


@pytest.mark.postgres
def test_audit_lost_between_attempt_and_outcome_reports_the_write_as_unknown(
        tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    audit_url = postgres_url.replace("127.0.0.1:5432", proxy.url_host)
    try:
        with running(create_sandbox({})) as sandbox:
            sock = listening_socket()
            settings = e2e_settings(port_of(sock), sandbox.url, audit_url,
                                    source_timeout=10.0, deadline_seconds=20.0)
            with running(demo_app(settings), sock) as gateway:
                token = mint_token("legevakt-lege", MULTI, issuer=settings.auth.issuer,
                                   audience=settings.auth.audience)
                key = uuid.uuid4().hex
                # the store answers slowly, so the trail can go between attempt and outcome
                httpx.put(f"{sandbox.url}/_sandbox/faults/municipal",
                          json={"latency_ms": 1500}).raise_for_status()
                answer: dict[str, Any] = {}
                sent = threading.Thread(target=lambda: answer.update(_post(
                    gateway.url, token, RECORD, {"nin": MULTI, "input": HLR}, key)))
                sent.start()
                deadline = time.monotonic() + 15
                while not any(e.outcome == "WRITE_ATTEMPTED" for e in read_events(postgres_url)):
                    assert time.monotonic() < deadline, "the attempt was never audited"
                    time.sleep(0.02)
                proxy.cut()
                sent.join(timeout=30)
                assert answer["data"] is None
                error = answer["errors"][0]
                assert error["extensions"]["code"] == "AUDIT_UNAVAILABLE"
                assert error["extensions"]["writeOutcome"] == "UNKNOWN"
                # the store did record it; the repeat (trail back) finds that record, once
                proxy.restore()
                httpx.put(f"{sandbox.url}/_sandbox/faults/municipal",
                          json={"latency_ms": 0}).raise_for_status()
                written = httpx.get(f"{sandbox.url}/_sandbox/written").json()["0301"]["Consent"]
                again: dict[str, Any] = {}
                for _ in range(100):  # the sink reconnects by itself
                    again = _post(gateway.url, token, RECORD, {"nin": MULTI, "input": HLR}, key)
                    if "errors" not in again:
                        break
                    time.sleep(0.1)
                assert "errors" not in again, again
                assert httpx.get(f"{sandbox.url}/_sandbox/written").json()["0301"][
                    "Consent"] == written
                outcomes = [e.outcome for e in read_events(postgres_url)]
                assert outcomes.count("WRITE_ATTEMPTED") == 2
                assert "WRITTEN" in outcomes
    finally:
        proxy.close()


def test_the_same_key_at_once_on_two_replicas_makes_one_record(replicas: Replicas) -> None:
    token, key = replicas.token(), uuid.uuid4().hex
    variables = {"nin": MULTI, "input": HLR}
    count = replicas.consents()
    start = threading.Barrier(2)
    answers: dict[str, dict[str, Any]] = {}

    def send(name: str, url: str) -> None:
        start.wait(timeout=10)
        answers[name] = _post(url, token, RECORD, variables, key)

    threads = [threading.Thread(target=send, args=(n, u))
               for n, u in (("a", replicas.a.url), ("b", replicas.b.url))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ids = {answers[n]["data"]["recordTreatmentLimitation"]["provenance"]["recordId"]
           for n in ("a", "b")}
    assert len(ids) == 1  # both answered with the one record
    assert replicas.consents() == count + 1
