"""FHIR export of the audit trail: one R4 AuditEvent per stored event (pure).

Sits beside the audit sink: `kilde audit export` and the privacy officer's `POST /audit/export`
(gateway/audit/export.py) turn stored `AuditEvent`s into resources following HL7 Norway's
trust-framework profile (`no-domain-Trustframework-Auditevent`, IG hl7.fhir.no.domain.auditevent,
canonical http://hl7.no/fhir). The profile's shape, which this module follows:

- the one agent's `who` is a contained **PractitionerRole**: the Practitioner (HPR number, or
  the fødselsnummer only when there is none; name; authorisation, kodeverk 9060), the legal
  entity (Organization, orgnr) and the point of care (Location managed by an Organization);
- the patient is a contained Patient named by the R5 back-port extension `_patient` (1..1);
- `purposeOfEvent` carries the attest's purpose of use (HL7 v3 ActReason: TREAT, ETREAT, COC,
  BTG);
- `careRelationMetaData` carries the decision reference (id, description, user-selected) and
  `toa`, the time of attestation, all four 1..1 when the extension is present.

An event the profile cannot describe (a citizen reading their own record, an export with no
patient, an old row without the organisation) is still exported as a valid R4 AuditEvent, but
without claiming the profile in `meta.profile`, rather than claiming it falsely.

>>> from gateway.audit.events import AuditEvent
>>> event = AuditEvent(request_id="r1", outcome="DELIVERED", reason="PERMITTED",
...                    principal_kind="CLINICIAN", actor_person_id="04125845687")
>>> resource = to_fhir_audit_event(event)
>>> resource["resourceType"], resource["action"], resource["outcome"]
('AuditEvent', 'R', '0')
"""

from __future__ import annotations

from typing import Any

from connectors.identifiers import (
    DNR_SYSTEM,
    FHN_SYSTEM,
    FNR_SYSTEM,
    HPR_SYSTEM,
    ORGNR_SYSTEM,
    is_valid_nin,
    nin_system,
)
from gateway.audit.events import AuditEvent, format_time

NO_FHIR = "http://hl7.no/fhir/StructureDefinition"
PROFILE = f"{NO_FHIR}/no-domain-Trustframework-Auditevent"
CARE_RELATION_EXT = f"{NO_FHIR}/auditevent-carerelation-metadata-extension"
PATIENT_EXT = f"{NO_FHIR}/auditevent-patient-extension"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PROFESSION_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.9060"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
# AuditEvent.outcome: 0 success, 4 minor failure (denied, refused), 8 serious failure (a write
# whose outcome is not known)
_OUTCOME = {"DELIVERED": "0", "WRITE_ATTEMPTED": "0", "WRITTEN": "0", "DENIED": "4",
            "WRITE_REJECTED": "4", "WRITE_FAILED": "4", "WRITE_UNKNOWN": "8"}
SECURITY_ROLE_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
PURPOSE_DISPLAY = {"TREAT": "treatment", "ETREAT": "Emergency Treatment",
                   "COC": "coordination of care", "BTG": "break the glass"}
# who assigns each identifier (the attest's `authority`)
AUTHORITY = {FNR_SYSTEM: "https://www.skatteetaten.no", DNR_SYSTEM: "https://www.skatteetaten.no",
             FHN_SYSTEM: "https://www.nhn.no", HPR_SYSTEM: "https://www.helsedirektoratet.no/",
             ORGNR_SYSTEM: "https://www.brreg.no"}
# the profile is for health personnel and their organisations (the trust framework)
PROFILED_KINDS = frozenset({"CLINICIAN", "PRIVACY_OFFICER"})


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _identifier(system: str, value: str) -> dict[str, Any]:
    ident: dict[str, Any] = {"system": system, "value": value}
    if system in AUTHORITY:
        ident["assigner"] = {"display": AUTHORITY[system]}
    return ident


def _ref(local_id: str) -> dict[str, str]:
    return {"reference": f"#{local_id}"}


def _nin_system(nin: str) -> str:
    # FNR unless the number says D-number or felles hjelpenummer.
    return nin_system(nin) if is_valid_nin(nin) else FNR_SYSTEM


def _organisation(local_id: str, orgnr: str | None, name: str | None) -> dict[str, Any]:
    org: dict[str, Any] = {"resourceType": "Organization", "id": local_id}
    if orgnr:
        org["identifier"] = [_identifier(ORGNR_SYSTEM, orgnr)]
    if name:
        org["name"] = name
    return org


def _practitioner(event: AuditEvent) -> dict[str, Any]:
    # HPR identifies health personnel; the fødselsnummer only someone without one (a case
    # handler, the privacy officer), since the profile requires an identifier.
    identifier = (_identifier(HPR_SYSTEM, event.actor_hpr) if event.actor_hpr
                  else _identifier(_nin_system(event.actor_person_id), event.actor_person_id))
    practitioner: dict[str, Any] = {"resourceType": "Practitioner", "id": "practitioner",
                                    "identifier": [identifier]}
    if event.actor_name:
        practitioner["name"] = [{"text": event.actor_name}]
    if event.actor_profession:
        practitioner["qualification"] = [{"code": {"coding": [_coding(
            PROFESSION_SYSTEM, event.actor_profession, event.actor_profession_text)]}}]
    elif event.actor_profession_text:
        practitioner["qualification"] = [{"code": {"text": event.actor_profession_text}}]
    return practitioner


def _practitioner_role(event: AuditEvent) -> tuple[list[dict[str, Any]], bool]:
    """The contained resources behind the agent, and whether they satisfy the profile
    (PractitionerRole.practitioner, .organization and .location are each 1..1)."""
    resources = [_practitioner(event)]
    role: dict[str, Any] = {"resourceType": "PractitionerRole", "id": "role", "active": True,
                            "practitioner": _ref("practitioner")}
    has_org = bool(event.legal_entity or event.legal_entity_name)
    if has_org:
        resources.append(_organisation("legal-entity", event.legal_entity,
                                       event.legal_entity_name))
        role["organization"] = _ref("legal-entity")
    has_place = bool(event.point_of_care or event.point_of_care_name)
    if has_place:
        location: dict[str, Any] = {"resourceType": "Location", "id": "point-of-care"}
        if event.point_of_care_name:
            location["name"] = event.point_of_care_name
        if has_org and event.point_of_care == event.legal_entity:
            location["managingOrganization"] = _ref("legal-entity")
        else:
            resources.append(_organisation("point-of-care-org", event.point_of_care,
                                           event.point_of_care_name))
            location["managingOrganization"] = _ref("point-of-care-org")
        resources.append(location)
        role["location"] = [_ref("point-of-care")]
    if event.actor_profession:
        role["code"] = [{"coding": [_coding(PROFESSION_SYSTEM, event.actor_profession,
                                            event.actor_profession_text)]}]
    resources.insert(0, role)
    return resources, has_org and has_place


def _patient(nin: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "patient",
            "identifier": [_identifier(_nin_system(nin), nin)]}


def _care_relation(event: AuditEvent) -> dict[str, Any] | None:
    """The careRelationMetaData extension, present only when all four parts are known."""
    if event.toa is None or not event.decision_ref or not event.decision_description:
        return None
    return {"url": CARE_RELATION_EXT, "extension": [
        {"url": "decision-ref-id", "valueString": event.decision_ref},
        {"url": "decision-ref-description", "valueString": event.decision_description},
        {"url": "decision-ref-user-selected", "valueBoolean": event.user_selected},
        {"url": "toa", "valueUnsignedInt": event.toa},
    ]}


def _agent(event: AuditEvent) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [_coding(SECURITY_ROLE_TYPE, "humanuser", "human user")]},
        "who": _ref("role"),
        "requestor": True,
    }
    if event.actor_name:
        agent["name"] = event.actor_name
    return agent


def _citizen_agent(event: AuditEvent) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [_coding(SECURITY_ROLE_TYPE, "humanuser", "human user")]},
        "requestor": True,
    }
    # the citizen reads their own record: the actor is the patient
    if event.patient_nin == event.actor_person_id:
        agent["who"] = _ref("patient")
    else:
        agent["who"] = {"identifier": _identifier(_nin_system(event.actor_person_id),
                                                  event.actor_person_id)}
    return agent


def _entities(event: AuditEvent) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if event.patient_nin:
        patient: dict[str, Any] = {
            "what": _ref("patient"),
            "type": _coding(ENTITY_TYPE, "1", "Person"),
            "role": _coding(OBJECT_ROLE, "1", "Patient"),
        }
        if event.emergency:
            detail = [{"type": "emergency", "valueString": "true"}]
            if event.emergency_reason:
                detail.append({"type": "emergency-reason", "valueString": event.emergency_reason})
            patient["detail"] = detail
        entities.append(patient)
    delivered: dict[str, list[tuple[str, int]]] = {}
    for d in event.deliveries:
        if d.count > 0:
            delivered.setdefault(d.category, []).append((d.source, d.count))
    for category, parts in delivered.items():
        entities.append({
            "type": _coding(ENTITY_TYPE, "2", "System Object"),
            "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
            "name": category,
            "description": f"{sum(n for _, n in parts)} item(s) of category {category!r}",
            "detail": [
                {"type": "source", "valueString": f"{source}:{count}"} for source, count in parts
            ],
        })
    if event.client_id:  # the calling application (its HelseID client id): not an agent here,
        entities.append({  # since the profile allows only PractitionerRole agents
            "what": {"display": event.client_id},
            "type": _coding(ENTITY_TYPE, "2", "System Object"),
            "role": _coding(DICOM, "110150", "Application"),
            "name": "client application",
        })
    return entities


def to_fhir_audit_event(event: AuditEvent) -> dict[str, Any]:
    """The event as a FHIR R4 AuditEvent resource (a JSON-ready dict) per HL7 Norway's profile.

    type DICOM 110110 "Patient Record", subtype read, action R, outcome "0" (delivered) or "4"
    (denied, the reason code in `outcomeDesc`); a write: subtype create, action C, outcome "0"
    (attempted, written), "4" (rejected, failed) or "8" (unknown). `meta.profile` names the profile only when the
    event has what it requires (see the module docstring).
    """
    contained: list[dict[str, Any]] = []
    profiled = event.principal_kind in PROFILED_KINDS and bool(event.patient_nin)
    if event.principal_kind in PROFILED_KINDS:
        role_resources, complete = _practitioner_role(event)
        contained.extend(role_resources)
        profiled = profiled and complete
        agent = _agent(event)
    else:
        agent = _citizen_agent(event)
    if event.patient_nin:
        contained.append(_patient(event.patient_nin))

    resource: dict[str, Any] = {"resourceType": "AuditEvent", "id": event.event_id}
    if profiled:
        resource["meta"] = {"profile": [PROFILE]}
    if contained:
        resource["contained"] = contained
    extensions = []
    if event.patient_nin:
        extensions.append({"url": PATIENT_EXT, "valueReference": _ref("patient")})
    care = _care_relation(event)
    if care:
        extensions.append(care)
    if extensions:
        resource["extension"] = extensions
    resource.update({
        "type": _coding(DICOM, "110110", "Patient Record"),
        "subtype": [_coding(RESTFUL_INTERACTION, "create", "create") if event.action == "create"
                    else _coding(RESTFUL_INTERACTION, "read", "read")],
        "action": "C" if event.action == "create" else "R",
        "recorded": format_time(event.recorded_at),
        "outcome": _OUTCOME.get(event.outcome, "4"),
        "outcomeDesc": event.reason,
    })
    if event.purpose_of_use:
        resource["purposeOfEvent"] = [{"coding": [_coding(
            ACT_REASON, event.purpose_of_use, PURPOSE_DISPLAY.get(event.purpose_of_use))]}]
    resource["agent"] = [agent]
    resource["source"] = {
        "site": "Kilde",
        "observer": {"display": "Kilde"},
        "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
    }
    entities = _entities(event)
    if entities:
        resource["entity"] = entities
    return resource
