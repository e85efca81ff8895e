"""A world patient as scenario resources: FHIR R4, each record tagged with the source keeping it.

Sits under `sandbox.scenarios.export_patient`; `sandbox.scenario_read` is its inverse (the
round trip is tested for every built-in patient). Pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from connectors.identifiers import nin_system
from sandbox import world
from sandbox.municipal_records import (
    ALLERGY_CLINICAL,
    ALLERGY_VERIFICATION,
    BLOCK_POLICY,
    CONDITION_CLINICAL,
    CONFIDENTIALITY,
    CONSENT_SCOPE,
    HPR_SYSTEM,
    LIMITATION_POLICY,
    ORGNR,
    PARTICIPATION,
)
from sandbox.municipal_records import _dosage as dosage_of
from sandbox.proevesvar import CATEGORY_SYSTEM
from sandbox.scenario_format import (
    DECISION_DATE,
    KOMMUNENUMMER,
    LIMITATION_DESCRIPTION,
    LIMITATION_REASON,
    MEDICATION_SUFFIX,
    PRIVACY_TAG,
    SCENARIO_TAG,
    SERVICE_DESCRIPTION,
    SOURCE_TAG,
    patient_id,
)

Resource = dict[str, Any]
ADMINISTRATION_STATUS = {"active": "in-progress"}
SERVICE_STATUS = {"completed": "finished"}


def _concept(system: str, code: str, display: str | None) -> Resource:
    coding: Resource = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding], **({"text": display} if display else {})}


def _meta(source: str, municipality: str | None = None, security: tuple[str, ...] = ()
          ) -> Resource:
    tags = [{"system": SOURCE_TAG, "code": source}]
    if municipality:
        tags.append({"system": KOMMUNENUMMER, "code": municipality})
    meta: Resource = {"tag": tags}
    if security:
        meta["security"] = [{"system": CONFIDENTIALITY, "code": c} for c in security]
    return meta


def _instant(value: date | datetime) -> str:
    return value.isoformat() if isinstance(value, datetime) else f"{value.isoformat()}T00:00:00Z"


def render_patient(p: world.Patient) -> list[Resource]:
    """The Patient first, then every record of every source."""
    ref = {"reference": f"Patient/{patient_id(p.nin)}"}
    given, _, family = p.name.rpartition(" ")
    tags = [{"system": KOMMUNENUMMER, "code": p.municipality},
            *({"system": SCENARIO_TAG, "code": t} for t in p.tags),
            *({"system": PRIVACY_TAG, "code": c} for c in _privacy_codes(p))]
    patient: Resource = {
        "resourceType": "Patient", "id": patient_id(p.nin), "meta": {"tag": tags},
        "identifier": [{"use": "official", "system": nin_system(p.nin), "value": p.nin}],
        "name": [{"use": "official", "text": p.name, "family": family or p.name,
                  **({"given": given.split()} if given else {})}],
        "gender": p.gender, "birthDate": p.born.isoformat(),
        **({"deceasedDateTime": p.deceased.isoformat()} if p.deceased else {}),
    }
    records = [*_limitations(p, ref), *_blocks(p, ref), *_allergies(p, ref),
               *_critical(p, ref), *_services(p, ref), *_conditions(p, ref),
               *_medications(p, ref), *_labs(p, ref), *_documents(p, ref)]
    return [patient, *records]


def _privacy_codes(p: world.Patient) -> Iterator[str]:
    if p.kj_reserved:
        yield "kj-reserved"
    if p.kj_restricted:
        yield "kj-restricted"
    if p.pps_outcome:
        yield f"pps-{p.pps_outcome}"
    if not p.in_registry:
        yield "not-in-registry"
    if p.address_protection:
        yield f"address-{p.address_protection}"


def _limitations(p: world.Patient, ref: Resource) -> Iterator[Resource]:
    for t in p.treatment_limitations:
        code = _concept(t.system, t.code, t.display)
        consent: Resource = {
            "resourceType": "Consent", "id": t.id,
            "meta": _meta(t.where, t.municipality, t.security),
            "extension": [{"url": LIMITATION_DESCRIPTION, "valueString": t.description},
                          {"url": LIMITATION_REASON, "valueString": t.reason}],
            "status": "active", "scope": _concept(CONSENT_SCOPE, "treatment", "Treatment"),
            "category": [code], "patient": ref, "dateTime": t.decided_at.isoformat(),
            "performer": [{"display": t.decided_by}],
            "policyRule": {"text": LIMITATION_POLICY},
            "provision": {"type": "deny", "code": [code]},
        }
        if t.organisation:
            consent["organization"] = [{"identifier": {"system": ORGNR,
                                                       "value": t.organisation}}]
        yield consent


def _block(rid: str, source: str, store: str | None, hpr: str, ref: Resource) -> Resource:
    return {
        "resourceType": "Consent", "id": rid, "meta": _meta(source, store),
        "status": "active",
        "scope": _concept(CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
        "category": [_concept("http://loinc.org", "59284-0", "Patient Consent")],
        "patient": ref, "policyRule": {"text": BLOCK_POLICY},
        "provision": {"type": "deny", "actor": [{
            "role": _concept(PARTICIPATION, "PRCP", "primary information recipient"),
            "reference": {"identifier": {"system": HPR_SYSTEM, "value": hpr}}}]},
    }


def _blocks(p: world.Patient, ref: Resource) -> Iterator[Resource]:
    for hpr in p.kj_blocked_hpr:
        yield _block(f"kj-block-{hpr}", "kjernejournal", None, hpr, ref)
    for store, hpr in p.municipal_blocks:
        yield _block(f"block-{store}-{hpr}", "municipal", store, hpr, ref)


def _allergies(p: world.Patient, ref: Resource) -> Iterator[Resource]:
    for a in p.allergies:
        yield {
            "resourceType": "AllergyIntolerance", "id": a.id, "meta": _meta(a.where, a.municipality),
            "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
            "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION,
                                               "code": "confirmed"}]},
            "type": "allergy", "category": ["medication" if a.drug_reaction else "food"],
            "criticality": "high" if a.severity == "severe" else "low",
            "code": _concept(a.substance_system, a.substance_code, a.substance),
            "patient": ref, "recordedDate": a.recorded_at.isoformat(),
            "reaction": [{"manifestation": [{"text": a.reaction}], "severity": a.severity}],
        }


def _critical(p: world.Patient, ref: Resource) -> Iterator[Resource]:
    for c in p.critical_conditions:
        yield {
            "resourceType": "Condition", "id": c.id, "meta": _meta(c.where),
            "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
            "category": [_concept("http://nhn.no/kj/fhir/CodeSystem/CriticalInformationCategory",
                                  "5", "Kritisk medisinsk tilstand")],
            "code": _concept(world.ICD10, c.code, c.display), "subject": ref,
            "onsetDateTime": c.onset.isoformat(), "recordedDate": c.recorded_at.isoformat(),
        }


def _services(p: world.Patient, ref: Resource) -> Iterator[Resource]:
    for s in p.services:
        extension = [{"url": DECISION_DATE, "valueDate": s.decided_at.isoformat()}]
        if s.description:
            extension.append({"url": SERVICE_DESCRIPTION, "valueString": s.description})
        period = {"start": s.started.isoformat(), **({"end": s.ended.isoformat()} if s.ended
                                                     else {})}
        yield {
            "resourceType": "EpisodeOfCare", "id": s.id, "meta": _meta("municipal", s.municipality),
            "extension": extension, "status": SERVICE_STATUS.get(s.status, s.status),
            "type": [_concept(world.IPLOS, s.code, s.display)], "patient": ref,
            "managingOrganization": {"identifier": {"system": ORGNR, "value": s.unit}},
            "period": period,
        }


def _conditions(p: world.Patient, ref: Resource) -> Iterator[Resource]:
    for c in p.conditions:
        yield {
            "resourceType": "Condition", "id": c.id, "meta": _meta("municipal", c.municipality),
            "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL,
                                           "code": c.clinical_status}]},
            "code": _concept(c.system, c.code, c.display), "subject": ref,
            "onsetDateTime": c.onset.isoformat(),
        }


def _medications(p: world.Patient, ref: Resource) -> Iterator[Resource]:
    for m in p.medications:
        common: Resource = {"medicationCodeableConcept": _concept(world.ATC, m.atc, m.name),
                            "subject": ref, "effectivePeriod": {"start": m.started.isoformat()}}
        if m.reason_code:
            common["reasonCode"] = [_concept(world.ICPC2, m.reason_code, m.reason)]
        treatment = ([{"type": {"text": "treatmentID"}, "value": m.treatment_id}]
                     if m.treatment_id else [])
        if m.in_pll:
            ids = [{"type": {"text": "PLL"}, "value": m.pll_id}] if m.pll_id else []
            yield {"resourceType": "MedicationStatement", "id": m.id + MEDICATION_SUFFIX["pll"],
                   "meta": _meta("pll"), "identifier": ids + treatment, "status": m.status,
                   "dosage": [{"text": m.dosage}], **common}
        if m.prescription_id:
            yield {"resourceType": "MedicationStatement",
                   "id": m.id + MEDICATION_SUFFIX["eresept"], "meta": _meta("eresept"),
                   "identifier": [{"type": {"text": "prescriptionID"},
                                   "value": m.prescription_id}, *treatment],
                   "status": m.status, "dosage": [{"text": m.eresept_dosage or m.dosage}],
                   **common}
        if m.administered_in:
            resource: Resource = {
                "resourceType": "MedicationAdministration",
                "id": m.id + MEDICATION_SUFFIX["municipal"],
                "meta": _meta("municipal", m.administered_in),
                "status": ADMINISTRATION_STATUS.get(m.status, m.status), **common}
            if treatment:
                resource["identifier"] = treatment
            if given := dosage_of(m.dosage):
                resource["dosage"] = given
            else:
                resource["note"] = [{"text": m.dosage}]
            yield resource


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def _labs(p: world.Patient, ref: Resource) -> Iterator[Resource]:
    for r in p.lab_reports:
        yield {
            "resourceType": "DiagnosticReport", "id": r.id, "meta": _meta("proevesvar"),
            "status": "final", "category": [_concept(CATEGORY_SYSTEM, r.category, None)],
            "code": _concept(world.NLK, r.code, r.display), "subject": ref,
            "effectiveDateTime": r.effective.isoformat(), "issued": r.issued.isoformat(),
            "performer": [{"display": r.performer}],
            "result": [{"reference": f"Observation/{r.id}-{n}"}
                       for n, _ in enumerate(r.values, 1)],
        }
        for n, value in enumerate(r.values, 1):
            yield from _observations(value, f"{r.id}-{n}", r, ref)


def _observations(value: world.LabValueFact, oid: str, report: world.LabReportFact,
                  ref: Resource) -> Iterator[Resource]:
    resource: Resource = {
        "resourceType": "Observation", "id": oid, "meta": _meta("proevesvar"),
        "status": "final", "code": _concept(world.NLK, value.code, value.display), "subject": ref,
        "effectiveDateTime": report.effective.isoformat(),
    }
    if value.value:
        try:
            resource["valueQuantity"] = {"value": _number(value.value),
                                         **({"unit": value.unit} if value.unit else {})}
        except ValueError:
            resource["valueString"] = value.value
    if value.low is not None or value.high is not None:
        resource["referenceRange"] = [{
            **({"low": {"value": value.low}} if value.low is not None else {}),
            **({"high": {"value": value.high}} if value.high is not None else {})}]
    if value.members:
        resource["hasMember"] = [{"reference": f"Observation/{oid}-{n}"}
                                 for n, _ in enumerate(value.members, 1)]
    yield resource
    for n, member in enumerate(value.members, 1):
        yield from _observations(member, f"{oid}-{n}", report, ref)


def _documents(p: world.Patient, ref: Resource) -> Iterator[Resource]:
    for d in p.documents:
        yield {
            "resourceType": "DocumentReference", "id": d.id,
            "meta": _meta("municipal", d.municipality, ("R",) if d.confidential else ()),
            "status": "current", "type": _concept(world.DOC_TYPE, d.type_code, d.type_display),
            "subject": ref, "date": _instant(d.date), "description": d.title,
            "author": [{"identifier": {"system": ORGNR, "value": d.author}}],
            "content": [{"attachment": {"contentType": "application/pdf", "title": d.title}}],
        }
