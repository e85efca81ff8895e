"""Every FHIR answer the sandbox serves is valid R4, by an independent validator.

The validator is Medplum's (`POST /{Type}/$validate` on the interop host): structure,
cardinality, value types, unknown elements and the FHIRPath invariants of the R4
StructureDefinitions (ppc-1, mad-1, cmp-1, bdl-*, dom-*...). The bodies come from the whole
sandbox app in-process: every scenario patient, every source, the success answers and the
OperationOutcomes of refused requests. Kjernejournal's `/status` is JSON, not FHIR, and is
not validated; the one deliberate non-conformance is listed in `DELIBERATE`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.identifiers import nin_system
from sandbox.app import create_app
from sandbox.fhirbundle import patient_bundle, world_bundles
from sandbox.municipal_records import patient_id
from sandbox.world import MUNICIPALITIES, PATIENTS
from tests.sandbox.test_municipal_fake import municipal_cave_patient
from tests.sandbox_auth import sandbox_auth

MUNICIPAL_TYPES = ("Consent", "EpisodeOfCare", "Condition", "MedicationAdministration",
                   "DocumentReference", "AllergyIntolerance", "Flag")
# Kjernejournal adds one unknown field to every JSON body so that clients prove they read
# tolerantly (sandbox/kjernejournal.py); it is the only invalid element the sandbox serves.
DELIBERATE = {
    "kjernejournal": re.compile(r'Invalid additional property "x-kj-gibberish-[0-9a-f]+"'),
}
STRICT = {"prefer": "handling=strict"}


@pytest.fixture
async def sandbox() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app({})  # every call with a valid HelseID token: real answers, not 401s
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox",
                                 auth=sandbox_auth(app)) as client:
        yield client


async def municipal_answers(sandbox: httpx.AsyncClient) -> AsyncIterator[tuple[str, Any]]:
    # every kind of record the store renders, also those no world patient has yet
    yield "municipal CAVE", patient_bundle(municipal_cave_patient(), "0301")
    for m in MUNICIPALITIES:
        for bundle in world_bundles(m.number):
            yield f"{m.number} export", bundle
        base = f"/municipal/{m.number}"
        yield f"{base}/metadata", (await sandbox.get(f"{base}/metadata")).json()
        yield f"{base} refused", (await sandbox.get(f"{base}/Condition?colour=x",
                                                    headers=STRICT)).json()
        for p in PATIENTS:
            system = nin_system(p.nin)
            found = await sandbox.post(f"{base}/Patient/_search",
                                       data={"identifier": f"{system}|{p.nin}"})
            yield f"{base} Patient", found.json()
            ref = f"Patient/{patient_id(m.number, p.nin)}"
            batch = {"resourceType": "Bundle", "type": "batch", "entry": [
                {"request": {"method": "GET", "url": f"{t}?patient={ref}"}}
                for t in MUNICIPAL_TYPES] + [
                {"request": {"method": "GET", "url": f"Consent?patient.identifier={system}|"
                                                     f"{p.nin}&_include=Consent:patient"}},
                {"request": {"method": "GET", "url": "Condition?colour=x"}}]}
            answer = await sandbox.post(base, json=batch, headers=STRICT)
            yield f"{base} batch", answer.json()
            lenient = await sandbox.get(f"{base}/Condition?patient={ref}&colour=x")
            yield f"{base} lenient", lenient.json()
            for entry in answer.json()["entry"]:
                for resource in (e["resource"] for e in entry.get("resource", {}).get(
                        "entry", [])):
                    read = await sandbox.get(f"{base}/{resource['resourceType']}/"
                                             f"{resource['id']}")
                    yield f"{base} read", read.json()


async def kjernejournal_answers(sandbox: httpx.AsyncClient) -> AsyncIterator[tuple[str, Any]]:
    for p in PATIENTS:
        headers = {"nhn-patient-nin": p.nin, "nhn-access-basis": "FORHOYET_AKUTT",
                   "nhn-user-hpr": "9144905"}
        for path in ("AllergyIntolerance", "Condition", "Flag", "Consent"):
            yield path, (await sandbox.get(f"/kjernejournal/{path}", headers=headers)).json()
        refused = await sandbox.get("/kjernejournal/Flag", headers={"nhn-patient-nin": p.nin})
        yield "refused", refused.json()


async def medication_answers(sandbox: httpx.AsyncClient) -> AsyncIterator[tuple[str, Any]]:
    for source in ("pll", "eresept"):
        for p in PATIENTS:
            body = {"resourceType": "Parameters", "parameter": [
                {"name": "patient", "resource": {"resourceType": "Patient", "identifier": [
                    {"system": nin_system(p.nin), "value": p.nin}]}},
                {"name": "SamtykkeKjernejournal", "valueCode": "HPAKUTT"}]}
            answer = await sandbox.post(f"/{source}/Patient/$getMedication", json=body)
            yield source, answer.json()
        refused = await sandbox.post(f"/{source}/Patient/$getMedication", json={})
        yield f"{source} refused", refused.json()


async def proevesvar_answers(sandbox: httpx.AsyncClient) -> AsyncIterator[tuple[str, Any]]:
    form = {"_include": "DiagnosticReport:result", "_include:iterate": "Observation:has-member",
            "_count": "1"}
    for p in PATIENTS:
        for basis in ("UNNTAK", "FORHOYET_AKUTT"):
            answer = await sandbox.post("/proevesvar/DiagnosticReport/_search", data=form,
                                        headers={"person-id": p.nin, "access-basis": basis})
            yield "search", answer.json()
    refused = await sandbox.post("/proevesvar/DiagnosticReport/_search", data={"date": "x"},
                                 headers={"person-id": PATIENTS[0].nin})
    yield "refused", refused.json()


SOURCES = {"municipal": municipal_answers, "kjernejournal": kjernejournal_answers,
           "medication": medication_answers, "proevesvar": proevesvar_answers}


def errors(outcome: dict[str, Any], deliberate: re.Pattern[str] | None) -> list[str]:
    found = []
    for issue in outcome["issue"]:
        if issue["severity"] not in ("error", "fatal"):
            continue
        text = f"{issue.get('details', {}).get('text', '')} at {issue.get('expression')}"
        if deliberate is not None and deliberate.search(text):
            continue
        found.append(text)
    return found


@pytest.mark.parametrize("source", sorted(SOURCES))
async def test_every_sandbox_answer_is_valid_r4(
    fhir_host: str, sandbox: httpx.AsyncClient, source: str
) -> None:
    checked = 0
    problems: list[str] = []
    types: set[str] = set()
    async with httpx.AsyncClient(base_url=fhir_host, timeout=30) as validator:
        async for label, body in SOURCES[source](sandbox):
            assert isinstance(body, dict)
            assert "resourceType" in body, label
            types.add(body["resourceType"])
            outcome = (await validator.post(f"/{body['resourceType']}/$validate",
                                            json=body)).json()
            problems += [f"{label}: {e}" for e in errors(outcome, DELIBERATE.get(source))]
            checked += 1
    assert checked > 0
    assert not problems, "\n".join(sorted(set(problems))[:40])
    if source in ("municipal", "kjernejournal", "proevesvar"):
        assert "OperationOutcome" in types  # the refusals were validated too


async def test_the_validator_finds_the_invariants_it_is_trusted_with(fhir_host: str) -> None:
    """The check above can fail: the validator reports the errors the issue named."""
    broken = [
        ({"resourceType": "Consent", "status": "active", "scope": {"text": "t"},
          "category": [{"text": "c"}], "patient": {"reference": "Patient/p"}}, "ppc-1"),
        ({"resourceType": "MedicationAdministration", "status": "in-progress",
          "medicationCodeableConcept": {"text": "m"}, "subject": {"reference": "Patient/p"},
          "effectiveDateTime": "2026-01-01", "dosage": {"text": "1"}}, "mad-1"),
        ({"resourceType": "Composition", "status": "final", "type": {"text": "t"},
          "date": "2026-01-01", "title": "t"}, "Composition.author"),
    ]
    async with httpx.AsyncClient(base_url=fhir_host, timeout=30) as validator:
        for resource, expected in broken:
            outcome = (await validator.post(f"/{resource['resourceType']}/$validate",
                                            json=resource)).json()
            assert any(expected in e for e in errors(outcome, None)), outcome
