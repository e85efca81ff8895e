"""Pure FHIR -> model mapping for the municipal connector: one function per resource type.

Sits under `connectors.municipal.connector`: the connector fetches a `batch-response` Bundle
per store and unpacks it, and the `map_*` functions turn each resource into a unified
item. Readers are tolerant (unknown fields ignored, missing optional fields and bad dates give
None); a resource without an `id` or without its code is `UpstreamInvalidError`. A local
restriction (sperring) is a `Consent` with scope `patient-privacy` and `provision.type = deny`;
`Restriction` says which resources it covers.

>>> provenance_of({"id": "c1"}, municipality="0301", fetched_at=datetime(2026, 1, 1)).record_id
'c1'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors import (
    HPR_SYSTEM,
    Coding,
    Condition,
    DocumentReference,
    Dosage,
    Item,
    Medication,
    MunicipalService,
    Provenance,
    TreatmentLimitation,
    UpstreamInvalidError,
)
from connectors.fhir import (
    coding_of,
    extension_value,
    identifier_by_type,
    parse_date,
    parse_datetime,
    security_of,
    text_of,
)

SOURCE = "municipal"
EXT = "https://sandbox.kilde.no/fhir/StructureDefinition/"
DECISION_DATE = EXT + "service-decision-date"
SERVICE_DESCRIPTION = EXT + "service-description"
LIMITATION_DESCRIPTION = EXT + "behandlingsavklaring-description"
LIMITATION_REASON = EXT + "behandlingsavklaring-reason"

Resource = Mapping[str, Any]


def _invalid(resource: Resource, missing: str) -> UpstreamInvalidError:
    # Only a known type name goes into the message: never a value the upstream chose.
    kind = resource.get("resourceType")
    kind = kind if kind in SUBJECT else "resource"
    return UpstreamInvalidError(SOURCE, f"Source {SOURCE!r} sent a {kind} without {missing}.")


def record_id(resource: Resource) -> str:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise _invalid(resource, "an id")
    return rid


def required_code(concept: Any, resource: Resource, prefer_system: str | None = None) -> Coding:
    coding = coding_of(concept, prefer_system)
    if coding is None:
        raise _invalid(resource, "a code")
    return coding


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def scope_of(resource: Resource) -> str | None:
    """The Consent scope code (`treatment`, `patient-privacy`, ...), or None."""
    scope = resource.get("scope")
    codings = scope.get("coding") if isinstance(scope, dict) else None
    code = codings[0].get("code") if isinstance(codings, list) and codings and isinstance(
        codings[0], dict) else None
    return code if isinstance(code, str) and code else None


def provenance_of(resource: Resource, *, municipality: str, fetched_at: datetime) -> Provenance:
    """Where an item came from: this store's number, the record id, `meta.lastUpdated`."""
    rid = record_id(resource)
    meta = resource.get("meta")
    recorded = parse_datetime(meta.get("lastUpdated")) if isinstance(meta, dict) else None
    return Provenance(SOURCE, rid, fetched_at, recorded_at=recorded, municipality=municipality)


def _contained(resource: Resource, reference: Any) -> Mapping[str, Any]:
    if not isinstance(reference, str) or not reference.startswith("#"):
        return {}
    for item in resource.get("contained", []) or []:
        if isinstance(item, dict) and item.get("id") == reference[1:]:
            return item
    return {}


def _phone(organization: Mapping[str, Any]) -> str | None:
    for telecom in organization.get("telecom", []) or []:
        if isinstance(telecom, dict) and telecom.get("system") == "phone":
            return _str(telecom.get("value"))
    return None


_SERVICE_STATUS = {"finished": "completed", "waitlist": "planned", "onhold": "on-hold"}


def map_service(resource: Resource, provenance: Provenance) -> MunicipalService:
    """EpisodeOfCare (type: Volven 9151) -> MunicipalService; the unit's phone comes from the
    contained Organization that `managingOrganization` points at."""
    manager = resource.get("managingOrganization")
    manager = manager if isinstance(manager, dict) else {}
    unit = _contained(resource, manager.get("reference"))
    period = resource.get("period")
    period = period if isinstance(period, dict) else {}
    status = str(resource.get("status") or "unknown")
    return MunicipalService(
        id=record_id(resource),
        code=required_code(_first(resource.get("type")), resource),
        status=_SERVICE_STATUS.get(status, status),
        provenance=provenance,
        municipality=provenance.municipality or "",
        started=parse_date(period.get("start")),
        ended=parse_date(period.get("end")),
        decided_at=parse_date(extension_value(resource, DECISION_DATE)),
        unit=_str(manager.get("display")) or _str(unit.get("name")),
        phone=_phone(unit),
        description=_str(extension_value(resource, SERVICE_DESCRIPTION)),
        security=security_of(resource),
    )


def map_treatment_limitation(resource: Resource, provenance: Provenance) -> TreatmentLimitation:
    """Consent (scope treatment, modelled on KjConsentBehandlingsavklaring) -> TreatmentLimitation."""
    provision = _dict(resource.get("provision"))
    concept = _first(provision.get("code")) or _first(resource.get("category"))
    code = required_code(concept, resource)
    performer = _first(resource.get("performer"))
    status = str(resource.get("status") or "unknown")
    return TreatmentLimitation(
        id=record_id(resource),
        code=code,
        description=_str(extension_value(resource, LIMITATION_DESCRIPTION))
        or code.display or code.code,
        status="inactive" if status == "rejected" else status,
        provenance=provenance,
        decided_at=parse_datetime(resource.get("dateTime")),
        decided_by=_str(_dict(performer).get("display")),
        valid_until=parse_date(_dict(provision.get("period")).get("end")),
        reason=_str(extension_value(resource, LIMITATION_REASON)),
        security=security_of(resource),
    )


def map_condition(resource: Resource, provenance: Provenance) -> Condition:
    """Condition (ICPC-2 or ICD-10) -> Condition."""
    clinical = coding_of(resource.get("clinicalStatus"))
    return Condition(
        id=record_id(resource),
        code=required_code(resource.get("code"), resource),
        clinical_status=clinical.code if clinical and clinical.code else "unknown",
        provenance=provenance,
        onset=parse_date(resource.get("onsetDateTime")),
        recorded_at=parse_datetime(resource.get("recordedDate")),
        security=security_of(resource),
    )


_ADMINISTRATION_STATUS = {"in-progress": "active"}


def map_administration(resource: Resource, provenance: Provenance) -> Medication:
    """MedicationAdministration (LMDI style, ATC) -> Medication, linkable by `treatment_id`."""
    code = required_code(resource.get("medicationCodeableConcept"), resource, "http://www.whocc.no/atc")
    period = _dict(resource.get("effectivePeriod"))
    started = parse_date(period.get("start")) or parse_date(resource.get("effectiveDateTime"))
    dosage_text = _str(_dict(resource.get("dosage")).get("text"))
    route = coding_of(_dict(resource.get("dosage")).get("route"))
    status = str(resource.get("status") or "unknown")
    return Medication(
        id=record_id(resource),
        code=code,
        name=text_of(resource.get("medicationCodeableConcept")) or code.code,
        status=_ADMINISTRATION_STATUS.get(status, status),
        provenance=provenance,
        provenances=(provenance,),
        dosage=Dosage(dosage_text, route) if dosage_text else None,
        reason=coding_of(_first(resource.get("reasonCode"))),
        started=started,
        ended=parse_date(period.get("end")),
        treatment_id=identifier_by_type(resource, "treatmentID"),
        security=security_of(resource),
    )


def map_document(resource: Resource, provenance: Provenance) -> DocumentReference:
    """DocumentReference (metadata only) -> DocumentReference; `meta.security` R is kept."""
    doc_type = required_code(resource.get("type"), resource)
    attachment = _dict(_dict(_first(resource.get("content"))).get("attachment"))
    author = _dict(_first(resource.get("author")))
    return DocumentReference(
        id=record_id(resource),
        type=doc_type,
        title=_str(resource.get("description")) or _str(attachment.get("title"))
        or doc_type.display or "",
        status=str(resource.get("status") or "unknown"),
        provenance=provenance,
        date=parse_datetime(resource.get("date")),
        author=_str(author.get("display")),
        security=security_of(resource),
    )


# The element that names the patient, per type (the path of R4's `patient` search parameter).
SUBJECT = {"Consent": "patient", "EpisodeOfCare": "patient", "Condition": "subject",
           "MedicationAdministration": "subject", "DocumentReference": "subject",
           "AllergyIntolerance": "patient", "Flag": "subject"}

Mapper = Callable[[Resource, Provenance], Item]
MAPPERS: dict[str, Mapper] = {
    "EpisodeOfCare": map_service,
    "Consent": map_treatment_limitation,
    "Condition": map_condition,
    "MedicationAdministration": map_administration,
    "DocumentReference": map_document,
}


@dataclass(frozen=True, slots=True)
class Restriction:
    """A local sperring. Empty `types`, `records` and `labels` means the whole record."""

    types: frozenset[str] = frozenset()
    records: frozenset[str] = frozenset()  # "Type/id"
    labels: frozenset[str] = frozenset()

    def covers(self, resource: Resource) -> bool:
        if not (self.types or self.records or self.labels):
            return True
        rtype = str(resource.get("resourceType"))
        return (rtype in self.types
                or f"{rtype}/{resource.get('id')}" in self.records
                or any(label.code in self.labels for label in security_of(resource)))


def _denials(consents: Iterable[Resource]) -> Iterable[tuple[Resource, Mapping[str, Any]]]:
    """(Consent, provision) of each active `patient-privacy` deny Consent."""
    for consent in consents:
        provision = _dict(consent.get("provision"))
        if (scope_of(consent) == "patient-privacy" and consent.get("status") == "active"
                and provision.get("type") == "deny"):
            yield consent, provision


def _actors(provision: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [_dict(_dict(a).get("reference")) for a in provision.get("actor") or []]


def blocks(consents: Iterable[Resource], hpr_number: str | None) -> bool:
    """True when a deny Consent names the requesting professional (by HPR number) as its
    actor: the patient has blocked them (never opened, not even in an emergency)."""
    if not hpr_number:
        return False
    for _, provision in _denials(consents):
        for actor in _actors(provision):
            ident = _dict(actor.get("identifier"))
            if ident.get("system") == HPR_SYSTEM and ident.get("value") == hpr_number:
                return True
    return False


def restriction_of(consents: Iterable[Resource]) -> Restriction | None:
    """The union of active `patient-privacy` deny Consents without an actor (a Consent with
    an actor blocks named professionals: `blocks`), or None when there is none."""
    found = False
    types: set[str] = set()
    records: set[str] = set()
    labels: set[str] = set()
    for _, provision in _denials(consents):
        if _actors(provision):
            continue
        classes = {str(c["code"]) for c in provision.get("class", []) or []
                   if isinstance(c, dict) and c.get("code")}
        refs = {str(_dict(d.get("reference")).get("reference")) for d in
                provision.get("data", []) or [] if isinstance(d, dict)} - {"None"}
        codes = {str(s["code"]) for s in provision.get("securityLabel", []) or []
                 if isinstance(s, dict) and s.get("code")}
        if not (classes or refs or codes):
            return Restriction()  # the whole record is restricted
        found = True
        types |= classes
        records |= refs
        labels |= codes
    return Restriction(frozenset(types), frozenset(records), frozenset(labels)) if found else None
