"""Writing to a municipal store: a draft as FHIR R4, posted with a conditional create.

Sits under `connectors.municipal.connector` (its `write`), beside `reading`. The connector
resolves the person to the store's own Patient (as a read does: the identity number only in a
POST body), maps the draft (`resource_for`: a `Consent` of scope `treatment` for a treatment
limitation, modelled on KjConsentBehandlingsavklaring like the ones Kilde reads; a
`DocumentReference` with the note as inline text; a `MedicationAdministration`), and POSTs it
once to `[base]/[type]` with `If-None-Exist: identifier=system|value`, so a repeat finds the
first record instead of making a second. Only a store whose CapabilityStatement declares
`conditionalCreate` for the type is written to; Kilde never writes where a repeat could
duplicate a record.

The store answers 201 (created) or 200 (a record with that identifier exists) with the
resource; an `OperationOutcome` with 4xx is `UpstreamRejectedError` carrying its issue codes
(`outcome_issues`), never its text. What came back is read with the same mappers as a query,
so the result is what the next read shows, with the store's provenance.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from connectors import (
    ClinicalNoteDraft,
    Coding,
    Draft,
    MedicationAdministrationDraft,
    TreatmentLimitationDraft,
    UpstreamInvalidError,
    UpstreamRejectedError,
    WriteRequest,
    WriteResult,
)
from connectors.fhir import now
from connectors.municipal.identity import StorePatient, refers_to
from connectors.municipal.mapping import (
    LIMITATION_DESCRIPTION,
    LIMITATION_REASON,
    MAPPERS,
    SOURCE,
    provenance_of,
)

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
# ppc-1: a Consent names the rule it records (the same rule the stores' own limitations cite)
LIMITATION_POLICY = "Pasient- og brukerrettighetsloven § 4-9; helsepersonelloven § 4"
HPR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.4"
ORGNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.101"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# Kilde's mark on what it recorded for a caller (meta.source: the system that wrote it)
WRITER = "https://kilde.no/fhir/writer"

RESOURCE_TYPE: Mapping[type, str] = {
    TreatmentLimitationDraft: "Consent",
    ClinicalNoteDraft: "DocumentReference",
    MedicationAdministrationDraft: "MedicationAdministration",
}
OUTCOME_CODES = 8  # at most this many issue codes are passed on


def resource_type_of(draft: Draft) -> str:
    return RESOURCE_TYPE[type(draft)]


def _concept(coding: Coding) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [{"system": coding.system, "code": coding.code,
                                       **({"display": coding.display} if coding.display else {})}]}
    if coding.display:
        out["text"] = coding.display
    return out


def _instant(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _performer(name: str, request: WriteRequest) -> dict[str, Any]:
    """The responsible professional as a logical reference (HPR number) with their name."""
    reference: dict[str, Any] = {"display": name}
    if request.requester.hpr_number:
        reference["identifier"] = {"system": HPR_SYSTEM, "value": request.requester.hpr_number}
    return reference


def resource_for(request: WriteRequest, patient: StorePatient) -> dict[str, Any]:
    """The draft in `request` as the FHIR R4 resource to POST, its subject `patient`."""
    draft = request.draft
    system, value = request.identifier
    subject = {"reference": f"Patient/{patient.id}"}
    base: dict[str, Any] = {"resourceType": resource_type_of(draft),
                            "meta": {"source": WRITER},
                            "identifier": [{"system": system, "value": value}]}
    if isinstance(draft, TreatmentLimitationDraft):
        code = _concept(draft.code)
        extension = [{"url": LIMITATION_REASON, "valueString": draft.reason}]
        if draft.description:
            extension.insert(0, {"url": LIMITATION_DESCRIPTION, "valueString": draft.description})
        provision: dict[str, Any] = {"type": "deny", "code": [code]}
        if draft.valid_until is not None:
            provision["period"] = {"end": draft.valid_until.isoformat()}
        consent = base | {
            "extension": extension,
            "status": "active",
            "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "treatment",
                                  "display": "Treatment"}], "text": "Treatment"},
            "category": [code],
            "patient": subject,
            "dateTime": _instant(draft.decided_at),
            "performer": [_performer(draft.decided_by, request)],
            "policyRule": {"text": LIMITATION_POLICY},
            "provision": provision,
        }
        if request.requester.orgnr:
            consent["organization"] = [{"identifier": {"system": ORGNR_SYSTEM,
                                                       "value": request.requester.orgnr}}]
        return consent
    if isinstance(draft, ClinicalNoteDraft):
        return base | {
            "status": "current",
            "docStatus": "final",
            "type": _concept(draft.type),
            "subject": subject,
            "date": _instant(draft.date),
            "author": [_performer(draft.author, request)],
            "description": draft.title,
            "content": [{"attachment": {
                "contentType": "text/plain; charset=utf-8", "language": "nb",
                "data": _base64(draft.text), "title": draft.title,
                "creation": _instant(draft.date)}}],
        }
    administration = base | {
        "status": "completed",
        "medicationCodeableConcept": _concept(draft.medication) | {"text": draft.name},
        "subject": subject,
        "effectiveDateTime": _instant(draft.administered_at),
        "performer": [{"actor": _performer(draft.administered_by, request)}],
        "dosage": {"text": draft.dose},
    }
    if draft.route is not None:
        administration["dosage"]["route"] = _concept(draft.route)
    if draft.reason:
        administration["note"] = [{"text": draft.reason}]
    return administration


def _base64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def if_none_exist(identifier: tuple[str, str]) -> str:
    """The conditional create's query: `identifier=system|value`, URL-encoded."""
    system, value = identifier
    return "identifier=" + quote(f"{system}|{value}", safe="")


def outcome_issues(body: Any) -> tuple[str, ...]:
    """The issue codes of an OperationOutcome (`invalid`, `required`, `duplicate`, ...), in
    order, without repeats; never its diagnostics or details text."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ()
    codes: list[str] = []
    for issue in body.get("issue") or []:
        code = issue.get("code") if isinstance(issue, dict) else None
        if (isinstance(code, str) and code.replace("-", "").isalpha() and len(code) <= 32
                and code not in codes):
            codes.append(code)
    return tuple(codes[:OUTCOME_CODES])


def rejected(status: int, body: Any, what: str) -> UpstreamRejectedError:
    issues = outcome_issues(body) or ("unknown",)
    return UpstreamRejectedError(
        SOURCE, f"Source {SOURCE!r} rejected the {what} with HTTP {status} "
                f"({', '.join(issues)}).", status, issues=issues)


def read_written(body: Any, request: WriteRequest, patient: StorePatient, *,
                 created: bool) -> WriteResult:
    """The stored resource as the item a query shows, after checking it is the one asked for:
    of the type posted, about this patient, carrying the request's identifier."""
    rtype = resource_type_of(request.draft)
    if not isinstance(body, dict) or body.get("resourceType") != rtype:
        raise UpstreamInvalidError(SOURCE, f"Source {SOURCE!r} did not answer the write with "
                                           f"the {rtype} it stored.")
    subject = body.get("patient" if rtype == "Consent" else "subject")
    if not refers_to(subject, patient, request.patient_nin, contained=body.get("contained") or ()):
        raise UpstreamInvalidError(SOURCE, f"Source {SOURCE!r} answered the write with a "
                                           "record of another patient.")
    system, value = request.identifier
    identifiers = body.get("identifier") or []
    if not any(isinstance(i, dict) and i.get("system") == system and i.get("value") == value
               for i in identifiers if isinstance(identifiers, list)):
        raise UpstreamInvalidError(SOURCE, f"Source {SOURCE!r} answered the write with a "
                                           "record without its identifier.")
    provenance = provenance_of(body, municipality=request.municipality, fetched_at=now())
    return WriteResult(item=MAPPERS[rtype](body, provenance), created=created)  # type: ignore[arg-type]
