"""FHIR R4 AuditEvent export in HL7 Norway's trust-framework profile, checked by an independent
validator (tests/gateway/fhir_profile.py) and element by element."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway.audit import Delivery, to_fhir_audit_event
from gateway.audit.fhir import CARE_RELATION_EXT, PATIENT_EXT, PROFILE
from tests.gateway.audit_support import LEGE, PATIENT_A, event, full_event
from tests.gateway.fhir_profile import profile_problems

HPR = "urn:oid:2.16.578.1.12.4.1.4.4"
ORGNR = "urn:oid:2.16.578.1.12.4.1.4.101"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
TOA = 1772366100


def _contained(r: dict[str, Any], local_id: str) -> dict[str, Any]:
    return next(c for c in r["contained"] if c["id"] == local_id)


def test_a_clinicians_delivery_conforms_to_the_profile() -> None:
    r = to_fhir_audit_event(full_event(toa=TOA))
    assert profile_problems(r) == []
    assert r["meta"]["profile"] == [PROFILE]
    assert r["type"] == {"system": "http://dicom.nema.org/resources/ontology/DCM",
                         "code": "110110", "display": "Patient Record"}
    assert r["subtype"][0]["code"] == "read"
    assert (r["action"], r["outcome"], r["recorded"]) == ("R", "0", "2026-03-01T12:00:00.000000Z")
    assert r["purposeOfEvent"] == [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG",
        "display": "break the glass"}]}]
    json.dumps(r)  # JSON-ready


def test_the_one_agent_is_a_practitioner_role_with_person_organisation_and_place() -> None:
    r = to_fhir_audit_event(full_event(toa=TOA))
    (agent,) = r["agent"]
    assert agent["who"] == {"reference": "#role"}
    assert agent["requestor"] is True
    role = _contained(r, "role")
    assert role["resourceType"] == "PractitionerRole"
    practitioner = _contained(r, "practitioner")
    assert practitioner["identifier"] == [{"system": HPR, "value": LEGE.hpr,
                                           "assigner": {"display": "https://www.helsedirektoratet.no/"}}]
    assert practitioner["name"] == [{"text": LEGE.name}]
    assert practitioner["qualification"][0]["code"]["coding"][0]["code"] == "LE"
    legal = _contained(r, role["organization"]["reference"][1:])
    assert legal["identifier"][0] == {"system": ORGNR, "value": "910000004",
                                      "assigner": {"display": "https://www.brreg.no"}}
    place = _contained(r, role["location"][0]["reference"][1:])
    assert place["resourceType"] == "Location"
    managing = _contained(r, place["managingOrganization"]["reference"][1:])
    assert managing["identifier"][0]["value"] == LEGE.workplace


def test_care_relation_metadata_carries_the_decision_reference_and_toa() -> None:
    r = to_fhir_audit_event(full_event(toa=TOA))
    by_url = {x["url"]: x for x in r["extension"]}
    assert _contained(r, "patient")["identifier"][0]["value"] == PATIENT_A
    assert by_url[PATIENT_EXT]["valueReference"] == {"reference": "#patient"}
    assert by_url[CARE_RELATION_EXT]["extension"] == [
        {"url": "decision-ref-id", "valueString": "akutt-2026-001"},
        {"url": "decision-ref-description",
         "valueString": "Pasient bevisstløs, akutt behov (nødrett)"},
        {"url": "decision-ref-user-selected", "valueBoolean": True},
        {"url": "toa", "valueUnsignedInt": TOA},
    ]


def test_an_event_without_toa_has_no_incomplete_care_relation_extension() -> None:
    # rows written before toa was recorded: the extension's four parts are each 1..1
    r = to_fhir_audit_event(full_event())
    assert CARE_RELATION_EXT not in {x["url"] for x in r["extension"]}
    assert profile_problems(r) == []


def test_entities_are_the_patient_each_delivered_category_and_the_client() -> None:
    e = full_event(deliveries=(
        Delivery("medications", "pll", "OK", 4),
        Delivery("medications", "eresept", "OK", 1),
        Delivery("lab_results", "proevesvar", "OK", 2),
        Delivery("critical_information", "kjernejournal", "TIMEOUT", 0),
    ))
    patient, meds, labs, client = to_fhir_audit_event(e)["entity"]
    assert patient["what"] == {"reference": "#patient"}
    assert patient["role"]["code"] == "1"
    assert patient["detail"][0] == {"type": "emergency", "valueString": "true"}
    assert (meds["name"], labs["name"]) == ("medications", "lab_results")
    assert meds["detail"] == [{"type": "source", "valueString": "pll:4"},
                              {"type": "source", "valueString": "eresept:1"}]
    assert meds["description"] == "5 item(s) of category 'medications'"
    assert client["what"] == {"display": "legevakt-epj"}


@pytest.mark.parametrize(("outcome", "code"), [("DELIVERED", "0"), ("DENIED", "4")])
def test_outcome_maps_to_fhir_outcome_code(outcome: str, code: str) -> None:
    r = to_fhir_audit_event(event(1, outcome=outcome, reason="NO_CARE_RELATIONSHIP"))
    assert (r["outcome"], r["outcomeDesc"]) == (code, "NO_CARE_RELATIONSHIP")


def test_a_practitioner_with_an_hpr_number_is_not_named_by_national_identity_number() -> None:
    assert LEGE.pid not in json.dumps(to_fhir_audit_event(full_event()))


def test_someone_without_an_hpr_number_is_identified_by_national_identity_number() -> None:
    r = to_fhir_audit_event(full_event(actor_hpr=None, actor_profession=None,
                                       actor_profession_text=None, purpose_of_use="COC"))
    assert _contained(r, "practitioner")["identifier"][0] == {
        "system": FNR, "value": LEGE.pid, "assigner": {"display": "https://www.skatteetaten.no"}}
    assert profile_problems(r) == []


def test_privacy_officer_at_the_legal_entity_itself_conforms() -> None:
    r = to_fhir_audit_event(full_event(
        principal_kind="PRIVACY_OFFICER", actor_hpr=None, actor_profession=None,
        actor_profession_text=None, point_of_care="910000004", point_of_care_name="Oslo kommune",
        purpose_of_use=None, decision_ref=None, decision_description=None, emergency=False,
        emergency_reason=None, deliveries=(), reason="PRIVACY_OFFICER"))
    assert profile_problems(r) == []
    place = _contained(r, "point-of-care")
    assert place["managingOrganization"] == {"reference": "#legal-entity"}


@pytest.mark.parametrize("changes", [
    {"patient": None},                                       # _patient is 1..1
    {"patient": PATIENT_A, "point_of_care": None},           # location is 1..1
    {"patient": PATIENT_A, "principal_kind": "CITIZEN",      # the profile is for personnel
     "actor_person_id": PATIENT_A},
], ids=["no-patient", "no-point-of-care", "citizen"])
def test_an_event_the_profile_cannot_describe_does_not_claim_it(changes: dict[str, Any]) -> None:
    r = to_fhir_audit_event(event(1, **changes))
    assert "meta" not in r
    assert profile_problems(r)[0] == "meta.profile does not claim the profile"
    from tests.gateway.fhir_profile import R4AuditEvent

    R4AuditEvent.model_validate(r)  # still a valid FHIR R4 AuditEvent


def test_a_citizen_reading_their_own_record_is_the_patient_as_agent() -> None:
    r = to_fhir_audit_event(event(1, principal_kind="CITIZEN", actor_person_id=PATIENT_A,
                                  actor_hpr=None, purpose_of_use=None))
    assert r["agent"][0]["who"] == {"reference": "#patient"}


# The validator must catch what the profile forbids, or its silence proves nothing.
def _broken(change: str) -> dict[str, Any]:
    r = copy.deepcopy(to_fhir_audit_event(full_event(toa=TOA)))
    if change == "organisation-agent":
        r["agent"].append({"who": {"identifier": {"system": ORGNR, "value": "910000004"}},
                           "requestor": False})
    elif change == "no-patient-extension":
        r["extension"] = [x for x in r["extension"] if x["url"] != PATIENT_EXT]
    elif change == "toa-missing":
        care = next(x for x in r["extension"] if x["url"] == CARE_RELATION_EXT)
        care["extension"] = care["extension"][:3]
    elif change == "toa-as-string":
        care = next(x for x in r["extension"] if x["url"] == CARE_RELATION_EXT)
        care["extension"][3] = {"url": "toa", "valueString": str(TOA)}
    elif change == "purpose-as-oid":
        r["purposeOfEvent"][0]["coding"][0]["system"] = "urn:oid:2.16.840.1.113883.1.11.20448"
    elif change == "role-without-location":
        del _contained(r, "role")["location"]
    elif change == "unreferenced-contained":
        r["contained"].append({"resourceType": "Organization", "id": "stray"})
    elif change == "bad-action":
        r["action"] = "READ"
    elif change == "not-fhir":
        r["recorded"] = "yesterday"
    return r


@pytest.mark.parametrize("change", ["organisation-agent", "no-patient-extension", "toa-missing",
                                    "toa-as-string", "purpose-as-oid", "role-without-location",
                                    "unreferenced-contained", "bad-action", "not-fhir"])
def test_the_independent_validator_catches_what_the_profile_forbids(change: str) -> None:
    assert profile_problems(_broken(change))


@pytest.mark.parametrize(("outcome", "code"), [
    ("WRITE_ATTEMPTED", "0"), ("WRITTEN", "0"), ("WRITE_REJECTED", "4"), ("WRITE_FAILED", "4"),
    ("WRITE_UNKNOWN", "8")])
def test_a_write_exports_as_a_create_that_conforms_to_the_profile(outcome: str,
                                                                  code: str) -> None:
    written = outcome == "WRITTEN"
    r = to_fhir_audit_event(full_event(
        toa=TOA, outcome=outcome, reason="WRITE_PERMITTED", action="create",
        record_category="treatment_limitations", record_store="0301",
        record_id="w123" if written else None, attempt_id=None if outcome ==
        "WRITE_ATTEMPTED" else "5b1e7c6e-9d4f-4f4e-9a51-1b2c3d4e5f61",
        deliveries=(Delivery("treatment_limitations", "municipal", "WRITTEN", 1),)
        if written else ()))
    assert profile_problems(r) == []
    assert r["subtype"][0]["code"] == "create"
    assert (r["action"], r["outcome"], r["outcomeDesc"]) == ("C", code, "WRITE_PERMITTED")
