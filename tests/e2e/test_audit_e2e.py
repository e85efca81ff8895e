"""The audit trail end to end, on SQLite and on PostgreSQL: one event per permitted or denied
access with the right fields, keyed by the response's request id, and `kilde audit verify`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.audit import AuditEvent
from sandbox.world import by_tag, professional
from tests.e2e.auditing import AuditedGateway, audited_gateway, by_request, kilde_audit_verify
from tests.e2e.conftest import Stack
from tests.gateway.audit_support import tamper

HLR = by_tag("legevakt-hlr")
MULTI = by_tag("multi-service")
SPERRET = by_tag("restricted-kj")
LEGE = professional("legevakt-lege")

SUMMARY = """query($nin: String!) { patient(nin: $nin) {
  treatmentLimitations { code { code } provenance { source } }
  medications { name provenances { source } }
  sources { source category status }
} }"""
LABS = "query($nin: String!) { patient(nin: $nin) { labResults { code { display } } } }"
CRITICAL = """query($nin: String!, $why: String) { patient(nin: $nin, emergencyReason: $why) {
  criticalInformation { type provenance { source } }
  sources { source category status }
} }"""
ACCESS_LOG = """query($nin: String!) { accessLog(nin: $nin) {
  totalCount edges { node { who reason } } } }"""
ME = "{ me { kind name } }"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gateway(
    request: pytest.FixtureRequest, stack: Stack, tmp_path: Path
) -> Iterator[AuditedGateway]:
    """A gateway of its own (fresh trail) against the shared sandbox."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    stack.reset()
    with audited_gateway(stack.sandbox.url, url) as gw:
        yield gw


def _one(events: list[AuditEvent], response: httpx.Response) -> AuditEvent:
    request_id = response.headers["x-request-id"]
    found = by_request(events, request_id)
    assert len(found) == 1, f"{len(found)} events for one access"
    return found[0]


def _assert_legevakt_lege(event: AuditEvent) -> None:
    assert event.principal_kind == "CLINICIAN"
    assert event.actor_person_id == LEGE.pid
    assert event.actor_name == LEGE.name
    assert event.actor_hpr == LEGE.hpr
    assert (event.actor_profession, event.actor_profession_text) == ("LE", "Lege")
    assert (event.legal_entity, event.legal_entity_name) == ("910000004", "Oslo kommune")
    assert (event.point_of_care, event.point_of_care_name) == ("940000009", "Oslo kommune legevakt")
    assert event.actor_municipality == "0301"
    assert event.purpose_of_use == "ETREAT"
    assert event.decision_ref == "legevakt-konsultasjon"


def test_a_permitted_access_is_one_event_with_who_why_and_what_per_source(
    gateway: AuditedGateway,
) -> None:
    r = gateway.query(SUMMARY, gateway.token("legevakt-lege", HLR.nin), {"nin": HLR.nin})
    assert r.status_code == 200, r.text
    patient = r.json()["data"]["patient"]

    event = _one(gateway.events(), r)
    _assert_legevakt_lege(event)
    assert (event.outcome, event.reason) == ("DELIVERED", "CARE_RELATIONSHIP")
    assert event.patient_nin == HLR.nin
    assert (event.emergency, event.emergency_reason) == (False, None)
    delivered = {(d.category, d.source): d for d in event.deliveries}
    assert set(delivered) == {
        ("treatment_limitations", "municipal"), ("treatment_limitations", "kjernejournal"),
        ("medications", "pll"), ("medications", "eresept"), ("medications", "municipal"),
    }
    municipal_tl = [t for t in patient["treatmentLimitations"]
                    if t["provenance"]["source"] == "municipal"]
    assert delivered[("treatment_limitations", "municipal")].count == len(municipal_tl) == 1
    assert delivered[("treatment_limitations", "kjernejournal")].count == 0
    statuses = {(s["category"].lower(), s["source"]): s["status"] for s in patient["sources"]}
    assert {key: d.status for key, d in delivered.items()} == statuses
    assert delivered[("medications", "pll")].count > 0


def test_a_denied_patient_is_one_denied_event_with_the_reason(gateway: AuditedGateway) -> None:
    token = gateway.token("legevakt-lege", HLR.nin)  # attest bound to another patient
    r = gateway.query(SUMMARY, token, {"nin": MULTI.nin})
    assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    event = _one(gateway.events(), r)
    _assert_legevakt_lege(event)
    assert (event.outcome, event.reason) == ("DENIED", "CARE_RELATIONSHIP_MISSING")
    assert event.patient_nin == MULTI.nin
    assert event.deliveries == ()


def test_every_category_denied_is_a_denied_event_not_a_delivery(gateway: AuditedGateway) -> None:
    r = gateway.query(LABS, gateway.token("helsefagarbeider", MULTI.nin), {"nin": MULTI.nin})
    assert r.json()["data"]["patient"]["labResults"] == []

    event = _one(gateway.events(), r)
    assert (event.outcome, event.reason) == ("DENIED", "PROFESSION_NOT_PERMITTED")
    assert event.actor_profession == "HF"
    assert [(d.category, d.status, d.count) for d in event.deliveries] == [
        ("lab_results", "DENIED", 0)]


def test_an_emergency_opening_is_flagged_with_its_reason(gateway: AuditedGateway) -> None:
    why = "Bevisstløs ved ankomst, trenger kritisk informasjon"
    r = gateway.query(CRITICAL, gateway.token("legevakt-lege", SPERRET.nin),
                      {"nin": SPERRET.nin, "why": why})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["patient"]["criticalInformation"]

    event = _one(gateway.events(), r)
    assert (event.outcome, event.reason) == ("DELIVERED", "EMERGENCY_OPENING")
    assert (event.emergency, event.emergency_reason) == (True, why)


def test_reading_and_being_refused_an_access_log_are_both_audited(gateway: AuditedGateway) -> None:
    officer = gateway.query(ACCESS_LOG, gateway.token("personvernombud"), {"nin": HLR.nin})
    refused = gateway.query(ACCESS_LOG, gateway.token("hjemmesykepleier", HLR.nin),
                            {"nin": HLR.nin})
    assert officer.json()["data"]["accessLog"]["totalCount"] == 0
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    events = gateway.events()
    read = _one(events, officer)
    assert (read.outcome, read.reason, read.principal_kind) == (
        "DELIVERED", "PRIVACY_OFFICER", "PRIVACY_OFFICER")
    assert (read.patient_nin, read.actor_name, read.deliveries) == (HLR.nin, "Vigdis Vernvik", ())
    denied = _one(events, refused)
    assert (denied.outcome, denied.reason) == ("DENIED", "ACCESS_LOG_NOT_PERMITTED")
    assert denied.actor_profession == "SP"


def test_requests_that_reach_no_patient_leave_no_event(gateway: AuditedGateway) -> None:
    unauthenticated = gateway.query(SUMMARY, None, {"nin": HLR.nin})
    me = gateway.query(ME, gateway.token("legevakt-lege", HLR.nin))
    bad_nin = gateway.query(SUMMARY, gateway.token("legevakt-lege", HLR.nin),
                            {"nin": HLR.nin[:-1] + str((int(HLR.nin[-1]) + 1) % 10)})
    assert (unauthenticated.status_code, me.status_code) == (401, 200)
    assert bad_nin.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert gateway.events() == []


@pytest.mark.slow
@pytest.mark.parametrize("tampering", ["altered", "removed"])
def test_kilde_audit_verify_passes_on_the_trail_and_fails_once_it_is_tampered(
    gateway: AuditedGateway, tampering: str
) -> None:
    for persona in ("legevakt-lege", "hjemmesykepleier", "helsefagarbeider"):
        r = gateway.query(SUMMARY, gateway.token(persona, HLR.nin), {"nin": HLR.nin})
        assert r.status_code == 200
    intact = kilde_audit_verify(gateway.audit_url)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "OK: 3 audit events" in intact.stdout

    if tampering == "altered":  # the first access rewritten to look like somebody else's
        statement = ("UPDATE audit_events SET body = replace(body, ?, ?) WHERE seq = 1",
                     (LEGE.name, "Noen Andre"))
        problem = "seq 1: hash does not match"
    else:
        statement = ("DELETE FROM audit_events WHERE seq = 2", ())
        problem = "seq 2: missing"
    asyncio.run(tamper(gateway.audit_url, [statement]))
    broken = kilde_audit_verify(gateway.audit_url)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "FAILED" in broken.stdout
    assert problem in broken.stdout
