"""FHIR export of the audit trail: one R4 AuditEvent per stored event (pure).

Sits beside the audit sink: an export endpoint or the privacy officer's tooling turns stored
`AuditEvent`s into resources following HL7 Norway's trust-framework profile
(`no-domain-Trustframework-Auditevent`, IG hl7.fhir.no.domain.auditevent): the reading
practitioner by HPR number, their legal entity and point of care by orgnr, the attest's
purpose of use, the patient by fødselsnummer, one entity per delivered category, and the
decision reference in the `careRelationMetaData` extension. The caller's own fødselsnummer
(`actor_person_id`) is deliberately left out: the export may be shown to the patient.

>>> from gateway.audit.events import AuditEvent
>>> event = AuditEvent(request_id="r1", outcome="DELIVERED", reason="PERMITTED",
...                    principal_kind="CLINICIAN", actor_person_id="04125845687")
>>> resource = to_fhir_audit_event(event)
>>> resource["resourceType"], resource["action"], resource["outcome"]
('AuditEvent', 'R', '0')
"""

from __future__ import annotations

from typing import Any

from connectors.identifiers import HPR_SYSTEM, ORGNR_SYSTEM, is_valid_nin, nin_system
from gateway.audit.events import AuditEvent, format_time

NO_FHIR = "http://hl7.no/fhir/StructureDefinition"
PROFILE = f"{NO_FHIR}/no-domain-Trustframework-Auditevent"
CARE_RELATION_EXT = f"{NO_FHIR}/auditevent-carerelation-metadata-extension"
PATIENT_EXT = f"{NO_FHIR}/auditevent-patient-extension"
PURPOSE_OF_USE_SYSTEM = "urn:oid:2.16.840.1.113883.1.11.20448"
PROFESSION_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.9060"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
SECURITY_ROLE_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _reference(system: str, value: str | None, display: str | None) -> dict[str, Any]:
    ref: dict[str, Any] = {}
    if value:
        ref["identifier"] = {"system": system, "value": value}
    if display:
        ref["display"] = display
    return ref


def _agents(event: AuditEvent) -> list[dict[str, Any]]:
    user: dict[str, Any] = {
        "type": {"coding": [_coding(SECURITY_ROLE_TYPE, "humanuser", "human user")]},
        "who": _reference(HPR_SYSTEM, event.actor_hpr, event.actor_name),
        "requestor": True,
    }
    if event.actor_profession:
        user["role"] = [{
            "coding": [_coding(PROFESSION_SYSTEM, event.actor_profession,
                               event.actor_profession_text)],
        }]
    elif event.actor_profession_text:
        user["role"] = [{"text": event.actor_profession_text}]
    if event.purpose_of_use:
        user["purposeOfUse"] = [{"coding": [_coding(PURPOSE_OF_USE_SYSTEM, event.purpose_of_use)]}]
    agents = [user]
    for code, display, orgnr, name in (
        ("PROV", "healthcare provider", event.legal_entity, event.legal_entity_name),
        ("SDLOC", "service delivery location", event.point_of_care, event.point_of_care_name),
    ):
        if orgnr or name:
            agents.append({
                "type": {"coding": [_coding(ROLE_CLASS, code, display)]},
                "who": _reference(ORGNR_SYSTEM, orgnr, name),
                "requestor": False,
            })
    if event.client_id:
        agents.append({
            "type": {"coding": [_coding(DICOM, "110150", "Application")]},
            "who": {"display": event.client_id},
            "requestor": False,
        })
    return agents


def _entities(event: AuditEvent) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if event.patient_nin:
        patient: dict[str, Any] = {
            "what": {"identifier": _patient_identifier(event.patient_nin)},
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
    return entities


def _patient_identifier(nin: str) -> dict[str, str]:
    # FNR unless the number says D-number or felles hjelpenummer.
    system = nin_system(nin) if is_valid_nin(nin) else "urn:oid:2.16.578.1.12.4.1.4.1"
    return {"system": system, "value": nin}


def _care_relation(event: AuditEvent) -> dict[str, Any] | None:
    parts: list[dict[str, Any]] = []
    if event.decision_ref:
        parts.append({"url": "decision-ref-id", "valueString": event.decision_ref})
    if event.decision_description:
        parts.append({"url": "decision-ref-description",
                      "valueString": event.decision_description})
    if event.decision_ref or event.decision_description or event.user_selected:
        parts.append({"url": "decision-ref-user-selected", "valueBoolean": event.user_selected})
    return {"url": CARE_RELATION_EXT, "extension": parts} if parts else None


def to_fhir_audit_event(event: AuditEvent) -> dict[str, Any]:
    """The event as a FHIR R4 AuditEvent resource (a JSON-ready dict) per HL7 Norway's profile.

    type rest / subtype read, action R, outcome "0" (delivered) or "4" (denied, with the
    reason code in `outcomeDesc`), purposeOfEvent in the HL7 v3 PurposeOfUse system.
    """
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event.event_id,
        "meta": {"profile": [PROFILE]},
    }
    extensions = []
    if event.patient_nin:
        extensions.append({
            "url": PATIENT_EXT,
            "valueReference": {"identifier": _patient_identifier(event.patient_nin)},
        })
    care = _care_relation(event)
    if care:
        extensions.append(care)
    if extensions:
        resource["extension"] = extensions
    resource.update({
        "type": _coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation"),
        "subtype": [_coding(RESTFUL_INTERACTION, "read", "read")],
        "action": "R",
        "recorded": format_time(event.recorded_at),
        "outcome": "0" if event.outcome == "DELIVERED" else "4",
        "outcomeDesc": event.reason,
    })
    if event.purpose_of_use:
        resource["purposeOfEvent"] = [
            {"coding": [_coding(PURPOSE_OF_USE_SYSTEM, event.purpose_of_use)]}
        ]
    resource["agent"] = _agents(event)
    resource["source"] = {
        "observer": {"display": "Kilde"},
        "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
    }
    resource["entity"] = _entities(event)
    return resource
