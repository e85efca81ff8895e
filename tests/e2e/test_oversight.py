"""Oversight stays inside the municipality (#12 item 3), over real HTTP: a privacy officer reads
access logs, usage, emergency openings and the FHIR export only for patients and deliveries of
their own municipality (docs/policies.md), whose home municipality the sandbox's population
registry gives; a registry that cannot answer is an error, never an unfiltered log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit import AuditEvent
from sandbox.world import BERGEN, PATIENTS, by_tag
from tests.e2e.auditing import AuditedGateway, audited_gateway
from tests.e2e.conftest import Stack

OSLO_PATIENT = by_tag("legevakt-hlr")  # lives in 0301; Oslo's store keeps their records
RESTRICTED = by_tag("restricted-kj")  # lives in 0301; an emergency opens their restriction
BERGEN_PATIENT = by_tag("other-municipality")  # lives in 4601; Bergen's store keeps theirs
SUMMARY = """query($nin: String!, $why: String) { patient(nin: $nin, emergencyReason: $why) {
  criticalInformation { id } medications { name } conditions { id } } }"""
ACCESS_LOG = """query($nin: String!) { accessLog(nin: $nin) { totalCount edges { node {
  patientNin outcome reason organisation deliveries { source count municipality } } } } }"""
USAGE = """query { usage { day source category municipality dataMunicipality deliveries
  items } }"""
EMERGENCIES = "query { emergencyAccesses { totalCount edges { node { patientNin reason } } } }"


@pytest.fixture
def gateway(stack: Stack, tmp_path: Path) -> Iterator[AuditedGateway]:
    stack.reset()
    with audited_gateway(stack.sandbox.url, f"sqlite:///{tmp_path / 'audit.sqlite3'}") as gw:
        yield gw


def _officer(gw: AuditedGateway, orgnr: str | None = None) -> str:
    return gw.officer(orgnr)


def _read(gw: AuditedGateway, persona: str, patient: Any, why: str | None = None) -> None:
    purpose = "ETREAT" if why else None
    r = gw.query(SUMMARY, gw.token(persona, patient.nin, purpose=purpose),
                 {"nin": patient.nin, "why": why})
    assert r.status_code == 200, r.text[:500]
    assert r.json()["data"]["patient"] is not None, r.text[:500]


def _data(r: httpx.Response) -> Any:
    body = r.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def _one(events: list[AuditEvent], r: httpx.Response) -> AuditEvent:
    request_id = r.headers["x-request-id"]
    (event,) = [e for e in events if e.request_id == request_id]
    return event


def test_the_oslo_officer_is_refused_a_bergen_patients_log_and_the_refusal_is_audited(
        gateway: AuditedGateway) -> None:
    _read(gateway, "hjemmesykepleier-bergen", BERGEN_PATIENT)  # Bergen's data of Bergen's patient
    r = gateway.query(ACCESS_LOG, _officer(gateway), {"nin": BERGEN_PATIENT.nin})
    body = r.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN",
                                               "reason": "OTHER_MUNICIPALITY"}
    assert BERGEN_PATIENT.name not in r.text
    assert BERGEN_PATIENT.nin not in r.text
    refused = _one(gateway.events(), r)
    assert (refused.outcome, refused.reason, refused.principal_kind) == (
        "DENIED", "OTHER_MUNICIPALITY", "PRIVACY_OFFICER")
    assert (refused.patient_nin, refused.patient_municipality) == (BERGEN_PATIENT.nin, "4601")
    # Bergen's officer reads it, whole
    bergen = _data(gateway.query(ACCESS_LOG, _officer(gateway, BERGEN.orgnr),
                                 {"nin": BERGEN_PATIENT.nin}))["accessLog"]
    assert bergen["totalCount"] >= 1
    assert {d["municipality"] for e in bergen["edges"] for d in e["node"]["deliveries"]
            if d["source"] == "municipal" and d["count"]} == {"4601"}


def test_the_oslo_officer_sees_an_oslo_patients_whole_log_with_other_municipalities_accesses(
        gateway: AuditedGateway) -> None:
    _read(gateway, "legevakt-lege", OSLO_PATIENT)
    _read(gateway, "hjemmesykepleier-bergen", OSLO_PATIENT)  # a Bergen nurse reads him too
    r = gateway.query(ACCESS_LOG, _officer(gateway), {"nin": OSLO_PATIENT.nin})
    log = _data(r)["accessLog"]
    organisations = {e["node"]["organisation"] for e in log["edges"]}
    assert {"Oslo kommune", "Bergen kommune"} <= organisations, organisations
    assert log["totalCount"] == 2
    read = _one(gateway.events(), r)
    assert (read.outcome, read.reason, read.patient_municipality) == (
        "DELIVERED", "PRIVACY_OFFICER", "0301")
    # ... and Bergen's officer, whose store holds nothing of him, is refused
    bergen = gateway.query(ACCESS_LOG, _officer(gateway, BERGEN.orgnr), {"nin": OSLO_PATIENT.nin})
    assert bergen.json()["errors"][0]["extensions"]["reason"] == "OTHER_MUNICIPALITY"


def test_usage_export_and_emergency_openings_hold_only_the_officers_municipality(
        gateway: AuditedGateway) -> None:
    _read(gateway, "legevakt-lege", RESTRICTED, "Bevisstløs ved ankomst")  # an emergency opening
    _read(gateway, "legevakt-lege", OSLO_PATIENT)
    _read(gateway, "hjemmesykepleier-bergen", BERGEN_PATIENT)
    for orgnr, own, patient, other, opened in (
            (None, "0301", OSLO_PATIENT, BERGEN_PATIENT, {RESTRICTED.nin}),
            (BERGEN.orgnr, "4601", BERGEN_PATIENT, OSLO_PATIENT, set())):
        token = _officer(gateway, orgnr)
        rows = _data(gateway.query(USAGE, token))["usage"]
        assert rows, own
        assert {r["municipality"] for r in rows} == {own}  # whose personnel asked
        assert {r["dataMunicipality"] for r in rows} == {own, None}  # own store, national
        assert any(r["source"] == "municipal" and r["dataMunicipality"] == own for r in rows)

        emergencies = _data(gateway.query(EMERGENCIES, token))["emergencyAccesses"]
        assert {e["node"]["patientNin"] for e in emergencies["edges"]} == opened

        export = httpx.post(f"{gateway.url}/audit/export", json={"format": "ndjson"},
                            headers={"authorization": f"Bearer {token}"}, timeout=10)
        assert export.status_code == 200, export.text[:300]
        text = export.text
        assert patient.nin in text
        assert other.nin not in text
        assert [json.loads(line)["resourceType"] for line in text.splitlines()]

        # the export for one patient follows the access-log rule
        refused = httpx.post(f"{gateway.url}/audit/export", json={"patient": other.nin},
                             headers={"authorization": f"Bearer {token}"}, timeout=10)
        assert refused.status_code == 403
        assert other.nin not in refused.text
        mine = httpx.post(f"{gateway.url}/audit/export",
                          json={"patient": patient.nin, "format": "ndjson"},
                          headers={"authorization": f"Bearer {token}"}, timeout=10)
        assert mine.status_code == 200
        assert patient.nin in mine.text
    assert not [p.name for p in PATIENTS if p.name in str(rows)]
    assert datetime.now(UTC).date().isoformat() in {r["day"] for r in rows}


def test_a_registry_that_cannot_answer_is_an_error_never_an_unfiltered_log(
        stack: Stack, gateway: AuditedGateway) -> None:
    _read(gateway, "legevakt-lege", OSLO_PATIENT)
    stack.fault("persontjenesten", mode="error")
    try:
        r = gateway.query(ACCESS_LOG, _officer(gateway), {"nin": OSLO_PATIENT.nin})
        export = httpx.post(f"{gateway.url}/audit/export", json={"patient": OSLO_PATIENT.nin},
                            headers={"authorization": f"Bearer {_officer(gateway)}"}, timeout=10)
    finally:
        stack.fault("persontjenesten", mode="none")
    body = r.json()
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "source": "persontjenesten",
                                   "reason": "HOME_MUNICIPALITY_UNKNOWN"}
    assert OSLO_PATIENT.nin not in r.text
    assert export.status_code == 503
    assert export.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
