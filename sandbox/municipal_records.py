"""The municipal stores' records: `sandbox.world` facts rendered as valid FHIR R4 resources.

Sits under `sandbox.municipal` (the HTTP store) and `sandbox.fhirbundle` (the transaction
Bundle export): `store_resources(number)` is everything store `number` holds, as a real
server would hold it: one `Patient` per person the municipality knows (opaque logical id, the
identity number only as an identifier), and every record pointing at it with a literal
reference `Patient/{id}`. Every resource carries the store's kommunenummer tag and a source tag
(`SOURCE_TAG`), so a Bundle of them says where each record is kept.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

from connectors.identifiers import nin_system
from sandbox import bulk, world

KOMMUNENUMMER = "https://register.geonorge.no/sosi-kodelister/inndelinger/inndelingsbase/kommunenummer"
SOURCE_TAG = "https://sandbox.kilde.no/fhir/CodeSystem/source"
ORGNR = "urn:oid:2.16.578.1.12.4.1.4.101"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
EXT = "https://sandbox.kilde.no/fhir/StructureDefinition/"
DECISION_DATE = EXT + "service-decision-date"
SERVICE_DESCRIPTION = EXT + "service-description"
LIMITATION_DESCRIPTION = EXT + "behandlingsavklaring-description"
LIMITATION_REASON = EXT + "behandlingsavklaring-reason"
# ppc-1: a Consent names the rule it records. A treatment limitation rests on the patient's
# right to refuse treatment and the physician's duty to decide (pasient- og brukerrettighetsloven
# § 4-9, helsepersonelloven § 4).
LIMITATION_POLICY = "Pasient- og brukerrettighetsloven § 4-9; helsepersonelloven § 4"
BLOCK_POLICY = "Pasientjournalloven § 17; pasient- og brukerrettighetsloven § 5-3"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
HPR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.4"

Resource = dict[str, Any]


def patient_id(number: str, nin: str) -> str:
    """The logical id store `number` gives a person: opaque, stable, different in every store,
    and never the identity number (it travels in URLs such as `patient=Patient/{id}`)."""
    return "pas-" + hashlib.sha256(f"kilde-sandbox:{number}:{nin}".encode()).hexdigest()[:16]


def _instant(value: date | datetime) -> str:
    return value.isoformat() if isinstance(value, datetime) else f"{value.isoformat()}T00:00:00Z"


def _concept(system: str, code: str, display: str) -> Resource:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _org_ref(orgnr: str) -> Resource:
    return {"identifier": {"system": ORGNR, "value": orgnr},
            "display": world.organisation(orgnr).name}


def _base(resource_type: str, rid: str, number: str, updated: date | datetime) -> Resource:
    return {"resourceType": resource_type, "id": rid,
            "meta": {"lastUpdated": _instant(updated),
                     "tag": [{"system": KOMMUNENUMMER, "code": number},
                             {"system": SOURCE_TAG, "code": "municipal"}]}}


def render_patient(p: world.Patient, number: str) -> Resource:
    given, _, family = p.name.rpartition(" ")
    return _base("Patient", patient_id(number, p.nin), number, p.born) | {
        "identifier": [{"use": "official", "system": nin_system(p.nin), "value": p.nin}],
        "active": True,
        "name": [{"use": "official", "family": family, "given": given.split()}],
        "gender": p.gender,
        "birthDate": p.born.isoformat(),
    }


def _services(p: world.Patient, number: str, subject: Resource) -> Iterator[Resource]:
    for s in (s for s in p.services if s.municipality == number):
        unit = world.organisation(s.unit)
        period = {"start": s.started.isoformat(), **({"end": s.ended.isoformat()} if s.ended else {})}
        extension = [{"url": DECISION_DATE, "valueDate": s.decided_at.isoformat()}]
        if s.description:
            extension.append({"url": SERVICE_DESCRIPTION, "valueString": s.description})
        yield _base("EpisodeOfCare", s.id, number, s.decided_at) | {
            "contained": [{"resourceType": "Organization", "id": "unit",
                           "identifier": [{"system": ORGNR, "value": unit.orgnr}],
                           "name": unit.name,
                           "telecom": [{"system": "phone", "value": unit.phone, "use": "work"}]}],
            "extension": extension,
            "status": {"completed": "finished"}.get(s.status, s.status),
            "type": [_concept(world.IPLOS, s.code, s.display)],
            "patient": subject,
            "managingOrganization": {"reference": "#unit", **_org_ref(s.unit)},
            "period": period,
        }


def _limitations(p: world.Patient, number: str, subject: Resource) -> Iterator[Resource]:
    for t in p.treatment_limitations:
        if t.where != world.MUNICIPAL or t.municipality != number:
            continue
        code = _concept(t.system, t.code, t.display)
        consent = _base("Consent", t.id, number, t.decided_at) | {
            "extension": [{"url": LIMITATION_DESCRIPTION, "valueString": t.description},
                          {"url": LIMITATION_REASON, "valueString": t.reason}],
            "status": "active",
            "scope": _concept(CONSENT_SCOPE, "treatment", "Treatment"),
            "category": [code],
            "patient": subject,
            "dateTime": _instant(t.decided_at),
            "performer": [{"display": t.decided_by}],
            "policyRule": {"text": LIMITATION_POLICY},
            "provision": {"type": "deny", "code": [code]},
        }
        if t.organisation:
            consent["organization"] = [_org_ref(t.organisation)]
        if t.security:
            consent["meta"]["security"] = [{"system": CONFIDENTIALITY, "code": c}
                                           for c in t.security]
        yield consent


def _blocks(p: world.Patient, number: str, subject: Resource) -> Iterator[Resource]:
    """A local block of a named professional: a patient-privacy deny Consent whose actor is
    the professional, by HPR number (pasientjournalloven § 17: the patient may bar named
    personnel from their record)."""
    for store, hpr in p.municipal_blocks:
        if store != number:
            continue
        yield _base("Consent", f"block-{hpr}", number, p.born) | {
            "status": "active",
            "scope": _concept(CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
            "category": [_concept("http://loinc.org", "59284-0", "Patient Consent")],
            "patient": subject,
            "policyRule": {"text": BLOCK_POLICY},
            "provision": {"type": "deny", "actor": [{
                "role": _concept(PARTICIPATION, "PRCP", "primary information recipient"),
                "reference": {"identifier": {"system": HPR_SYSTEM, "value": hpr}},
            }]},
        }


def _conditions(p: world.Patient, number: str, subject: Resource) -> Iterator[Resource]:
    for c in (c for c in p.conditions if c.municipality == number):
        yield _base("Condition", c.id, number, c.onset) | {
            "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL,
                                           "code": c.clinical_status}]},
            "code": _concept(c.system, c.code, c.display),
            "subject": subject,
            "onsetDateTime": c.onset.isoformat(),
            "recordedDate": c.onset.isoformat(),
        }


_DOSE = re.compile(r"(\d+(?:[.,]\d+)?)\s+(\w+)")


def _dosage(text: str) -> Resource:
    """mad-1: a dosage states its dose. The world keeps dosage as text ("1 tablett morgen"),
    so the leading amount and unit become the dose; text without one keeps only the text in a
    note (handled by the caller)."""
    found = _DOSE.match(text)
    if found is None:
        return {}
    return {"text": text, "dose": {"value": float(found[1].replace(",", ".")),
                                   "unit": found[2]}}


def _administrations(p: world.Patient, number: str, subject: Resource) -> Iterator[Resource]:
    for m in (m for m in p.medications if m.administered_in == number):
        resource = _base("MedicationAdministration", f"adm-{m.id}", number, m.started) | {
            "status": {"active": "in-progress"}.get(m.status, m.status),
            "medicationCodeableConcept": _concept(world.ATC, m.atc, m.name),
            "subject": subject,
            "effectivePeriod": {"start": m.started.isoformat()},
        }
        if dosage := _dosage(m.dosage):
            resource["dosage"] = dosage
        elif m.dosage:
            resource["note"] = [{"text": m.dosage}]
        if m.treatment_id:
            resource["identifier"] = [{"type": {"text": "treatmentID"}, "value": m.treatment_id}]
        if m.reason_code and m.reason:
            resource["reasonCode"] = [_concept(world.ICPC2, m.reason_code, m.reason)]
        yield resource


def _documents(p: world.Patient, number: str, subject: Resource) -> Iterator[Resource]:
    for d in (d for d in p.documents if d.municipality == number):
        resource = _base("DocumentReference", d.id, number, d.date) | {
            "status": "current",
            "type": _concept(world.DOC_TYPE, d.type_code, d.type_display),
            "subject": subject,
            "date": _instant(d.date),
            "author": [_org_ref(d.author)],
            "description": d.title,
            "content": [{"attachment": {"contentType": "application/pdf", "title": d.title}}],
        }
        if d.confidential:
            resource["meta"]["security"] = [{"system": CONFIDENTIALITY, "code": "R",
                                             "display": "restricted"}]
        yield resource


def _allergies(p: world.Patient, number: str, subject: Resource) -> Iterator[Resource]:
    """A CAVE kept in the municipal EPJ (`AllergyFact.where == MUNICIPAL`)."""
    for a in p.allergies:
        if a.where != world.MUNICIPAL or a.municipality != number:
            continue
        substance = _concept(a.substance_system, a.substance_code, a.substance)
        yield _base("AllergyIntolerance", a.id, number, a.recorded_at) | {
            "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
            "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION,
                                               "code": "confirmed"}]},
            "type": "allergy",
            "category": ["medication" if a.drug_reaction else "food"],
            "criticality": "high" if a.severity == "severe" else "low",
            "code": substance,
            "patient": subject,
            "recordedDate": a.recorded_at.isoformat(),
            "reaction": [{"manifestation": [{"text": a.reaction}], "severity": a.severity}],
        }


Renderer = Callable[[world.Patient, str, Resource], Iterator[Resource]]
RENDERERS: dict[str, Renderer] = {
    "Consent": _limitations,
    "Consent#privacy": _blocks,
    "EpisodeOfCare": _services,
    "Condition": _conditions,
    "MedicationAdministration": _administrations,
    "DocumentReference": _documents,
    "AllergyIntolerance": _allergies,
}
# The element that names the patient, per type (the R4 `patient` search parameter's path).
SUBJECT = {"Consent": "patient", "EpisodeOfCare": "patient", "Condition": "subject",
           "MedicationAdministration": "subject", "DocumentReference": "subject",
           "AllergyIntolerance": "patient", "Flag": "subject"}


def patient_records(p: world.Patient, number: str) -> list[Resource]:
    """One person's records in store `number` (without the Patient)."""
    subject = {"reference": f"Patient/{patient_id(number, p.nin)}"}
    return [r for render in RENDERERS.values() for r in render(p, number, subject)]


def knows(p: world.Patient, number: str) -> bool:
    """A store knows its residents and everyone it holds a record for."""
    return p.municipality == number or bool(patient_records(p, number))


def store_resources(number: str) -> tuple[Resource, ...]:
    """Everything store `number` holds now (with the current `sandbox.bulk` scope)."""
    return _store(number, bulk.current_items(), world.scenarios_key())


@functools.lru_cache(maxsize=16)
def _store(number: str, items: int, scenarios: str) -> tuple[Resource, ...]:
    del items, scenarios  # the cache key: bulk records and added scenarios change the world
    out: list[Resource] = []
    for fact in world.patients():
        p = bulk.patient(fact.nin) or fact
        if knows(p, number):
            out.append(render_patient(p, number))
            out.extend(patient_records(p, number))
    return tuple(out)
