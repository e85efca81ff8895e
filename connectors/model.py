"""The unified patient model: what every connector maps its upstream's FHIR into.

Sits at the bottom of the request flow: connectors produce these items, policies filter them,
the schema serves them as they are (Strawberry reads their attributes). All items are frozen;
a cache or a merge makes a new item with `dataclasses.replace`. They are built by a quicker
`__init__` of the same signature (`connectors.frozen.quick_init`).

This module is the one declaration of the model, the GraphQL API's included: `schema.types`
derives the GraphQL types from these dataclasses, in their field order, with the first
paragraph of a docstring as the type's description and `field(metadata={"description": ...})`
as a field's (the rest of a docstring, and comments, are for Python readers only). The schema
adds or hides only what `schema.types` names (computed fields such as `Provenance.ageSeconds`,
internals such as `Medication.treatment_id`; `security` is read by the policy, never served).
Items are built by keyword (`kw_only`), so their fields can follow the API's order.

>>> Coding(system="urn:oid:2.16.578.1.12.4.1.1.7170", code="K86", display="Hypertensjon")
Coding(system='urn:oid:2.16.578.1.12.4.1.1.7170', code='K86', display='Hypertensjon')
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from connectors.frozen import quick_init


class Category(enum.Enum):
    """A section of the patient view.

    Policies decide per category, connectors serve categories."""

    TREATMENT_LIMITATIONS = "treatment_limitations"
    CRITICAL_INFORMATION = "critical_information"
    MEDICATIONS = "medications"
    LAB_RESULTS = "lab_results"
    MUNICIPAL_SERVICES = "municipal_services"
    CONDITIONS = "conditions"
    DOCUMENTS = "documents"
    DEMOGRAPHICS = "demographics"  # the population registry: name, birth, home, deceased

    # A member is a singleton compared by identity, so it hashes by identity too: Enum's own
    # __hash__ (a Python call hashing the name) ran ~450 times per request as dict keys in the
    # pipeline. Set order was never stable (names hash per process) and nothing relies on it.
    __hash__ = object.__hash__


class Status(enum.Enum):
    """How one source answered for one category.

    In one request: `SourceStatus.status`."""

    OK = "OK"
    EMPTY = "EMPTY"
    PARTIAL = "PARTIAL"
    STALE = "STALE"
    TIMEOUT = "TIMEOUT"
    UNAVAILABLE = "UNAVAILABLE"
    INVALID = "INVALID"
    DENIED = "DENIED"
    RESTRICTED = "RESTRICTED"
    RESERVED = "RESERVED"
    BLOCKED = "BLOCKED"

    __hash__ = object.__hash__  # as Category's


# Kjernejournal's main categories of critical information (kritisk informasjon).
class CriticalType(enum.Enum):
    ALLERGY = "ALLERGY"  # overfølsomhetsreaksjon, including CAVE drug reactions
    ANAESTHESIA_COMPLICATION = "ANAESTHESIA_COMPLICATION"
    CRITICAL_CONDITION = "CRITICAL_CONDITION"
    TREATMENT_OR_IMPLANT = "TREATMENT_OR_IMPLANT"
    INFECTION = "INFECTION"  # smitte
    OTHER = "OTHER"

    __hash__ = object.__hash__  # as Category's (the shape stage's merge keys)


class AlertKind(enum.Enum):
    CONFLICT = "CONFLICT"  # sources disagree on a treatment limitation: shown, never resolved
    TREATMENT_LIMITATION = "TREATMENT_LIMITATION"
    ALLERGY = "ALLERGY"
    CRITICAL_CONDITION = "CRITICAL_CONDITION"
    ANAESTHESIA_COMPLICATION = "ANAESTHESIA_COMPLICATION"
    OTHER_CRITICAL = "OTHER_CRITICAL"

    __hash__ = object.__hash__  # as Category's


class LimitationMeaning(enum.Enum):
    """What a treatment limitation decides, compared across sources by meaning, not by code
    (the terminology file names the codes and words in use).

    The shape stage reads it from that file; connectors leave it UNKNOWN."""

    HLR_MINUS = "HLR_MINUS"  # no cardiopulmonary resuscitation
    FULL_TREATMENT = "FULL_TREATMENT"  # full treatment including CPR: no limitation
    OTHER_LIMITATION = "OTHER_LIMITATION"  # e.g. no ventilator, no intensive care
    UNKNOWN = "UNKNOWN"

    __hash__ = object.__hash__  # as Category's


@quick_init
@dataclass(frozen=True, slots=True)
class Coding:
    """A coded value: system (URI or urn:oid), code and display text."""

    system: str
    code: str
    display: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an item came from, and whether it was served from cache.

    The source, the upstream record id, when recorded and when fetched; `municipality` is the
    municipality number of the store that holds it (municipal sources). Built as
    `Provenance(source, record_id, fetched_at, ...)`: the others are keyword-only, so
    `recorded_at` can stand where the API lists it.
    """

    source: str
    record_id: str
    recorded_at: datetime | None = field(default=None, kw_only=True)
    fetched_at: datetime
    from_cache: bool = field(default=False, kw_only=True)
    municipality: str | None = field(default=None, kw_only=True)


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class TreatmentLimitation:
    """A treatment limitation such as HLR-minus (no CPR), from any source.

    A behandlingsavklaring, e.g. HLR-minus: no cardiopulmonary resuscitation. The legevakt
    must see it wherever it is recorded."""

    id: str
    code: Coding
    description: str
    status: str  # active | inactive | entered-in-error
    decided_at: datetime | None = None
    decided_by: str | None = None
    valid_until: date | None = None
    reason: str | None = None
    provenance: Provenance
    security: tuple[Coding, ...] = ()
    # set by the shape stage: what it decides, and the decisions of other records it contradicts
    meaning: LimitationMeaning = LimitationMeaning.UNKNOWN
    conflicts_with: tuple[Provenance, ...] = field(default=(), metadata={"description": (
        "The active decisions (by their provenance, newest first) this one contradicts, e.g. "
        "full treatment against an HLR-minus; empty when it contradicts none.")})


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class CriticalInformation:
    """Critical information: allergies/CAVE, critical conditions, implants. The same
    information from several sources is one item: `provenances` lists them all, `conflicts`
    names fields on which they disagree.

    Anaesthesia complications too. The shape stage merges the same information from several
    sources (a CAVE in Kjernejournal and in the municipal EPJ); `provenance` is the first."""

    id: str
    type: CriticalType
    code: Coding
    description: str
    status: str = "active"
    severity: str | None = None
    reaction: str | None = None
    verification: str | None = None
    recorded_at: datetime | None = None
    provenance: Provenance
    provenances: tuple[Provenance, ...] = ()
    conflicts: tuple[str, ...] = ()
    security: tuple[Coding, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class Dosage:
    text: str
    route: Coding | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class MedicationRecord:
    """One source's own record of a treatment, with its own values.

    Shown next to the linked view (`Medication.records`)."""

    provenance: Provenance
    name: str
    code: Coding
    status: str
    dosage: Dosage | None = None
    started: date | None = None
    ended: date | None = None
    prescription_id: str | None = None
    pll_id: str | None = None


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Medication:
    """One treatment with a drug, linked across PLL, e-resept and municipal records.
    `provenances` lists every source; `conflicts` names fields the sources disagree on;
    `records` gives each source's own values (dose, status, period) next to the linked view.

    PLL, e-resept and municipal administration records of the same treatment are linked into
    one item; `provenance` is the first; conflicts are shown, not resolved."""

    id: str
    code: Coding  # ATC
    name: str
    status: str
    dosage: Dosage | None = None
    reason: Coding | None = None
    started: date | None = None
    ended: date | None = None
    prescription_id: str | None = None
    pll_id: str | None = None
    treatment_id: str | None = None  # the linking key; not served (schema.types.HIDDEN)
    in_pll: bool = False
    conflicts: tuple[str, ...] = ()
    provenance: Provenance
    provenances: tuple[Provenance, ...] = ()
    security: tuple[Coding, ...] = ()
    records: tuple[MedicationRecord, ...] = ()  # each source's own values, set by linking


@quick_init
@dataclass(frozen=True, slots=True)
class LabResult:
    """One result in a lab report; level > 0 for members of a panel.

    One observation in a report; members of a panel are FHIR `hasMember`."""

    id: str
    code: Coding  # NLK (kodeverk 7280) where available
    value: str | None
    unit: str | None = None
    reference_range: str | None = None
    interpretation: Coding | None = None
    abnormal: bool = False
    level: int = 0
    effective_at: datetime | None = None


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class LabReport:
    id: str
    category: Coding  # kodeverk 8202: LAB | PAT | BLD
    code: Coding
    status: str
    issued_at: datetime | None = None
    effective_at: datetime | None = None
    performer: str | None = None
    results: tuple[LabResult, ...] = ()
    provenance: Provenance
    security: tuple[Coding, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class MunicipalService:
    """A decided or ongoing municipal health and care service.

    E.g. hjemmesykepleie."""

    id: str
    code: Coding  # Volven 9151 (IPLOS) or 8663
    status: str  # active | planned | completed
    municipality: str
    started: date | None = None
    ended: date | None = None
    decided_at: date | None = None
    unit: str | None = None
    phone: str | None = None
    description: str | None = None
    provenance: Provenance
    security: tuple[Coding, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    id: str
    code: Coding  # ICPC-2 (7170) or ICD-10 (7110)
    clinical_status: str
    onset: date | None = None
    recorded_at: datetime | None = None
    provenance: Provenance
    security: tuple[Coding, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentReference:
    """Metadata of a clinical document; the content is not fetched."""

    id: str
    type: Coding
    title: str
    status: str
    date: datetime | None = None
    author: str | None = None
    provenance: Provenance
    security: tuple[Coding, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Demographics:
    """Who the patient is, from the population registry (Folkeregisteret via
    Persontjenesten).

    Folkeregisteret via NHN's Persontjenesten: the current name, birth date, administrative
    gender, the home municipality (kommunenummer of the residential address, bostedsadresse)
    and whether the person is dead, with the date. `home_municipality` is None when the
    registry records none (unknown residence, emigrated); the planner then says the home store
    is unknown. `address_protection` is ADDRESS_PROTECTED when the registry grades the
    person's address (fortrolig or strengt fortrolig adresse, kode 7/6): the home
    municipality and its name are then None for every caller, and the planner says the home
    is protected. `id` is not served (schema.types.HIDDEN)."""

    id: str
    name: str | None = field(default=None, metadata={
        "description": "The current name, given names first."})
    given_name: str | None = None
    family_name: str | None = None
    birth_date: date | None = None
    gender: str | None = field(default=None, metadata={  # FHIR administrative gender
        "description": "male, female or unknown."})
    home_municipality: str | None = field(default=None, metadata={"description": (
        "Kommunenummer of the residential address (bostedsadresse); null when the registry "
        "records none, and for every caller when the address is protected "
        "(addressProtection).")})
    home_municipality_name: str | None = None
    registry_status: str | None = field(default=None, metadata={"description": (
        "The registry's own status of the person, e.g. Resident, Deceased, Emigrated.")})
    deceased: bool = False
    deceased_date: date | None = None
    provenance: Provenance
    address_protection: str | None = field(default=None, metadata={"description": (
        "ADDRESS_PROTECTED when the population registry grades the patient's address "
        "(fortrolig or strengt fortrolig adresse, formerly kode 7 and 6): Kilde then withholds "
        "the address and home municipality from every caller; null otherwise.")})
    security: tuple[Coding, ...] = ()


Item = (
    TreatmentLimitation
    | CriticalInformation
    | Medication
    | LabReport
    | MunicipalService
    | Condition
    | DocumentReference
    | Demographics
)


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """A first-screen warning, ordered clinically (priority 1 first).

    A cross-source warning, built by the shape stage from limitations and critical
    information."""

    kind: AlertKind
    priority: int
    title: str
    detail: str | None = None
    code: Coding
    item_id: str = ""
    provenance: Provenance
    provenances: tuple[Provenance, ...] = field(default=(), metadata={"description": (
        "Every record behind the alert; for a CONFLICT, each disagreeing decision, newest "
        "first.")})
    item_ids: tuple[str, ...] = field(default=(), metadata={
        "description": "The ids of those records, same order."})
    meaning: LimitationMeaning | None = None  # for treatment limitations and conflicts
    conflicts_with: tuple[Provenance, ...] = field(default=(), metadata={"description": (
        "For a treatment limitation, the decisions it contradicts (newest first).")})


@quick_init
@dataclass(frozen=True, slots=True)
class PrivacyState:
    """What an upstream said in-band about the patient's own choices.

    `blocked_requester`: the requesting professional is blocked by the patient (never openable).
    `any_blocked`: the patient has blocked someone (Kjernejournal then shares no clinical data).
    `restricted`: sperring; `restriction_opened`: the upstream opened it for an emergency/consent.
    """

    reserved: bool = False
    restricted: bool = False
    restriction_opened: bool = False
    blocked_requester: bool = False
    any_blocked: bool = False
    detail: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Tenant:
    """A municipality (kommune): the tenant and data controller for its own store."""

    number: str  # kommunenummer, 4 digits
    name: str
    orgnr: tuple[str, ...] = field(default_factory=tuple)


_CATEGORY_VALUE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FIELD_NAME = re.compile(r"[a-z][A-Za-z0-9]{0,63}")


@dataclass(frozen=True)
class CategorySpec:
    """A category a plugin adds: a new section of the patient view with its own item type.

    It works wherever a built-in `Category` does: `.value` is the policy key (snake_case, the
    `[categories.<value>]` table of a policy file), `.name` the GraphQL enum name. Two specs with
    the same value are the same category. `item_type` is a frozen dataclass with `provenance`
    and `security` fields; the schema serves it as a GraphQL type of the same name, derived from
    its fields (`Coding`, `Provenance`, dates, nested dataclasses, tuples), unless
    `graphql_type` names a Strawberry type to use instead (connectors never import Strawberry
    themselves). `field_name` is the `Patient` field, camelCase of `value` unless given.

    >>> spec = CategorySpec("safety_alarms", item_type=Condition)
    >>> (spec.name, spec.field_name)
    ('SAFETY_ALARMS', 'safetyAlarms')
    """

    value: str
    item_type: type = field(compare=False)
    graphql_type: Any = field(default=None, compare=False)
    description: str = field(default="", compare=False)
    field_name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not _CATEGORY_VALUE.fullmatch(self.value):
            raise ValueError(f"Category {self.value!r} must be a snake_case name like "
                             "'safety_alarms'.")
        if self.value in {c.value for c in Category}:
            raise ValueError(f"Category {self.value!r} is built in; a plugin serves it as "
                             f"Category.{self.value.upper()} instead of declaring it again.")
        fields = getattr(self.item_type, "__dataclass_fields__", {})
        if not {"provenance", "security"} <= set(fields):
            raise ValueError(f"Category {self.value!r} needs an item dataclass with "
                             "'provenance' and 'security' fields.")
        if not self.field_name:
            head, *rest = self.value.split("_")
            object.__setattr__(self, "field_name", head + "".join(p.title() for p in rest))
        if not _FIELD_NAME.fullmatch(self.field_name):
            raise ValueError(f"Category {self.value!r} has a field name {self.field_name!r} "
                             "that is not a camelCase GraphQL name.")

    @property
    def name(self) -> str:
        return self.value.upper()


# Anything that keys a section of the view: a built-in Category or a plugin's CategorySpec.
AnyCategory = Category | CategorySpec
