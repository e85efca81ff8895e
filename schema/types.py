"""GraphQL types: the unified patient model as the API serves it, and the API's own types.

Sits between the gateway and the resolvers. The model's types are not declared here:
`connectors.model` is their one declaration (fields, order, descriptions) and they are
derived from its dataclasses (`schema.derived`), so a field added there is served. What the
API adds to or hides from the model is named below, and nothing else: `HIDDEN` (internals
the API does not show) and `COMPUTED` (fields the API adds, computed when asked). The
connectors' frozen dataclasses are served as they are (Strawberry reads their attributes).
The rest of this module (`SourceStatus`, `Source`, the access log, ...) are the API's own
types, declared here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import strawberry

from connectors import model
from policies.model import PrincipalKind as _PrincipalKind
from policies.model import PurposeOfUse as _PurposeOfUse
from schema.derived import derive_enum, derive_type

Category = derive_enum(model.Category)
Status = derive_enum(model.Status)
CriticalType = derive_enum(model.CriticalType)
AlertKind = derive_enum(model.AlertKind)
LimitationMeaning = derive_enum(model.LimitationMeaning)
PrincipalKind = strawberry.enum(_PrincipalKind)
PurposeOfUse = strawberry.enum(_PurposeOfUse)


def _age(fetched_at: datetime | None) -> float | None:
    if fetched_at is None:
        return None
    if fetched_at.tzinfo is None:
        fetched_at = fetched_at.replace(tzinfo=UTC)
    return round(max(0.0, (datetime.now(UTC) - fetched_at).total_seconds()), 1)


def _age_seconds(self: model.Provenance) -> float:
    return _age(self.fetched_at) or 0.0


def _age_in_years(self: model.Demographics) -> int | None:
    born = self.birth_date
    if born is None:
        return None
    until = self.deceased_date or datetime.now(UTC).date()
    return until.year - born.year - ((until.month, until.day) < (born.month, born.day))


# What the API does not show of the model (besides `security` on every item, which the policy
# reads): the key medication linking matches on, and the registry's person id (the item is
# the patient's own; `provenance.recordId` names the record).
HIDDEN: Mapping[type, frozenset[str]] = {
    model.Medication: frozenset({"treatment_id"}),
    model.Demographics: frozenset({"id"}),
}
# What the API adds to the model: fields computed when asked, after the model's own.
COMPUTED: Mapping[type, Mapping[str, Any]] = {
    model.Provenance: {"age_seconds": strawberry.field(
        resolver=_age_seconds,
        description="Seconds since the source gave this item (grows in cache).")},
    model.Demographics: {"age": strawberry.field(
        resolver=_age_in_years,
        description="Whole years: today, or at death for a deceased person.")},
}
# Every dataclass of the model the API serves, each derived once; `DERIVED` maps it to its type.
MODEL: tuple[type, ...] = (
    model.Coding, model.Provenance, model.Dosage, model.MedicationRecord, model.LabResult,
    model.TreatmentLimitation, model.CriticalInformation, model.Medication, model.LabReport,
    model.MunicipalService, model.Condition, model.DocumentReference, model.Demographics,
    model.Alert,
)
DERIVED: dict[type, Any] = {}
for _cls in MODEL:
    derive_type(_cls, DERIVED, hidden=HIDDEN, computed=COMPUTED)

Coding = DERIVED[model.Coding]
Provenance = DERIVED[model.Provenance]
Dosage = DERIVED[model.Dosage]
MedicationRecord = DERIVED[model.MedicationRecord]
LabResult = DERIVED[model.LabResult]
TreatmentLimitation = DERIVED[model.TreatmentLimitation]
CriticalInformation = DERIVED[model.CriticalInformation]
Medication = DERIVED[model.Medication]
LabReport = DERIVED[model.LabReport]
MunicipalService = DERIVED[model.MunicipalService]
Condition = DERIVED[model.Condition]
DocumentReference = DERIVED[model.DocumentReference]
Demographics = DERIVED[model.Demographics]
Alert = DERIVED[model.Alert]


@strawberry.type(description="How one source answered for one category in this request.")
class SourceStatus:
    source: str
    category: Category  # type: ignore[valid-type]
    status: Status  # type: ignore[valid-type]
    latency_ms: float | None
    fetched_at: datetime | None
    from_cache: bool
    detail: str | None
    reason: str | None = strawberry.field(description=(
        "Why the status is not plain OK/EMPTY, as a stable code: a policy reason "
        "(MUNICIPAL_BORDER, RESTRICTED_NEEDS_EMERGENCY, SECURITY_LABEL_RESTRICTED, "
        "PATIENT_BLOCKED_REQUESTER, ...), an UPSTREAM_* code, STALE, PARTIAL_ANSWER, "
        "UNREADABLE_RECORDS (records the source sent that Kilde could not read) or "
        "LINKED_PATIENT_RECORD."))
    municipality: str | None = strawberry.field(description=(
        "The municipal store (kommunenummer) this row is about, for sources with one store "
        "per municipality; null for a national source or all its stores together."))

    @strawberry.field(description="Seconds since the source answered; large when from cache "
                      "or STALE.")
    def age_seconds(self) -> float | None:
        return _age(self.fetched_at)


@strawberry.type(description="A source in the catalogue: what it serves, where, and its health.")
class Source:
    name: str
    version: str
    standard: str
    categories: list[Category]  # type: ignore[valid-type]
    municipalities: list[str]
    timeout_seconds: float
    health: str
    last_success: datetime | None = strawberry.field(
        default=None, description="When this replica last had a live answer from the source.")
    last_failure: datetime | None = strawberry.field(
        default=None, description="When a request to the source last failed in this replica.")
    last_error: str | None = strawberry.field(
        default=None, description="The code of that failure, e.g. UPSTREAM_TIMEOUT.")
    description: str | None = None


@strawberry.type(description="The caller, as Kilde understood the token and its attest.")
class Principal:
    kind: PrincipalKind  # type: ignore[valid-type]
    name: str | None
    hpr_number: str | None
    profession: str | None
    profession_text: str | None
    legal_entity: str | None
    legal_entity_name: str | None
    point_of_care: str | None
    point_of_care_name: str | None
    municipality: str | None
    purpose_of_use: PurposeOfUse | None  # type: ignore[valid-type]
    decision_ref: str | None
    scopes: list[str]


@strawberry.type(description="What one access delivered: category, source, status, item count.")
class AccessDelivery:
    category: str
    source: str
    status: str
    count: int
    municipality: str | None = strawberry.field(
        default=None, description="The municipality whose own store delivered these items "
        "(its data controller); null for a national source.")


@strawberry.type(description="One access to a patient's data, as the citizen or privacy officer sees it.")
class AccessLogEntry:
    id: str
    patient_nin: str | None = strawberry.field(
        description="The patient whose data was accessed.")
    time: datetime
    outcome: str
    reason: str
    who: str | None
    profession: str | None
    organisation: str | None
    point_of_care: str | None
    purpose_of_use: str | None
    emergency: bool
    emergency_reason: str | None
    categories: list[str]
    deliveries: list[AccessDelivery]


@strawberry.type
class AccessLogEdge:
    cursor: str
    node: AccessLogEntry


@strawberry.type
class PageInfo:
    end_cursor: str | None
    has_next_page: bool


@strawberry.type
class AccessLogConnection:
    edges: list[AccessLogEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="Deliveries per day, source, category and municipality (no personal data).")
class UsageRow:
    day: date
    source: str
    category: str
    municipality: str | None = strawberry.field(
        description="The municipality of the personnel who asked.")
    deliveries: int
    items: int
    data_municipality: str | None = strawberry.field(
        default=None, description="The municipality whose data was delivered (its own "
        "store); null for a national source.")


@strawberry.type(description="A patient context an EPJ handed over with POST /launch: who the "
                 "app should open. Readable once, by the user who created it.")
class LaunchContext:
    patient: str = strawberry.field(description="The patient's national identity number.")
    encounter: str | None = strawberry.field(
        description="The EPJ's id of the contact (encounter), when it gave one.")
