"""The municipal stores take writes: a posted resource is validated as R4 (the store's own
check, cross-checked against `fhir.resources`), If-None-Exist is honoured, the record is kept
for the life of the process and shows in the next search, and every refusal is an
OperationOutcome."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pydantic
import pytest
from fhir.resources.R4B.consent import Consent as R4Consent
from fhir.resources.R4B.documentreference import DocumentReference as R4DocumentReference
from fhir.resources.R4B.medicationadministration import (
    MedicationAdministration as R4MedicationAdministration,
)

from sandbox import fhirwrite
from sandbox.fhirsearch import PROFILES
from sandbox.municipal import create_app
from sandbox.municipal_records import patient_id
from sandbox.world import by_tag

MULTI = by_tag("multi-service").nin
PID = patient_id("0301", MULTI)
ID_SYSTEM = "https://kilde.no/fhir/sid/record-id/test"
MODELS = {"Consent": R4Consent, "DocumentReference": R4DocumentReference,
          "MedicationAdministration": R4MedicationAdministration}
CONCEPT = {"coding": [{"system": "http://snomed.info/sct", "code": "304253006"}]}


def consent(value: str = "c-1", **changes: Any) -> dict[str, Any]:
    return {"resourceType": "Consent", "identifier": [{"system": ID_SYSTEM, "value": value}],
            "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "treatment"}]},
            "category": [CONCEPT], "patient": {"reference": f"Patient/{PID}"},
            "dateTime": "2026-11-30T09:00:00Z", "performer": [{"display": "Dr. S"}],
            "policyRule": {"text": "pbrl § 4-9"},
            "provision": {"type": "deny", "code": [CONCEPT]}, **changes}


def note(**changes: Any) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "status": "current",
            "type": {"coding": [{"system": "urn:oid:2.16.578.1.12.4.1.1.9602", "code": "J01"}]},
            "subject": {"reference": f"Patient/{PID}"}, "date": "2026-11-30T09:00:00+01:00",
            "content": [{"attachment": {"contentType": "text/plain", "data": "aGVp"}}],
            **changes}


def administration(**changes: Any) -> dict[str, Any]:
    return {"resourceType": "MedicationAdministration", "status": "completed",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc",
                                                      "code": "B01AF01"}]},
            "subject": {"reference": f"Patient/{PID}"},
            "effectiveDateTime": "2026-11-30T09:00:00Z", "dosage": {"text": "1 tablett"},
            **changes}


def _without(resource: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    target = out
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return out


VALID = [consent(), note(), administration(),
         administration(effectivePeriod={"start": "2026-11-30"}, effectiveDateTime=None)]
VALID[3].pop("effectiveDateTime")
BROKEN = [
    pytest.param(_without(consent(), "status"), id="consent-no-status"),
    pytest.param(consent(status="sure"), id="consent-status-not-in-binding"),
    pytest.param(_without(consent(), "scope"), id="consent-no-scope"),
    pytest.param(consent(category=[]), id="consent-empty-category"),
    pytest.param(consent(category=CONCEPT), id="consent-category-not-a-list"),
    pytest.param(consent(dateTime="30.11.2026"), id="consent-bad-datetime"),
    pytest.param(consent(patient="Patient/1"), id="consent-reference-not-an-object"),
    pytest.param(consent(provision={"type": "maybe"}), id="consent-bad-provision-type"),
    pytest.param(consent(colour="blue"), id="consent-unknown-element"),
    pytest.param(consent(identifier=[{"system": 7}]), id="consent-identifier-system-number"),
    pytest.param(_without(note(), "content"), id="note-no-content"),
    pytest.param(note(date="2026-11-30"), id="note-date-not-an-instant"),
    pytest.param(note(content=[{"attachment": {"data": "not base64!"}}]), id="note-bad-base64"),
    pytest.param(note(status="final"), id="note-status-not-in-binding"),
    pytest.param(_without(administration(), "subject"), id="administration-no-subject"),
    pytest.param(_without(administration(), "effectiveDateTime"),
                 id="administration-no-effective"),
    pytest.param(_without(administration(), "medicationCodeableConcept"),
                 id="administration-no-medication"),
    pytest.param(administration(performer=[{"function": CONCEPT}]),
                 id="administration-performer-without-actor"),
]


@pytest.mark.parametrize("resource", VALID)
def test_valid_r4_is_valid_to_both_validators(resource: dict[str, Any]) -> None:
    assert fhirwrite.problems(resource) == []
    MODELS[resource["resourceType"]].model_validate(resource)


def _r4_refuses(resource: dict[str, Any]) -> bool:
    try:
        MODELS[resource["resourceType"]].model_validate(resource)
    except (pydantic.ValidationError, ValueError, TypeError):
        return True
    return False


# what the models leave unchecked: required bindings (status codes), base64, and R4 JSON's
# rule that an array is never empty (a 1..* element sent as [] is absent)
_MODELS_LENIENT = {"consent-status-not-in-binding", "consent-bad-provision-type",
                   "note-status-not-in-binding", "note-bad-base64", "consent-empty-category"}


@pytest.mark.parametrize("resource", BROKEN)
def test_broken_r4_is_refused_naming_the_element(resource: dict[str, Any],
                                                 request: pytest.FixtureRequest) -> None:
    found = fhirwrite.problems(resource)
    assert found, "the store accepted invalid R4"
    assert all(where.startswith(resource["resourceType"]) for _, where in found)
    if request.node.callspec.id not in _MODELS_LENIENT:
        assert _r4_refuses(resource), "the independent validator disagrees"


@pytest.fixture
def store() -> tuple[httpx.AsyncClient, list[tuple[str, str, str]], Any]:
    changes: list[tuple[str, str, str]] = []
    app = create_app(PROFILES["full"], on_change=lambda *c: changes.append(c))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s")
    return client, changes, app


FHIR = {"content-type": "application/fhir+json"}


async def test_a_create_is_stored_found_by_the_next_search_and_announced(store: Any) -> None:
    client, changes, app = store
    before = (await client.get(f"/0301/Consent?patient=Patient/{PID}")).json().get("total")
    r = await client.post("/0301/Consent", json=consent(), headers=FHIR)
    assert r.status_code == 201
    made = r.json()
    assert made["id"]
    assert made["meta"]["versionId"] == "1"
    assert r.headers["location"].endswith(f"/0301/Consent/{made['id']}/_history/1")
    R4Consent.model_validate(made)
    assert changes == [("0301", MULTI, "Consent")]
    found = (await client.get(f"/0301/Consent?patient=Patient/{PID}")).json()
    assert made["id"] in [e["resource"]["id"] for e in found["entry"]]
    assert found.get("total") != before
    read = await client.get(f"/0301/Consent/{made['id']}")
    assert read.status_code == 200
    assert read.json() == made
    assert app.state.written == {"0301": [made]}


async def test_if_none_exist_answers_the_first_record_and_stores_nothing(store: Any) -> None:
    client, changes, app = store
    condition = {"if-none-exist": f"identifier={ID_SYSTEM}|c-9", **FHIR}
    first = await client.post("/0301/Consent", json=consent("c-9"), headers=condition)
    again = await client.post("/0301/Consent", json=consent("c-9"), headers=condition)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert len(app.state.written["0301"]) == 1
    assert len(changes) == 1
    # without the condition the same body is a second record, as in any FHIR server
    third = await client.post("/0301/Consent", json=consent("c-9"), headers=FHIR)
    assert third.status_code == 201
    duplicate = await client.post("/0301/Consent", json=consent("c-9"), headers=condition)
    assert duplicate.status_code == 412
    assert duplicate.json()["issue"][0]["code"] == "duplicate"
    odd = await client.post("/0301/Consent", json=consent("c-9"),
                            headers={"if-none-exist": "status=active", **FHIR})
    assert odd.status_code == 400


@pytest.mark.parametrize(("body", "headers", "status", "code"), [
    (consent(status="sure"), FHIR, 400, "value"),
    (consent(patient={"reference": "Patient/nobody"}), FHIR, 422, "processing"),
    (consent(dateTime="1930-01-01T00:00:00Z"), FHIR, 422, "business-rule"),
    (consent(), {"content-type": "text/plain"}, 415, "not-supported"),
    (note(), FHIR, 201, None),
    (administration(), FHIR, 201, None),
])
async def test_each_refusal_is_an_operation_outcome(store: Any, body: Any,
                                                    headers: dict[str, str], status: int,
                                                    code: str | None) -> None:
    client, _, _ = store
    rtype = body["resourceType"]
    r = await client.post(f"/0301/{rtype}", json=body, headers=headers)
    assert r.status_code == status, r.text
    if code is not None:
        outcome = r.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == code


async def test_garbage_unknown_types_and_unknown_stores(store: Any) -> None:
    client, _, _ = store
    assert (await client.post("/0301/Consent", content=b"{", headers=FHIR)).status_code == 400
    assert (await client.post("/0301/Flag", json={}, headers=FHIR)).status_code == 405
    assert (await client.post("/0301/Nonsense", json={}, headers=FHIR)).status_code == 405
    assert (await client.post("/9999/Consent", json=consent(), headers=FHIR)).status_code == 404
    wrong = await client.post("/0301/Consent", json=note(), headers=FHIR)
    assert wrong.status_code == 400


async def test_the_capability_statement_declares_conditional_create() -> None:
    for name, declared in (("full", True), ("plain", True), ("lenient", False)):
        app = create_app(PROFILES[name])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://s") as client:
            body = (await client.get("/0301/metadata")).json()
        kinds = {r["type"]: r for r in body["rest"][0]["resource"]}
        for rtype in fhirwrite.TYPES:
            assert {"code": "create"} in kinds[rtype]["interaction"]
            assert kinds[rtype]["conditionalCreate"] is declared
        assert "conditionalCreate" not in kinds["Flag"]
