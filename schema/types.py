"""GraphQL types: the unified patient model as Strawberry sees it.

Sits between the gateway and the resolvers. The connectors' frozen dataclasses are served as
they are (Strawberry reads attributes), so these classes only declare the GraphQL shape; the
enums are the connectors' own enums, registered with Strawberry.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import strawberry

from connectors import model
from policies.model import PrincipalKind as _PrincipalKind
from policies.model import PurposeOfUse as _PurposeOfUse

Category = strawberry.enum(model.Category, description="A section of the patient view.")
Status = strawberry.enum(model.Status, description="How one source answered for one category.")
CriticalType = strawberry.enum(model.CriticalType)
AlertKind = strawberry.enum(model.AlertKind)
LimitationMeaning = strawberry.enum(
    model.LimitationMeaning, description="What a treatment limitation decides, compared across "
    "sources by meaning, not by code (the terminology file names the codes and words in use).")
PrincipalKind = strawberry.enum(_PrincipalKind)
PurposeOfUse = strawberry.enum(_PurposeOfUse)


@strawberry.type(description="A coded value: system (URI or urn:oid), code and display text.")
class Coding:
    system: str
    code: str
    display: str | None


def _age(fetched_at: datetime | None) -> float | None:
    if fetched_at is None:
        return None
    if fetched_at.tzinfo is None:
        fetched_at = fetched_at.replace(tzinfo=UTC)
    return round(max(0.0, (datetime.now(UTC) - fetched_at).total_seconds()), 1)


@strawberry.type(description="Where an item came from, and whether it was served from cache.")
class Provenance:
    source: str
    record_id: str
    recorded_at: datetime | None
    fetched_at: datetime
    from_cache: bool
    municipality: str | None

    @strawberry.field(description="Seconds since the source gave this item (grows in cache).")
    def age_seconds(self) -> float:
        return _age(self.fetched_at) or 0.0


@strawberry.type(description="A treatment limitation such as HLR-minus (no CPR), from any source.")
class TreatmentLimitation:
    id: str
    code: Coding
    description: str
    status: str
    decided_at: datetime | None
    decided_by: str | None
    valid_until: date | None
    reason: str | None
    provenance: Provenance
    meaning: LimitationMeaning  # type: ignore[valid-type]
    conflicts_with: list[Provenance] = strawberry.field(description=(
        "The active decisions (by their provenance, newest first) this one contradicts, e.g. "
        "full treatment against an HLR-minus; empty when it contradicts none."))


@strawberry.type(description="Critical information: allergies/CAVE, critical conditions, implants. "
                 "The same information from several sources is one item: `provenances` lists "
                 "them all, `conflicts` names fields on which they disagree.")
class CriticalInformation:
    id: str
    type: CriticalType  # type: ignore[valid-type]
    code: Coding
    description: str
    status: str
    severity: str | None
    reaction: str | None
    verification: str | None
    recorded_at: datetime | None
    provenance: Provenance
    provenances: list[Provenance]
    conflicts: list[str]


@strawberry.type
class Dosage:
    text: str
    route: Coding | None


@strawberry.type(description="One source's own record of a treatment, with its own values.")
class MedicationRecord:
    provenance: Provenance
    name: str
    code: Coding
    status: str
    dosage: Dosage | None
    started: date | None
    ended: date | None
    prescription_id: str | None
    pll_id: str | None


@strawberry.type(
    description="One treatment with a drug, linked across PLL, e-resept and municipal records. "
    "`provenances` lists every source; `conflicts` names fields the sources disagree on; "
    "`records` gives each source's own values (dose, status, period) next to the linked view."
)
class Medication:
    id: str
    code: Coding
    name: str
    status: str
    dosage: Dosage | None
    reason: Coding | None
    started: date | None
    ended: date | None
    prescription_id: str | None
    pll_id: str | None
    in_pll: bool
    conflicts: list[str]
    provenance: Provenance
    provenances: list[Provenance]
    records: list[MedicationRecord]


@strawberry.type(description="One result in a lab report; level > 0 for members of a panel.")
class LabResult:
    id: str
    code: Coding
    value: str | None
    unit: str | None
    reference_range: str | None
    interpretation: Coding | None
    abnormal: bool
    level: int
    effective_at: datetime | None


@strawberry.type
class LabReport:
    id: str
    category: Coding
    code: Coding
    status: str
    issued_at: datetime | None
    effective_at: datetime | None
    performer: str | None
    results: list[LabResult]
    provenance: Provenance


@strawberry.type(description="A decided or ongoing municipal health and care service.")
class MunicipalService:
    id: str
    code: Coding
    status: str
    municipality: str
    started: date | None
    ended: date | None
    decided_at: date | None
    unit: str | None
    phone: str | None
    description: str | None
    provenance: Provenance


@strawberry.type
class Condition:
    id: str
    code: Coding
    clinical_status: str
    onset: date | None
    recorded_at: datetime | None
    provenance: Provenance


@strawberry.type(description="Metadata of a clinical document; the content is not fetched.")
class DocumentReference:
    id: str
    type: Coding
    title: str
    status: str
    date: datetime | None
    author: str | None
    provenance: Provenance


@strawberry.type(description="Who the patient is, from the population registry "
                 "(Folkeregisteret via Persontjenesten).")
class Demographics:
    name: str | None = strawberry.field(description="The current name, given names first.")
    given_name: str | None
    family_name: str | None
    birth_date: date | None
    gender: str | None = strawberry.field(description="male, female or unknown.")
    home_municipality: str | None = strawberry.field(description=(
        "Kommunenummer of the residential address (bostedsadresse); null when the registry "
        "records none, and for every caller when the address is protected "
        "(addressProtection)."))
    home_municipality_name: str | None
    registry_status: str | None = strawberry.field(description=(
        "The registry's own status of the person, e.g. Resident, Deceased, Emigrated."))
    deceased: bool
    deceased_date: date | None
    provenance: Provenance
    address_protection: str | None = strawberry.field(description=(
        "ADDRESS_PROTECTED when the population registry grades the patient's address "
        "(fortrolig or strengt fortrolig adresse, formerly kode 7 and 6): Kilde then withholds "
        "the address and home municipality from every caller; null otherwise."))

    @strawberry.field(description="Whole years: today, or at death for a deceased person.")
    def age(self) -> int | None:
        born = self.birth_date
        if born is None:
            return None
        until = self.deceased_date or datetime.now(UTC).date()
        return until.year - born.year - ((until.month, until.day) < (born.month, born.day))


@strawberry.type(description="A first-screen warning, ordered clinically (priority 1 first).")
class Alert:
    kind: AlertKind  # type: ignore[valid-type]
    priority: int
    title: str
    detail: str | None
    code: Coding
    item_id: str
    provenance: Provenance
    provenances: list[Provenance] = strawberry.field(description=(
        "Every record behind the alert; for a CONFLICT, each disagreeing decision, newest "
        "first."))
    item_ids: list[str] = strawberry.field(description="The ids of those records, same order.")
    meaning: LimitationMeaning | None  # type: ignore[valid-type]
    conflicts_with: list[Provenance] = strawberry.field(description=(
        "For a treatment limitation, the decisions it contradicts (newest first)."))


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
