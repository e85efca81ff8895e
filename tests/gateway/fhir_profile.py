"""An independent check of exported AuditEvents: FHIR R4 structure, then HL7 Norway's profile.

Written from the IG's FSH (HL7Norway/AuditEvent, igs/AuditEvent/input/fsh, profile
`no-domain-Trustframework-Auditevent`, v0.9.8), not from gateway/audit/fhir.py, so a
shared mistake cannot hide. Structure and datatypes are checked by the `fhir.resources`
models (R4B: AuditEvent, Bundle and the contained resources are unchanged from R4), then the
profile's own rules (and R4's required bindings, which the models leave unchecked):

- `agent.who` 1..1, only Reference(PractitionerRole) (every agent);
- PractitionerRole: practitioner 1..1 -> Practitioner with identifier 1..*; organization 1..1
  -> Organization; location 1..1 -> Location whose managingOrganization is an Organization;
- extension `_patient` (auditevent-patient-extension) 1..1 -> Patient with identifier 1..*;
  `_encounter` 0..1; `_careRelationMetaData` 0..1 with decision-ref-id (string),
  decision-ref-description (string), decision-ref-user-selected (boolean) and toa
  (unsignedInt), each 1..1;
- `purposeOfEvent.coding`: slice PURPOSE_OF_USE_VALUESET 1..1 from v3-PurposeOfUse (codes of
  the v3 ActReason code system);
- FHIR's dom-3: every contained resource is referenced from within the resource.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent as R4AuditEvent
from fhir.resources.R4B.bundle import Bundle as R4Bundle

BASE = "http://hl7.no/fhir/StructureDefinition/"
PROFILE = BASE + "no-domain-Trustframework-Auditevent"
PATIENT_EXT = BASE + "auditevent-patient-extension"
ENCOUNTER_EXT = BASE + "auditevent-encounter-extension"
CARE_EXT = BASE + "auditevent-carerelation-metadata-extension"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
# v3-PurposeOfUse: the _PurposeOfUse concepts of ActReason (those a gateway can use, at least)
PURPOSE_OF_USE = frozenset({
    "TREAT", "ETREAT", "BTG", "COC", "CAREMGT", "CLINTRCH", "HPAYMT", "HOPERAT", "HSYSADMIN",
    "PATADMIN", "PATRQT", "POPHLTH", "PUBHLTH", "RECORDMGT", "HRESCH", "HMARKT", "HQUALIMP",
    "HLEGAL", "HDIRECT", "PATSFTY", "TRAIN", "SYSDEV", "FRAUD", "HCOMPL", "HACCRED",
    "HOUTCOMS", "HPRGRP", "HTEST", "MILDCRG", "PERFMSR", "TRANSRCH", "PATCHAR",
})
CARE_PARTS = {"decision-ref-id": "valueString", "decision-ref-description": "valueString",
              "decision-ref-user-selected": "valueBoolean", "toa": "valueUnsignedInt"}


def _contained(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in resource.get("contained", [])}


def _target(resource: dict[str, Any], ref: Any, kind: str, where: str,
            problems: list[str]) -> dict[str, Any] | None:
    """The contained resource of type `kind` that `ref` points to, or a problem."""
    reference = ref.get("reference", "") if isinstance(ref, dict) else ""
    if not reference.startswith("#"):
        problems.append(f"{where} is not a reference to a contained {kind}")
        return None
    target = _contained(resource).get(reference[1:])
    if target is None or target.get("resourceType") != kind:
        problems.append(f"{where} does not point to a contained {kind}")
        return None
    return target


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and ref.startswith("#"):
            found.add(ref[1:])
        for v in value.values():
            found |= _references(v)
    elif isinstance(value, list):
        for v in value:
            found |= _references(v)
    return found


def _check_role(resource: dict[str, Any], role: dict[str, Any], problems: list[str]) -> None:
    practitioner = _target(resource, role.get("practitioner"), "Practitioner",
                           "PractitionerRole.practitioner", problems)
    if practitioner is not None and not practitioner.get("identifier"):
        problems.append("Practitioner.identifier is required (1..*)")
    _target(resource, role.get("organization"), "Organization", "PractitionerRole.organization",
            problems)
    locations = role.get("location") or []
    if len(locations) != 1:
        problems.append(f"PractitionerRole.location must be 1..1, has {len(locations)}")
    else:
        location = _target(resource, locations[0], "Location", "PractitionerRole.location",
                           problems)
        if location is not None and "managingOrganization" in location:
            _target(resource, location["managingOrganization"], "Organization",
                    "Location.managingOrganization", problems)


def _check_extensions(resource: dict[str, Any], problems: list[str]) -> None:
    extensions = resource.get("extension", [])
    patients = [e for e in extensions if e.get("url") == PATIENT_EXT]
    if len(patients) != 1:
        problems.append(f"extension _patient must be 1..1, has {len(patients)}")
    else:
        patient = _target(resource, patients[0].get("valueReference"), "Patient",
                          "extension _patient", problems)
        if patient is not None and not patient.get("identifier"):
            problems.append("Patient.identifier is required (1..*)")
    if len([e for e in extensions if e.get("url") == ENCOUNTER_EXT]) > 1:
        problems.append("extension _encounter must be 0..1")
    care = [e for e in extensions if e.get("url") == CARE_EXT]
    if len(care) > 1:
        problems.append("extension _careRelationMetaData must be 0..1")
    for ext in care:
        parts = ext.get("extension", [])
        for url, value_type in CARE_PARTS.items():
            found = [p for p in parts if p.get("url") == url]
            if len(found) != 1:
                problems.append(f"careRelationMetaData.{url} must be 1..1, has {len(found)}")
            elif set(found[0]) - {"url"} != {value_type}:
                problems.append(f"careRelationMetaData.{url} must be a {value_type}")
            elif url == "toa" and not (type(found[0][value_type]) is int
                                       and found[0][value_type] >= 0):
                problems.append("careRelationMetaData.toa must be a non-negative integer")


def profile_problems(resource: dict[str, Any]) -> list[str]:
    """Every way `resource` breaks FHIR R4 or HL7 Norway's AuditEvent profile (empty: none)."""
    problems: list[str] = []
    try:
        R4AuditEvent.model_validate(resource)
    except ValueError as exc:  # pydantic's ValidationError
        return [f"not a valid FHIR AuditEvent: {exc}"]
    # required bindings, which the models do not enforce
    if resource.get("action") not in (None, "C", "R", "U", "D", "E"):
        problems.append("action is not in the required value set audit-event-action")
    if resource.get("outcome") not in (None, "0", "4", "8", "12"):
        problems.append("outcome is not in the required value set audit-event-outcome")
    if PROFILE not in resource.get("meta", {}).get("profile", []):
        problems.append("meta.profile does not claim the profile")
    agents = resource.get("agent", [])
    for i, agent in enumerate(agents):
        role = _target(resource, agent.get("who"), "PractitionerRole", f"agent[{i}].who",
                       problems)
        if role is not None:
            _check_role(resource, role, problems)
    _check_extensions(resource, problems)
    for i, purpose in enumerate(resource.get("purposeOfEvent", [])):
        slice_ = [c for c in purpose.get("coding", [])
                  if c.get("system") == ACT_REASON and c.get("code") in PURPOSE_OF_USE]
        if len(slice_) != 1:
            problems.append(f"purposeOfEvent[{i}] needs exactly one v3-PurposeOfUse coding")
    unreferenced = set(_contained(resource)) - _references(
        {k: v for k, v in resource.items() if k != "contained"}
        | {"contained": resource.get("contained", [])})
    if unreferenced:
        problems.append(f"dom-3: contained resources never referenced: {sorted(unreferenced)}")
    return problems


def bundle_problems(bundle: dict[str, Any]) -> list[str]:
    """FHIR problems of the Bundle itself (its entries are checked one by one by the caller)."""
    try:
        R4Bundle.model_validate(bundle)
    except ValueError as exc:
        return [f"not a valid FHIR Bundle: {exc}"]
    return [] if bundle.get("type") == "collection" else ["Bundle.type is not collection"]
