"""What a policy decision is made of: the Principal asking, facts about items, and the Decision.

Policies sit beside connectors under the schema: resolvers ask them before any fetch and after
it. Everything here is plain data; policies import nothing from the other packages, so
categories and statuses are the same strings the schema's enums carry as values
("lab_results", "RESTRICTED", ...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class PurposeOfUse(enum.Enum):
    """HL7 v3 purpose of use (urn:oid:2.16.840.1.113883.1.11.20448), as in the attest.

    TREAT planned care; ETREAT the acute chain (legevakt, ambulance) under normal rules;
    COC coordination of care without direct treatment (e.g. service allocation);
    BTG break the glass: normal access rules overridden, always specially audited.
    """

    TREAT = "TREAT"
    ETREAT = "ETREAT"
    COC = "COC"
    BTG = "BTG"


# The purposes under which a stated reason opens restricted data (nødtilgang).
EMERGENCY_PURPOSES: tuple[PurposeOfUse, ...] = (PurposeOfUse.ETREAT, PurposeOfUse.BTG)


class PrincipalKind(enum.Enum):
    CLINICIAN = "CLINICIAN"  # health personnel, or staff acting under a care relationship
    CITIZEN = "CITIZEN"  # the patient (innbygger), seeing their own record
    PRIVACY_OFFICER = "PRIVACY_OFFICER"  # personvernombud / data controller: access log only
    MACHINE = "MACHINE"  # a system acting for no person (client credentials), e.g. an event feed


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, built by the gateway from a HelseID-style token and its attest.

    `person_id` is the caller's own fødselsnummer (for the audit trail, never for logs).
    `patients` are the patients the care-relationship attest is bound to; `attested_at` its
    `toa`. `municipality` is resolved from the legal entity by the gateway's tenant table.
    """

    kind: PrincipalKind
    person_id: str
    client_id: str = ""
    name: str | None = None
    hpr_number: str | None = None
    profession: str | None = None  # kodeverk 9060 code: LE, SP, HF, ...
    profession_text: str | None = None
    legal_entity: str | None = None  # orgnr
    legal_entity_name: str | None = None
    point_of_care: str | None = None  # orgnr
    point_of_care_name: str | None = None
    municipality: str | None = None  # kommunenummer of the caller's organisation
    healthcare_service: str | None = None  # code, e.g. KP01 (8663) or 15 (9151)
    purpose_of_use: PurposeOfUse | None = None
    decision_ref: str | None = None
    decision_description: str | None = None
    user_selected: bool = False
    patients: frozenset[str] = frozenset()
    attested_at: datetime | None = None
    scopes: frozenset[str] = frozenset()

    @property
    def is_emergency(self) -> bool:
        return self.purpose_of_use in EMERGENCY_PURPOSES


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What item-level rules look at: the source, the store's municipality, security labels
    (codes from the item's `meta.security`, e.g. "R" restricted, "V" very restricted)."""

    source: str
    category: str
    municipality: str | None = None
    security: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PrivacyFacts:
    """A source's in-band privacy answer for this patient (see connectors' PrivacyState)."""

    source: str
    reserved: bool = False
    restricted: bool = False
    restriction_opened: bool = False
    blocked_requester: bool = False
    any_blocked: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one rule evaluation.

    `status` is the SourceStatus it maps to when denied (DENIED, RESTRICTED, RESERVED,
    BLOCKED); `reason` a stable SCREAMING_SNAKE code used in errors and the audit trail;
    `emergency` marks an access that opened something under ETREAT/BTG (specially audited).
    """

    allowed: bool
    reason: str
    status: str = "OK"
    emergency: bool = False
    detail: str = ""

    @classmethod
    def permit(cls, reason: str = "PERMITTED", *, emergency: bool = False) -> Decision:
        return cls(True, reason, "OK", emergency)

    @classmethod
    def deny(cls, reason: str, status: str = "DENIED", detail: str = "") -> Decision:
        return cls(False, reason, status, False, detail)


AGREEMENT_USES = ("normal", "emergency")


@dataclass(frozen=True, slots=True)
class Agreement:
    """A configured agreement letting principals of `consumer` see `provider`'s store; with
    `write`, also record in it (policies/write.py).

    `use` is "normal" (every permitted request may ask the store) or "emergency" (only an
    ETREAT/BTG access with a stated reason, and only for a patient whose home municipality is
    `provider`; honoured only when `Rules.emergency_agreements` is on)."""

    provider: str
    consumer: str
    write: bool = False
    use: str = "normal"


@dataclass(frozen=True, slots=True)
class Rules:
    """The policy as data (defaults in `policies/defaults.toml`).

    `categories_by_profession`: kodeverk 9060 code -> categories it may see;
    `categories_by_purpose`: a purpose that narrows further (COC -> services only);
    `restricted_labels`: item security codes hidden unless opened in an emergency;
    `denied_labels`: codes never delivered through Kilde;
    `categories_granted_by_purpose`: a purpose that grants categories without a profession
    (COC -> services, for a case handler); `categories`: every configured category, built-in or
    plugin (anything else is denied as not configured); `block_everywhere`: a block of the
    requesting professional reported by any source withholds every source's data in the same
    request; `block_sources`: the sources asked for the patient's blocks in every request;
    `write_professions` / `write_purposes`: per category, who may record it and under which
    purposes (a category not listed is written by nobody: deny by default);
    `emergency_agreements`: whether agreements with `use = "emergency"` let an emergency with a
    reason ask the patient's home store across the border (off unless configured).
    """

    categories_by_profession: dict[str, frozenset[str]]
    categories_by_purpose: dict[str, frozenset[str]] = field(default_factory=dict)
    attest_max_age_seconds: int = 3600
    agreements: frozenset[Agreement] = frozenset()
    restricted_labels: frozenset[str] = frozenset({"R"})
    denied_labels: frozenset[str] = frozenset({"V"})
    citizen_categories: frozenset[str] = frozenset()
    clinical_scope: str = "kilde/patient.read"
    citizen_scope: str = "kilde/innsyn"
    privacy_officer_scope: str = "kilde/accesslog.read"
    events_scope: str = "kilde/events.write"
    categories_granted_by_purpose: dict[str, frozenset[str]] = field(default_factory=dict)
    categories: frozenset[str] = frozenset()
    block_everywhere: bool = True
    block_sources: frozenset[str] = frozenset({"kjernejournal", "municipal"})
    # writes: category -> professions that may record it, and the purposes it may be under
    write_professions: dict[str, frozenset[str]] = field(default_factory=dict)
    write_purposes: dict[str, frozenset[str]] = field(default_factory=dict)
    emergency_agreements: bool = False  # [border]: emergency-only agreements honoured
