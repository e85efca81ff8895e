"""Critical information kept in a municipal EPJ: CAVE (`AllergyIntolerance`) and `Flag`s.

Sits beside `connectors.municipal.mapping` (and is registered in its `MAPPERS`): pure
functions from the store's resources to `CriticalInformation`, the same item Kjernejournal's
critical information becomes, so `criticalInformation` and `alerts` show the municipal CAVE
with municipal provenance. Refuted, inactive, resolved or expired items are `inactive` (never
an alert); a record entered in error is not shown at all (`entered_in_error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors import CriticalInformation, CriticalType, Provenance
from connectors.fhir import coding_of, parse_date, parse_datetime, security_of, text_of
from connectors.municipal.mapping import record_id, required_code

Resource = Mapping[str, Any]

_CRITICALITY_SEVERITY = {"high": "severe", "low": "mild"}
_SEVERITY_RANK = {"mild": 1, "moderate": 2, "severe": 3}
# Words in a flag's category or code that say which kind of critical information it is
# (kritisk informasjon, as Kjernejournal groups it); anything else is OTHER.
_FLAG_WORDS: tuple[tuple[tuple[str, ...], CriticalType], ...] = (
    (("implantat", "implant", "pågående behandling"), CriticalType.TREATMENT_OR_IMPLANT),
    (("smitte", "infeksjon", "infection", "mrsa", "vre", "esbl"), CriticalType.INFECTION),
    (("anestesi", "anaesthe", "anesthe"), CriticalType.ANAESTHESIA_COMPLICATION),
)


def _status_code(concept: Any) -> str | None:
    coding = coding_of(concept)
    return coding.code or None if coding else None


def entered_in_error(resource: Resource) -> bool:
    """A record its author withdrew as a mistake: never shown (any type's status, or an
    AllergyIntolerance's verification status)."""
    return (resource.get("status") == "entered-in-error"
            or _status_code(resource.get("verificationStatus")) == "entered-in-error")


def map_allergy(resource: Resource, provenance: Provenance) -> CriticalInformation:
    """AllergyIntolerance (the EPJ's CAVE: drug reactions and other allergens) ->
    CriticalInformation(ALLERGY). Refuted, inactive or resolved is `inactive` (no alert); the
    severity is the worst reaction's, else the criticality's."""
    verification = _status_code(resource.get("verificationStatus"))
    clinical = _status_code(resource.get("clinicalStatus"))
    code = required_code(resource.get("code"), resource)
    reactions = [r for r in resource.get("reaction") or [] if isinstance(r, dict)]
    manifestations = [text_of(m) for r in reactions for m in r.get("manifestation") or []]
    severities = [s for r in reactions if (s := r.get("severity")) in _SEVERITY_RANK]
    severity = (max(severities, key=_SEVERITY_RANK.__getitem__) if severities
                else _CRITICALITY_SEVERITY.get(str(resource.get("criticality"))))
    inactive = verification == "refuted" or clinical in ("inactive", "resolved")
    return CriticalInformation(
        id=record_id(resource),
        type=CriticalType.ALLERGY,
        code=code,
        description=code.display or code.code,
        provenance=provenance,
        status="inactive" if inactive else "active",
        severity=severity,
        reaction=", ".join(m for m in manifestations if m) or None,
        verification=verification,
        recorded_at=parse_datetime(resource.get("recordedDate")) or provenance.recorded_at,
        security=security_of(resource),
    )


def flag_type(resource: Resource) -> CriticalType:
    """The kind of critical information a Flag is, from the words of its category and code."""
    concepts = [*(resource.get("category") or []), resource.get("code")]
    words = " ".join(
        str(part) for concept in concepts if isinstance(concept, dict)
        for part in [concept.get("text"), *(c.get("display") for c in concept.get("coding") or []
                                            if isinstance(c, dict))] if part).casefold()
    for keys, kind in _FLAG_WORDS:
        if any(key in words for key in keys):
            return kind
    return CriticalType.OTHER


def map_flag(resource: Resource, provenance: Provenance) -> CriticalInformation:
    """Flag (a critical alert in the EPJ) -> CriticalInformation; `inactive` when its status
    says so or its `period.end` has passed (judged on the fetch date)."""
    code = required_code(resource.get("code"), resource)
    period = _period(resource)
    end = parse_date(period.get("end"))
    expired = end is not None and end < provenance.fetched_at.date()
    return CriticalInformation(
        id=record_id(resource),
        type=flag_type(resource),
        code=code,
        description=code.display or code.code,
        provenance=provenance,
        status="inactive" if resource.get("status") == "inactive" or expired else "active",
        recorded_at=parse_datetime(period.get("start")) or provenance.recorded_at,
        security=security_of(resource),
    )




def _period(resource: Resource) -> Mapping[str, Any]:
    period = resource.get("period")
    return period if isinstance(period, dict) else {}
