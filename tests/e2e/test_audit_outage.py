"""The audit store vanishes mid-run: no patient data leaves, readiness says so, and the gateway
recovers by itself when the store is back (PostgreSQL behind a TCP proxy we cut)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox.world import by_tag
from tests.e2e.auditing import AuditedGateway, audited_gateway, by_request
from tests.e2e.conftest import Stack
from tests.proxy import TcpProxy

pytestmark = pytest.mark.postgres

HLR = by_tag("legevakt-hlr")
QUERY = """query($nin: String!) { patient(nin: $nin) {
  nin alerts { title } treatmentLimitations { code { code display } description }
  medications { name } sources { source status } } }"""
MY_LOG = "{ myAccessLog(first: 5) { totalCount } }"
ME = "{ me { kind name hprNumber } }"
# what the patient's answer would carry; none of it may be in a withheld response
PATIENT_DATA = (HLR.nin, HLR.name, "304253006", "HLR-minus", "Ikke-gjenoppliving")


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    p = TcpProxy("127.0.0.1", 5432)
    yield p
    p.close()


@pytest.fixture
def gateway(stack: Stack, postgres_url: str, proxy: TcpProxy) -> Iterator[AuditedGateway]:
    stack.reset()
    with audited_gateway(stack.sandbox.url, postgres_url.replace("127.0.0.1:5432",
                                                                 proxy.url_host)) as gw:
        yield gw


def _ready(gw: AuditedGateway) -> httpx.Response:
    return httpx.get(f"{gw.url}/readyz", timeout=10)


def _delivered_items(gw: AuditedGateway) -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("kilde_items_delivered_total{"))


def _wait_ready(gw: AuditedGateway, deadline_s: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        r = _ready(gw)
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def test_audit_store_lost_mid_run_withholds_data_and_recovers(
    gateway: AuditedGateway, proxy: TcpProxy
) -> None:
    token = gateway.token("legevakt-lege", HLR.nin)
    before = gateway.query(QUERY, token, {"nin": HLR.nin})
    assert before.status_code == 200
    assert before.json()["data"]["patient"]["treatmentLimitations"]
    assert _ready(gateway).status_code == 200
    counted = _delivered_items(gateway)
    assert counted > 0

    proxy.cut()
    withheld = [gateway.query(QUERY, token, {"nin": HLR.nin}) for _ in range(3)]
    ready = _ready(gateway)
    me = gateway.query(ME, token)
    citizen_log = gateway.query(MY_LOG, gateway.token("innbygger", HLR.nin))

    for r in withheld:
        assert r.status_code == 503
        body = r.json()
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["AUDIT_UNAVAILABLE"]
        assert not any(value in r.text for value in PATIENT_DATA)
    assert ready.status_code == 503
    assert ready.json()["audit"] == "unavailable"
    assert me.status_code == 200
    assert me.json()["data"]["me"]["hprNumber"] == "9144901"
    assert citizen_log.json()["data"] is None
    assert citizen_log.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    assert _delivered_items(gateway) == counted  # withheld data is not counted as delivered

    proxy.restore()
    assert _wait_ready(gateway).status_code == 200, "the sink did not reconnect by itself"
    after = gateway.query(QUERY, token, {"nin": HLR.nin})
    assert after.status_code == 200
    assert after.json()["data"]["patient"]["treatmentLimitations"]

    events = gateway.events()
    assert len(by_request(events, before.headers["x-request-id"])) == 1
    assert len(by_request(events, after.headers["x-request-id"])) == 1
    for r in withheld:  # nothing was delivered, and nothing claims it was
        assert by_request(events, r.headers["x-request-id"]) == []
