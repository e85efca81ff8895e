"""A scenario Bundle read back into a world patient, every problem named with its entry.

Sits under `sandbox.scenarios.load_folder`; the inverse of `sandbox.scenario_render`. A
problem is added to the file's `Place` (never raised one by one), and a file with any problem
gives no patient. Identity numbers are never quoted in a problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from connectors.identifiers import is_valid_nin
from sandbox import world
from sandbox.municipal_records import CONFIDENTIALITY, HPR_SYSTEM
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
    SOURCES,
    Place,
)

Resource = Mapping[str, Any]
MUNICIPALITIES = frozenset(m.number for m in world.MUNICIPALITIES)
PPS_OUTCOMES = ("Specific", "General", "Reservation")
# Folkeregisteret's adressebeskyttelse grades (privacy tag `address-<grade>`)
ADDRESS_GRADES = ("fortrolig", "strengtFortrolig", "strengtFortroligUtland")


class BadRecordError(ValueError):
    """One field of one resource is missing or wrong (caught per entry)."""


def _str(resource: Resource, key: str) -> str:
    value = resource.get(key)
    if not isinstance(value, str) or not value:
        raise BadRecordError(f"needs '{key}'")
    return value


def _when(resource: Resource, key: str) -> datetime:
    try:
        return datetime.fromisoformat(_str(resource, key))
    except ValueError:
        raise BadRecordError(f"has an invalid '{key}' (expected a date-time with an offset)") from None


def _day(value: Any, key: str) -> date:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise BadRecordError(f"has an invalid '{key}' (expected a date)") from None


def _coding(concept: Any, key: str) -> tuple[str, str, str | None]:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    if not isinstance(codings, list) or not codings or not isinstance(codings[0], Mapping):
        raise BadRecordError(f"needs '{key}' with a coding")
    first = codings[0]
    system, code = first.get("system"), first.get("code")
    if not isinstance(system, str) or not isinstance(code, str):
        raise BadRecordError(f"needs a system and a code in '{key}'")
    display = first.get("display") or concept.get("text")
    return system, code, display if isinstance(display, str) else None


def _tags(resource: Resource, system: str) -> list[str]:
    meta = resource.get("meta") if isinstance(resource.get("meta"), Mapping) else {}
    return [str(t.get("code")) for t in meta.get("tag") or []
            if isinstance(t, Mapping) and t.get("system") == system]


def _extension(resource: Resource, url: str) -> Any:
    for ext in resource.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == url:
            return next((v for k, v in ext.items() if k.startswith("value")), None)
    return None


def _identifier(resource: Resource, kind: str) -> str | None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, Mapping) and (ident.get("type") or {}).get("text") == kind:
            return str(ident.get("value"))
    return None


@dataclass
class Collected:
    """What the records of one patient add up to, in Bundle order."""

    limitations: list[world.TreatmentLimitationFact] = field(default_factory=list)
    allergies: list[world.AllergyFact] = field(default_factory=list)
    critical: list[world.CriticalConditionFact] = field(default_factory=list)
    services: list[world.ServiceFact] = field(default_factory=list)
    conditions: list[world.ConditionFact] = field(default_factory=list)
    medications: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: list[Resource] = field(default_factory=list)
    observations: dict[str, Resource] = field(default_factory=dict)
    documents: list[world.DocumentFact] = field(default_factory=list)
    kj_blocks: list[str] = field(default_factory=list)
    municipal_blocks: list[tuple[str, str]] = field(default_factory=list)


def read_patient(body: Any, where: Place) -> world.Patient | None:
    """The patient in one scenario Bundle, or None (with the problems added to `where`)."""
    if not isinstance(body, Mapping) or body.get("resourceType") != "Bundle" or body.get(
            "type") != "transaction":
        where.add("is not a FHIR transaction Bundle")
        return None
    entries = [e for e in body.get("entry") or [] if isinstance(e, Mapping)]
    resources = [e.get("resource") for e in entries]
    if not resources or not isinstance(resources[0], Mapping) or resources[0].get(
            "resourceType") != "Patient":
        where.add("must start with the Patient entry")
        return None
    before = len(where.problems.found)
    person = _person(resources[0], where.entry_at(0, resources[0]))
    if person is None:
        return None
    got = Collected()
    patient_ref = f"Patient/{resources[0].get('id')}"
    for index, resource in enumerate(resources[1:], 1):
        place = where.entry_at(index, resource)
        if not isinstance(resource, Mapping):
            place.add("has no resource")
            continue
        try:
            _read(resource, patient_ref, got)
        except BadRecordError as exc:
            place.add(str(exc))
    if len(where.problems.found) > before:
        return None
    if not _home(person, got, where):
        return None
    try:
        medications = tuple(_medication(m) for m in got.medications.values())
        labs = tuple(_report(r, got.observations) for r in got.reports)
    except BadRecordError as exc:
        where.add(str(exc))
        return None
    return world.Patient(
        **person, treatment_limitations=tuple(got.limitations), allergies=tuple(got.allergies),
        critical_conditions=tuple(got.critical), services=tuple(got.services),
        conditions=tuple(got.conditions), medications=medications, lab_reports=labs,
        documents=tuple(got.documents), kj_blocked_hpr=tuple(got.kj_blocks),
        municipal_blocks=tuple(got.municipal_blocks),
        **_privacy(resources[0]))


def _person(resource: Resource, where: Place) -> dict[str, Any] | None:
    nins = [str(i.get("value")) for i in resource.get("identifier") or []
            if isinstance(i, Mapping) and is_valid_nin(str(i.get("value")))]
    homes = _tags(resource, KOMMUNENUMMER)
    names = [n for n in resource.get("name") or [] if isinstance(n, Mapping)]
    text = names[0].get("text") if names else None
    problems = []
    if not nins:
        problems.append("needs an identifier with a valid national identity number (mod-11)")
    if len(homes) > 1 or (homes and homes[0] not in MUNICIPALITIES):
        problems.append(f"needs at most one kommunenummer tag ({KOMMUNENUMMER}) naming the home "
                        f"municipality, one of {sorted(MUNICIPALITIES)}")
    if not isinstance(text, str) or not text.strip():
        problems.append("needs name[0].text")
    if resource.get("gender") not in ("male", "female", "other", "unknown"):
        problems.append("needs a gender")
    if not _tags(resource, SCENARIO_TAG):
        problems.append(f"needs at least one scenario tag ({SCENARIO_TAG})")
    born: date | None = None
    try:
        born = _day(resource.get("birthDate"), "birthDate")
    except BadRecordError as exc:
        problems.append(str(exc))
    for problem in problems:
        where.add(problem)
    if problems or born is None:
        return None
    deceased = resource.get("deceasedDateTime")
    person = {"nin": nins[0], "name": str(text), "born": born, "gender": resource["gender"],
              "municipality": homes[0] if homes else "",
              "tags": tuple(_tags(resource, SCENARIO_TAG))}
    if deceased is not None:
        try:
            person["deceased"] = _day(deceased, "deceasedDateTime")
        except BadRecordError as exc:
            where.add(str(exc))
            return None
    return person


def _home(person: dict[str, Any], got: Collected, where: Place) -> bool:
    """Without a kommunenummer tag the home is derived from the patient's data: the one
    municipality whose store keeps the patient's municipal records."""
    if person["municipality"]:
        return True
    stores = {r.municipality for r in (*got.services, *got.conditions, *got.documents)}
    stores |= {r.municipality for r in (*got.limitations, *got.allergies)
               if r.where == world.MUNICIPAL and r.municipality}
    if len(stores) == 1:
        person["municipality"] = stores.pop()
        return True
    where.add(f"needs a kommunenummer tag ({KOMMUNENUMMER}) naming the home municipality: "
              + ("its municipal records are in several stores" if stores
                 else "it has no municipal record to derive it from"))
    return False


def _privacy(resource: Resource) -> dict[str, Any]:
    codes = set(_tags(resource, PRIVACY_TAG))
    outcome = next((o for o in PPS_OUTCOMES if f"pps-{o}" in codes), None)
    grade = next((g for g in ADDRESS_GRADES if f"address-{g}" in codes), None)
    return {"kj_reserved": "kj-reserved" in codes, "kj_restricted": "kj-restricted" in codes,
            "pps_outcome": outcome, "in_registry": "not-in-registry" not in codes,
            "address_protection": grade}


def _source(resource: Resource) -> tuple[str, str | None]:
    sources = _tags(resource, SOURCE_TAG)
    if len(sources) != 1 or sources[0] not in SOURCES:
        raise BadRecordError(f"needs one source tag ({SOURCE_TAG}), one of {list(SOURCES)}")
    stores = _tags(resource, KOMMUNENUMMER)
    if sources[0] == "municipal":
        if len(stores) != 1 or stores[0] not in MUNICIPALITIES:
            raise BadRecordError(f"is a municipal record and needs the store's kommunenummer tag, one of "
                      f"{sorted(MUNICIPALITIES)}")
        return sources[0], stores[0]
    return sources[0], None


def _read(resource: Resource, patient_ref: str, got: Collected) -> None:
    rtype = resource.get("resourceType")
    reader = READERS.get(str(rtype))
    if reader is None:
        raise BadRecordError(f"has a resource type the sandbox does not serve; use one of {sorted(READERS)}")
    _str(resource, "id")
    source, store = _source(resource)
    subject = resource.get("patient") or resource.get("subject")
    if not isinstance(subject, Mapping) or subject.get("reference") != patient_ref:
        raise BadRecordError(f"must refer to the Bundle's Patient ({patient_ref})")
    reader(resource, source, store, got)


def _consent(resource: Resource, source: str, store: str | None, got: Collected) -> None:
    scope = _coding(resource.get("scope"), "scope")[1]
    provision = resource.get("provision") if isinstance(resource.get("provision"), Mapping) else {}
    if scope == "patient-privacy":
        hprs = [str(a["reference"]["identifier"]["value"]) for a in provision.get("actor") or []
                if isinstance(a, Mapping) and isinstance(a.get("reference"), Mapping)
                and (a["reference"].get("identifier") or {}).get("system") == HPR_SYSTEM]
        if not hprs:
            raise BadRecordError("is a patient-privacy Consent without an actor HPR number (a block)")
        if source == "kjernejournal":
            got.kj_blocks.extend(hprs)
        elif source == "municipal" and store:
            got.municipal_blocks.extend((store, hpr) for hpr in hprs)
        else:
            raise BadRecordError("is a block kept neither in Kjernejournal nor a municipal store")
        return
    if scope != "treatment":
        raise BadRecordError("is a Consent whose scope is neither 'treatment' nor 'patient-privacy'")
    if source not in ("municipal", "kjernejournal"):
        raise BadRecordError("is a treatment limitation kept neither in Kjernejournal nor a municipal store")
    codes = provision.get("code") or []
    system, code, display = _coding(codes[0] if codes else None, "provision.code")
    organisations = resource.get("organization") or []
    org = (organisations[0].get("identifier") or {}).get("value") if organisations else None
    performers = [p for p in resource.get("performer") or [] if isinstance(p, Mapping)]
    meta = resource.get("meta") or {}
    got.limitations.append(world.TreatmentLimitationFact(
        id=resource["id"], code=code, display=display or code,
        description=str(_extension(resource, LIMITATION_DESCRIPTION) or display or code),
        decided_at=_when(resource, "dateTime"),
        decided_by=str(performers[0].get("display")) if performers else "",
        reason=str(_extension(resource, LIMITATION_REASON) or ""), where=source,
        municipality=store, organisation=org, system=system,
        security=tuple(str(s.get("code")) for s in meta.get("security") or []
                       if isinstance(s, Mapping) and s.get("system") == CONFIDENTIALITY)))


def _allergy(resource: Resource, source: str, store: str | None, got: Collected) -> None:
    if source not in ("municipal", "kjernejournal"):
        raise BadRecordError("is a CAVE kept neither in Kjernejournal nor a municipal store")
    system, code, display = _coding(resource.get("code"), "code")
    reactions = [r for r in resource.get("reaction") or [] if isinstance(r, Mapping)]
    manifest = (reactions[0].get("manifestation") or [{}])[0] if reactions else {}
    severity = reactions[0].get("severity") if reactions else None
    got.allergies.append(world.AllergyFact(
        resource["id"], system, code, display or code, str(manifest.get("text") or ""),
        str(severity or "moderate"), _when(resource, "recordedDate"), source,
        drug_reaction="medication" in (resource.get("category") or []), municipality=store))


def _condition(resource: Resource, source: str, store: str | None, got: Collected) -> None:
    system, code, display = _coding(resource.get("code"), "code")
    onset = _day(resource.get("onsetDateTime"), "onsetDateTime")
    if source == "kjernejournal":
        got.critical.append(world.CriticalConditionFact(
            resource["id"], code, display or code, onset, _when(resource, "recordedDate")))
    elif source == "municipal" and store:
        status = _coding(resource.get("clinicalStatus"), "clinicalStatus")[1]
        got.conditions.append(world.ConditionFact(resource["id"], system, code, display or code,
                                                  onset, store, clinical_status=status))
    else:
        raise BadRecordError("is a Condition kept neither in Kjernejournal nor a municipal store")


def _service(resource: Resource, source: str, store: str | None, got: Collected) -> None:
    if source != "municipal" or not store:
        raise BadRecordError("is a municipal service kept outside a municipal store")
    _, code, display = _coding((resource.get("type") or [None])[0], "type")
    period = resource.get("period") if isinstance(resource.get("period"), Mapping) else {}
    unit = ((resource.get("managingOrganization") or {}).get("identifier") or {}).get("value")
    if not isinstance(unit, str) or not unit:
        raise BadRecordError("needs managingOrganization.identifier (the responsible unit's orgnr)")
    status = {"finished": "completed"}.get(str(resource.get("status")), str(resource.get("status")))
    decided = _extension(resource, DECISION_DATE)
    got.services.append(world.ServiceFact(
        resource["id"], code, display or code, status, _day(period.get("start"), "period.start"),
        store, unit, _day(decided or period.get("start"), "decision date"),
        ended=_day(period["end"], "period.end") if period.get("end") else None,
        description=str(_extension(resource, SERVICE_DESCRIPTION) or "")))


def _medication_record(resource: Resource, source: str, store: str | None,
                       got: Collected) -> None:
    rtype = resource["resourceType"]
    if (rtype == "MedicationStatement") != (source in ("pll", "eresept")) or (
            rtype == "MedicationAdministration" and source != "municipal"):
        raise BadRecordError("is a medication record in the wrong source (MedicationStatement: pll or "
                  "eresept; MedicationAdministration: municipal)")
    suffix = MEDICATION_SUFFIX[source]
    rid = resource["id"]
    key = rid[:-len(suffix)] if rid.endswith(suffix) else rid
    _, atc, name = _coding(resource.get("medicationCodeableConcept"),
                           "medicationCodeableConcept")
    dosages = resource.get("dosage")
    if isinstance(dosages, list):
        dosages = dosages[0] if dosages else {}
    text = (dosages or {}).get("text") or next(
        (n.get("text") for n in resource.get("note") or [] if isinstance(n, Mapping)), "")
    reason = (resource.get("reasonCode") or [None])[0]
    record = got.medications.setdefault(key, {"id": key})
    record.setdefault("atc", atc)
    record.setdefault("name", name or atc)
    record.setdefault("started", _day((resource.get("effectivePeriod") or {}).get("start"),
                                      "effectivePeriod.start"))
    if reason is not None:
        _, record["reason_code"], record["reason"] = _coding(reason, "reasonCode")
    if treatment := _identifier(resource, "treatmentID"):
        record["treatment_id"] = treatment
    status = str(resource.get("status"))
    record.setdefault("status", {"in-progress": "active"}.get(status, status))
    record[f"dosage_{source}"] = str(text)
    if source == "pll":
        record["in_pll"] = True
        record["pll_id"] = _identifier(resource, "PLL")
    elif source == "eresept":
        record["prescription_id"] = _identifier(resource, "prescriptionID")
    else:
        record["administered_in"] = store


def _medication(record: dict[str, Any]) -> world.MedicationFact:
    own = {k: v for k, v in record.items() if not k.startswith("dosage_")}
    pll, rx, adm = (record.get(f"dosage_{s}") for s in ("pll", "eresept", "municipal"))
    dosage = pll if pll is not None else rx if rx is not None else adm or ""
    eresept = rx if pll is not None and rx is not None and rx != pll else None
    return world.MedicationFact(**own, dosage=dosage, eresept_dosage=eresept)


def _lab(resource: Resource, source: str, store: str | None, got: Collected) -> None:
    if source != "proevesvar":
        raise BadRecordError("is a lab result kept outside Pasientens prøvesvar")
    if resource["resourceType"] == "DiagnosticReport":
        got.reports.append(resource)
    else:
        got.observations[f"Observation/{resource['id']}"] = resource


def _report(resource: Resource, observations: Mapping[str, Resource]) -> world.LabReportFact:
    _, category, _ = _coding((resource.get("category") or [None])[0], "category")
    _, code, display = _coding(resource.get("code"), "code")
    performers = [p for p in resource.get("performer") or [] if isinstance(p, Mapping)]
    values = tuple(_value(str(r.get("reference")), observations)
                   for r in resource.get("result") or [] if isinstance(r, Mapping))
    return world.LabReportFact(
        str(resource["id"]), category, code, display or code, _when(resource, "issued"),
        _when(resource, "effectiveDateTime"),
        str(performers[0].get("display")) if performers else "", values)


def _value(ref: str, observations: Mapping[str, Resource]) -> world.LabValueFact:
    found = observations.get(ref)
    if found is None:
        raise BadRecordError(f"refers to {ref}, which is not in the Bundle")
    _, code, display = _coding(found.get("code"), "code")
    quantity = found.get("valueQuantity") if isinstance(found.get("valueQuantity"), Mapping) else {}
    number = quantity.get("value")
    value = str(number) if number is not None else str(found.get("valueString") or "")
    ranges = (found.get("referenceRange") or [{}])[0]
    low = (ranges.get("low") or {}).get("value")
    high = (ranges.get("high") or {}).get("value")
    members = tuple(_value(str(m.get("reference")), observations)
                    for m in found.get("hasMember") or [] if isinstance(m, Mapping))
    return world.LabValueFact(code, display or code, value, quantity.get("unit"),
                              float(low) if low is not None else None,
                              float(high) if high is not None else None, members)


def _document(resource: Resource, source: str, store: str | None, got: Collected) -> None:
    if source != "municipal" or not store:
        raise BadRecordError("is a document kept outside a municipal store")
    _, code, display = _coding(resource.get("type"), "type")
    authors = resource.get("author") or []
    author = (authors[0].get("identifier") or {}).get("value") if authors else None
    if not isinstance(author, str):
        raise BadRecordError("needs author[0].identifier (the author organisation's orgnr)")
    labels = {str(s.get("code")) for s in (resource.get("meta") or {}).get("security") or []
              if isinstance(s, Mapping)}
    got.documents.append(world.DocumentFact(
        resource["id"], code, display or code, _str(resource, "description"),
        _when(resource, "date"), author, store, confidential="R" in labels))


Reader = Callable[[Resource, str, "str | None", Collected], None]
READERS: dict[str, Reader] = {
    "Consent": _consent, "AllergyIntolerance": _allergy, "Condition": _condition,
    "EpisodeOfCare": _service, "MedicationStatement": _medication_record,
    "MedicationAdministration": _medication_record, "DiagnosticReport": _lab,
    "Observation": _lab, "DocumentReference": _document,
}
