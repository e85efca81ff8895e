"""FHIR R4 AuditEvent export in HL7 Norway's trust-framework profile."""

from __future__ import annotations

import json

import pytest

from gateway.audit import Delivery, to_fhir_audit_event
from gateway.audit.fhir import CARE_RELATION_EXT, PATIENT_EXT, PROFILE
from tests.gateway.audit_support import LEGE, PATIENT_A, event, full_event

HPR = "urn:oid:2.16.578.1.12.4.1.4.4"
ORGNR = "urn:oid:2.16.578.1.12.4.1.4.101"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"


def test_delivered_event_has_the_profiles_core_elements() -> None:
    r = to_fhir_audit_event(full_event())
    assert r["resourceType"] == "AuditEvent"
    assert r["id"] == "5b1e7c6e-9d4f-4f4e-9a51-1b2c3d4e5f60"
    assert r["meta"]["profile"] == [PROFILE]
    assert r["type"] == {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                         "code": "rest", "display": "RESTful Operation"}
    assert r["subtype"][0]["code"] == "read"
    assert (r["action"], r["outcome"], r["recorded"]) == ("R", "0", "2026-03-01T12:00:00.000000Z")
    assert r["purposeOfEvent"] == [{"coding": [
        {"system": "urn:oid:2.16.840.1.113883.1.11.20448", "code": "BTG"}]}]
    json.dumps(r)  # JSON-ready


def test_agents_are_the_practitioner_by_hpr_and_their_organisations_by_orgnr() -> None:
    agents = to_fhir_audit_event(full_event())["agent"]
    user, legal, place, app = agents
    assert user["who"] == {"identifier": {"system": HPR, "value": LEGE.hpr}, "display": LEGE.name}
    assert user["requestor"] is True
    assert user["role"][0]["coding"][0] == {
        "system": "urn:oid:2.16.578.1.12.4.1.1.9060", "code": "LE", "display": "Lege"}
    assert legal["who"] == {"identifier": {"system": ORGNR, "value": "910000004"},
                            "display": "Oslo kommune"}
    assert legal["type"]["coding"][0]["code"] == "PROV"
    assert place["who"]["identifier"] == {"system": ORGNR, "value": LEGE.workplace}
    assert place["type"]["coding"][0]["code"] == "SDLOC"
    assert app["who"] == {"display": "legevakt-epj"}


def test_entities_are_the_patient_and_one_per_delivered_category() -> None:
    e = full_event(deliveries=(
        Delivery("medications", "pll", "OK", 4),
        Delivery("medications", "eresept", "OK", 1),
        Delivery("lab_results", "proevesvar", "OK", 2),
        Delivery("critical_information", "kjernejournal", "TIMEOUT", 0),
    ))
    patient, meds, labs = to_fhir_audit_event(e)["entity"]
    assert patient["what"] == {"identifier": {"system": FNR, "value": PATIENT_A}}
    assert patient["role"]["code"] == "1"
    assert patient["detail"][0] == {"type": "emergency", "valueString": "true"}
    assert (meds["name"], labs["name"]) == ("medications", "lab_results")
    assert meds["detail"] == [{"type": "source", "valueString": "pll:4"},
                              {"type": "source", "valueString": "eresept:1"}]
    assert meds["description"] == "5 item(s) of category 'medications'"


def test_care_relation_metadata_carries_the_decision_reference() -> None:
    r = to_fhir_audit_event(full_event())
    by_url = {x["url"]: x for x in r["extension"]}
    assert by_url[PATIENT_EXT]["valueReference"]["identifier"]["value"] == PATIENT_A
    assert by_url[CARE_RELATION_EXT]["extension"] == [
        {"url": "decision-ref-id", "valueString": "akutt-2026-001"},
        {"url": "decision-ref-description",
         "valueString": "Pasient bevisstløs, akutt behov (nødrett)"},
        {"url": "decision-ref-user-selected", "valueBoolean": True},
    ]


@pytest.mark.parametrize(("outcome", "code"), [("DELIVERED", "0"), ("DENIED", "4")])
def test_outcome_maps_to_fhir_outcome_code(outcome: str, code: str) -> None:
    r = to_fhir_audit_event(event(1, outcome=outcome, reason="NO_CARE_RELATIONSHIP"))
    assert (r["outcome"], r["outcomeDesc"]) == (code, "NO_CARE_RELATIONSHIP")


def test_export_never_contains_the_callers_own_national_identity_number() -> None:
    assert LEGE.pid not in json.dumps(to_fhir_audit_event(full_event()))


def test_minimal_event_omits_what_it_does_not_know() -> None:
    r = to_fhir_audit_event(event(1, patient=None, purpose_of_use=None, deliveries=()))
    assert "extension" not in r
    assert "purposeOfEvent" not in r
    assert r["entity"] == []
    assert [a["type"]["coding"][0]["code"] for a in r["agent"]] == ["humanuser", "110150"]
