"""Principals for the policy decision tables, built from the sandbox world's synthetic people."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from policies import Decision, Principal, PrincipalKind, PurposeOfUse, load_rules

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# Synthetic patients (sandbox/world.py): legevakt-hlr in Oslo, another in Oslo, one in Bergen.
HLR_PATIENT = "14033841389"
OSLO_PATIENT = "02075123305"
BERGEN_PATIENT = "23116731894"

ALL_CATEGORIES = (
    "treatment_limitations",
    "critical_information",
    "medications",
    "lab_results",
    "municipal_services",
    "conditions",
    "documents",
    "demographics",
)

RULES = load_rules(agreements=[("4601", "0301")])  # Bergen's store may be seen from Oslo
RULES_NO_AGREEMENTS = load_rules()
REASON = "Bevisstløs pasient, trenger legemiddelliste"

_LEGE = Principal(
    kind=PrincipalKind.CLINICIAN,
    person_id="04125845687",
    hpr_number="9144901",
    profession="LE",
    legal_entity="910000004",
    point_of_care="940000009",
    municipality="0301",
    purpose_of_use=PurposeOfUse.TREAT,
    patients=frozenset({HLR_PATIENT}),
    attested_at=NOW - timedelta(minutes=5),
    scopes=frozenset({"kilde/patient.read"}),
)


def clinician(**changes: Any) -> Principal:
    """The legevakt physician (LE, Oslo, TREAT, fresh attest for HLR_PATIENT), changed."""
    return replace(_LEGE, **changes)


def citizen(**changes: Any) -> Principal:
    """The HLR patient themself, with the citizen scope."""
    base = Principal(
        kind=PrincipalKind.CITIZEN,
        person_id=HLR_PATIENT,
        scopes=frozenset({"kilde/innsyn"}),
    )
    return replace(base, **changes)


def privacy_officer(**changes: Any) -> Principal:
    base = Principal(
        kind=PrincipalKind.PRIVACY_OFFICER,
        person_id="21084936860",
        municipality="0301",
        scopes=frozenset({"kilde/accesslog.read"}),
    )
    return replace(base, **changes)


def stranger() -> Principal:
    """A principal of a kind no rule knows (as if a new kind were added without rules)."""
    return replace(_LEGE, kind="ROBOT")  # type: ignore[arg-type]


Outcome = tuple[bool, str, str, bool]  # allowed, reason, status, emergency


def outcome(decision: Decision) -> Outcome:
    return (decision.allowed, decision.reason, decision.status, decision.emergency)
