"""The unified patient model: what every connector maps its upstream's FHIR into.

Sits at the bottom of the request flow: connectors produce these items, policies filter them,
the schema serves them as they are (Strawberry reads their attributes). All items are frozen;
a cache or a merge makes a new item with `dataclasses.replace`.

>>> Coding(system="urn:oid:2.16.578.1.12.4.1.1.7170", code="K86", display="Hypertensjon")
Coding(system='urn:oid:2.16.578.1.12.4.1.1.7170', code='K86', display='Hypertensjon')
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


class Category(enum.Enum):
    """A section of the patient view; policies decide per category, connectors serve categories."""

    TREATMENT_LIMITATIONS = "treatment_limitations"
    CRITICAL_INFORMATION = "critical_information"
    MEDICATIONS = "medications"
    LAB_RESULTS = "lab_results"
    MUNICIPAL_SERVICES = "municipal_services"
    CONDITIONS = "conditions"
    DOCUMENTS = "documents"
    DEMOGRAPHICS = "demographics"  # the population registry: name, birth, home, deceased


class Status(enum.Enum):
    """How one source answered for one category in one request (`SourceStatus.status`)."""

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


class CriticalType(enum.Enum):
    """Kjernejournal's main categories of critical information (kritisk informasjon)."""

    ALLERGY = "ALLERGY"  # overfølsomhetsreaksjon, including CAVE drug reactions
    ANAESTHESIA_COMPLICATION = "ANAESTHESIA_COMPLICATION"
    CRITICAL_CONDITION = "CRITICAL_CONDITION"
    TREATMENT_OR_IMPLANT = "TREATMENT_OR_IMPLANT"
    INFECTION = "INFECTION"  # smitte
    OTHER = "OTHER"


class AlertKind(enum.Enum):
    CONFLICT = "CONFLICT"  # sources disagree on a treatment limitation: shown, never resolved
    TREATMENT_LIMITATION = "TREATMENT_LIMITATION"
    ALLERGY = "ALLERGY"
    CRITICAL_CONDITION = "CRITICAL_CONDITION"
    ANAESTHESIA_COMPLICATION = "ANAESTHESIA_COMPLICATION"
    OTHER_CRITICAL = "OTHER_CRITICAL"


class LimitationMeaning(enum.Enum):
    """What a treatment limitation decides, whatever code or text a source used for it
    (the shape stage reads it from a terminology file; connectors leave it UNKNOWN)."""

    HLR_MINUS = "HLR_MINUS"  # no cardiopulmonary resuscitation
    FULL_TREATMENT = "FULL_TREATMENT"  # full treatment including CPR: no limitation
    OTHER_LIMITATION = "OTHER_LIMITATION"  # e.g. no ventilator, no intensive care
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Coding:
    """A coded value: `system` is a URI or `urn:oid:`, `code` the code, `display` its text."""

    system: str
    code: str
    display: str | None = None


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an item came from: source, the upstream record id, when recorded and fetched.

    `municipality` is the municipality number of the store that holds it (municipal sources).
    """

    source: str
    record_id: str
    fetched_at: datetime
    recorded_at: datetime | None = None
    from_cache: bool = False
    municipality: str | None = None


@dataclass(frozen=True, slots=True)
class TreatmentLimitation:
    """A treatment limitation (behandlingsavklaring), e.g. HLR-minus: no cardiopulmonary
    resuscitation. The legevakt must see it wherever it is recorded."""

    id: str
    code: Coding
    description: str
    status: str  # active | inactive | entered-in-error
    provenance: Provenance
    decided_at: datetime | None = None
    decided_by: str | None = None
    valid_until: date | None = None
    reason: str | None = None
    security: tuple[Coding, ...] = ()
    # set by the shape stage: what it decides, and the decisions of other records it contradicts
    meaning: LimitationMeaning = LimitationMeaning.UNKNOWN
    conflicts_with: tuple[Provenance, ...] = ()


@dataclass(frozen=True, slots=True)
class CriticalInformation:
    """Critical information: allergies and CAVE, critical conditions, implants, anaesthesia.

    The same information from several sources (a CAVE in Kjernejournal and in the municipal
    EPJ) is merged by the shape stage into one item: `provenances` lists them all,
    `provenance` is the first; `conflicts` names fields on which the sources disagree."""

    id: str
    type: CriticalType
    code: Coding
    description: str
    provenance: Provenance
    status: str = "active"
    severity: str | None = None
    reaction: str | None = None
    verification: str | None = None
    recorded_at: datetime | None = None
    security: tuple[Coding, ...] = ()
    provenances: tuple[Provenance, ...] = ()
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Dosage:
    text: str
    route: Coding | None = None


@dataclass(frozen=True, slots=True)
class MedicationRecord:
    """One source's own record of a treatment, as that source has it (next to the linked view)."""

    provenance: Provenance
    name: str
    code: Coding
    status: str
    dosage: Dosage | None = None
    started: date | None = None
    ended: date | None = None
    prescription_id: str | None = None
    pll_id: str | None = None


@dataclass(frozen=True, slots=True)
class Medication:
    """One treatment with a drug. PLL, e-resept and municipal administration records of the
    same treatment are linked into one item: `provenances` lists them all, `provenance` is the
    first; `conflicts` names fields on which the sources disagree (shown, not resolved)."""

    id: str
    code: Coding  # ATC
    name: str
    status: str
    provenance: Provenance
    provenances: tuple[Provenance, ...] = ()
    dosage: Dosage | None = None
    reason: Coding | None = None
    started: date | None = None
    ended: date | None = None
    prescription_id: str | None = None
    pll_id: str | None = None
    treatment_id: str | None = None
    in_pll: bool = False
    conflicts: tuple[str, ...] = ()
    security: tuple[Coding, ...] = ()
    records: tuple[MedicationRecord, ...] = ()  # each source's own values, set by linking


@dataclass(frozen=True, slots=True)
class LabResult:
    """One observation in a report; `level` > 0 for members of a panel (FHIR `hasMember`)."""

    id: str
    code: Coding  # NLK (kodeverk 7280) where available
    value: str | None
    unit: str | None = None
    reference_range: str | None = None
    interpretation: Coding | None = None
    abnormal: bool = False
    level: int = 0
    effective_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LabReport:
    id: str
    category: Coding  # kodeverk 8202: LAB | PAT | BLD
    code: Coding
    status: str
    provenance: Provenance
    issued_at: datetime | None = None
    effective_at: datetime | None = None
    performer: str | None = None
    results: tuple[LabResult, ...] = ()
    security: tuple[Coding, ...] = ()


@dataclass(frozen=True, slots=True)
class MunicipalService:
    """A decided or ongoing municipal health and care service (e.g. hjemmesykepleie)."""

    id: str
    code: Coding  # Volven 9151 (IPLOS) or 8663
    status: str  # active | planned | completed
    provenance: Provenance
    municipality: str
    started: date | None = None
    ended: date | None = None
    decided_at: date | None = None
    unit: str | None = None
    phone: str | None = None
    description: str | None = None
    security: tuple[Coding, ...] = ()


@dataclass(frozen=True, slots=True)
class Condition:
    id: str
    code: Coding  # ICPC-2 (7170) or ICD-10 (7110)
    clinical_status: str
    provenance: Provenance
    onset: date | None = None
    recorded_at: datetime | None = None
    security: tuple[Coding, ...] = ()


@dataclass(frozen=True, slots=True)
class DocumentReference:
    """Metadata of a clinical document; the content itself is not fetched."""

    id: str
    type: Coding
    title: str
    status: str
    provenance: Provenance
    date: datetime | None = None
    author: str | None = None
    security: tuple[Coding, ...] = ()


@dataclass(frozen=True, slots=True)
class Demographics:
    """Who the patient is, from the population registry (Folkeregisteret via NHN's
    Persontjenesten): the current name, birth date, administrative gender, the home
    municipality (kommunenummer of the residential address, bostedsadresse) and whether the
    person is dead, with the date. `home_municipality` is None when the registry records none
    (unknown residence, emigrated); the planner then says the home store is unknown.
    `address_protection` is ADDRESS_PROTECTED when the registry grades the person's address
    (fortrolig or strengt fortrolig adresse, kode 7/6): the home municipality and its name
    are then None for every caller, and the planner says the home is protected."""

    id: str
    provenance: Provenance
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    birth_date: date | None = None
    gender: str | None = None  # male | female | unknown (FHIR administrative gender)
    home_municipality: str | None = None
    home_municipality_name: str | None = None
    registry_status: str | None = None  # the registry's own status, e.g. Resident, Deceased
    deceased: bool = False
    deceased_date: date | None = None
    security: tuple[Coding, ...] = ()
    address_protection: str | None = None  # ADDRESS_PROTECTED: the address is withheld


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


@dataclass(frozen=True, slots=True)
class Alert:
    """A cross-source warning for the first screen, clinically ordered by `priority` (1 first)."""

    kind: AlertKind
    priority: int
    title: str
    code: Coding
    provenance: Provenance
    detail: str | None = None
    item_id: str = ""
    provenances: tuple[Provenance, ...] = ()  # every record behind it (a conflict: newest first)
    item_ids: tuple[str, ...] = ()
    meaning: LimitationMeaning | None = None  # for treatment limitations and conflicts
    conflicts_with: tuple[Provenance, ...] = ()


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
