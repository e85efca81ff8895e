"""Pure mapping from Kjernejournal's Kj* FHIR profiles and /status to the unified model.

Sits between the connector's fetch (`connectors.kjernejournal.connector`) and the unified items
(`connectors.model`). Tolerant reader: unknown fields (Kjernejournal adds gibberish on purpose)
are ignored. Status follows the Kj* profiles: Active -> "active", Refuted (inactive/refuted)
-> "inactive", Deleted (entered-in-error) -> dropped (None). A resource without an id or any
code cannot be shown safely and raises `UnreadableRecordError`.

>>> access_basis_value(AccessBasis.FORHOYET_AKUTT)
'FORHOYET_AKUTT'
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from connectors import (
    AccessBasis,
    Coding,
    CriticalInformation,
    CriticalType,
    PrivacyState,
    Provenance,
    TreatmentLimitation,
)
from connectors.fhir import coding_of, extension_value, parse_date, parse_datetime

SOURCE = "kjernejournal"
SNOMED = "http://snomed.info/sct"
ICD10 = "urn:oid:2.16.578.1.12.4.1.1.7110"
LIMITATION_REASON = "http://nhn.no/kj/fhir/StructureDefinition/KjReasonForLimitation"
HLR_MINUS_CATEGORY = "11"  # "HLR-minus og behandlingsavklaringer"
DURATION = "urn:oid:2.16.578.1.12.4.1.1.7655"  # kodeverk 7655: how long a decision holds
# A JSON object: a dict is told by its type before the Mapping ABC, whose isinstance check
# runs Python code
_OBJECT = (dict, Mapping)

# Kjernejournal names the access bases as we do; the table keeps the mapping explicit.
ACCESS_BASIS = {
    AccessBasis.UNNTAK: "UNNTAK",
    AccessBasis.SAMTYKKE: "SAMTYKKE",
    AccessBasis.AKUTT: "AKUTT",
    AccessBasis.FORHOYET_SAMTYKKE: "FORHOYET_SAMTYKKE",
    AccessBasis.FORHOYET_AKUTT: "FORHOYET_AKUTT",
}
# Kj flag categories; only "9" (annen prosedyreendring) is published. Treatments and implants
# (pågående behandlinger og implantater) are recognised by their category text.
FLAG_TYPES = {"9": CriticalType.OTHER}
IMPLANT_WORDS = ("implantat", "pågående behandling")
CRITICALITY_SEVERITY = {"high": "severe", "low": "mild"}
CONSENT_STATUS = {"active": "active", "inactive": "inactive", "rejected": "inactive"}
CONSENT_NOT_SHOWN = frozenset({"draft", "proposed", "entered-in-error"})  # read, not decisions


class UnreadableRecordError(ValueError):
    """A Kj* resource lacks what an item needs (an id, a code); the connector skips it."""


def access_basis_value(basis: AccessBasis) -> str:
    """The `nhn-access-basis` header value for our access basis."""
    return ACCESS_BASIS[basis]


def privacy_state(status: Mapping[str, Any], *, restriction_opened: bool = False) -> PrivacyState:
    """The /status answer's privacy settings as a `PrivacyState`."""
    settings = status.get("privacySettings")
    settings = settings if isinstance(settings, _OBJECT) else {}
    return PrivacyState(
        reserved=settings.get("reserved") is True,
        restricted=settings.get("restricted") is True,
        restriction_opened=restriction_opened,
        blocked_requester=status.get("requesterBlocked") is True,
        any_blocked=settings.get("blockedHealthPersonnelExists") is True,
    )


def outcome_codes(outcome: Any) -> frozenset[str]:
    """The issue detail codes of an OperationOutcome (e.g. 'blocked', 'Reservation')."""
    if not isinstance(outcome, _OBJECT) or outcome.get("resourceType") != "OperationOutcome":
        return frozenset()
    codes: set[str] = set()
    for issue in outcome.get("issue") or []:
        details = issue.get("details") if isinstance(issue, _OBJECT) else None
        if not isinstance(details, _OBJECT):
            continue
        for coding in details.get("coding") or []:
            if isinstance(coding, _OBJECT) and isinstance(coding.get("code"), str):
                codes.add(coding["code"])
    return frozenset(codes)


def provenance(resource: Mapping[str, Any], fetched_at: datetime,
               recorded_at: datetime | None = None) -> Provenance:
    """Kj* identity is id + meta.versionId."""
    rid = _id(resource)
    meta = resource.get("meta")
    version = meta.get("versionId") if isinstance(meta, _OBJECT) else None
    return Provenance(source=SOURCE, record_id=f"{rid}/{version}" if version else rid,
                      fetched_at=fetched_at, recorded_at=recorded_at)


def allergy(resource: Mapping[str, Any], fetched_at: datetime) -> CriticalInformation | None:
    """KjAllergyIntolerance -> CriticalInformation(ALLERGY); None when entered in error."""
    verification = _code(resource.get("verificationStatus"))
    if verification == "entered-in-error":
        return None
    clinical = _code(resource.get("clinicalStatus"))
    code = _required_code(resource)
    reactions = [r for r in resource.get("reaction") or [] if isinstance(r, _OBJECT)]
    manifestations = [_text(m) for r in reactions for m in r.get("manifestation") or []]
    severities = [r.get("severity") for r in reactions if isinstance(r.get("severity"), str)]
    recorded = parse_datetime(resource.get("recordedDate"))
    return CriticalInformation(
        id=_id(resource),
        type=CriticalType.ALLERGY,
        code=code,
        description=code.display or code.code,
        provenance=provenance(resource, fetched_at, recorded),
        status="inactive" if verification == "refuted" or clinical in ("inactive", "resolved")
        else "active",
        severity=_worst(severities) or CRITICALITY_SEVERITY.get(str(resource.get("criticality"))),
        reaction=", ".join(m for m in manifestations if m) or None,
        verification=verification,
        recorded_at=recorded,
    )


def critical_condition(resource: Mapping[str, Any],
                       fetched_at: datetime) -> CriticalInformation | None:
    """KjConditionCriticalMedicalCondition -> CriticalInformation(CRITICAL_CONDITION)."""
    verification = _code(resource.get("verificationStatus"))
    if verification == "entered-in-error":
        return None
    clinical = _code(resource.get("clinicalStatus"))
    code = _required_code(resource, prefer=ICD10)
    recorded = parse_datetime(resource.get("recordedDate"))
    return CriticalInformation(
        id=_id(resource),
        type=CriticalType.CRITICAL_CONDITION,
        code=code,
        description=code.display or code.code,
        provenance=provenance(resource, fetched_at, recorded),
        status="inactive" if verification == "refuted" or clinical in ("inactive", "resolved")
        else "active",
        verification=verification,
        recorded_at=recorded,
    )


def flag(resource: Mapping[str, Any], fetched_at: datetime) -> CriticalInformation | None:
    """KjFlag -> CriticalInformation(OTHER or TREATMENT_OR_IMPLANT); inactive once
    `period.end` is today or past (the profile's rule, judged on the fetch date)."""
    status = resource.get("status")
    if status == "entered-in-error":
        return None
    code = _required_code(resource)
    period = resource.get("period")
    end = parse_date(period.get("end")) if isinstance(period, _OBJECT) else None
    expired = end is not None and end <= fetched_at.date()
    recorded = _updated(resource)
    return CriticalInformation(
        id=_id(resource),
        type=flag_type(resource.get("category")),
        code=code,
        description=code.display or code.code,
        provenance=provenance(resource, fetched_at, recorded),
        status="inactive" if status == "inactive" or expired else "active",
        recorded_at=recorded,
    )


def flag_type(categories: Any) -> CriticalType:
    """The critical-information type of a flag, from its category code or text."""
    for concept in categories if isinstance(categories, list) else [categories]:
        coding = coding_of(concept)
        if coding is None:
            continue
        if coding.code in FLAG_TYPES:
            return FLAG_TYPES[coding.code]
        text = (coding.display or "").casefold()
        if any(word in text for word in IMPLANT_WORDS):
            return CriticalType.TREATMENT_OR_IMPLANT
    return CriticalType.OTHER


def treatment_limitation(resource: Mapping[str, Any],
                         fetched_at: datetime) -> TreatmentLimitation | None:
    """KjConsentBehandlingsavklaring (category 11) -> TreatmentLimitation, e.g. HLR-minus.

    None for other Consent categories, drafts and entries in error."""
    categories = resource.get("category")
    if not (isinstance(categories, list) and categories
            and all(isinstance(c, _OBJECT) for c in categories)):
        raise UnreadableRecordError("A Consent without a category Kilde can read.")
    if not _has_category(categories, HLR_MINUS_CATEGORY):
        return None
    raw_status = resource.get("status")
    status = CONSENT_STATUS.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        if raw_status in CONSENT_NOT_SHOWN:
            return None
        raise UnreadableRecordError("A Consent without a status Kilde knows.")
    provision = resource.get("provision")
    provision = provision if isinstance(provision, _OBJECT) else {}
    # provision.code may also hold a duration code (kodeverk 7655), which is no decision: the
    # SNOMED concept wins, else the first concept in any other system (Kjernejournal's own).
    coded = [(c, coding) for c in provision.get("code") or []
             if isinstance(c, _OBJECT) and (coding := coding_of(c, SNOMED)) is not None
             and coding.system != DURATION]
    if not coded:
        raise UnreadableRecordError("A treatment limitation without a code.")
    concept, code = next(((c, x) for c, x in coded if x.system == SNOMED), coded[0])
    period = provision.get("period")
    performers = [p for p in resource.get("performer") or [] if isinstance(p, _OBJECT)]
    reason = extension_value(resource, LIMITATION_REASON)
    decided_at = parse_datetime(resource.get("dateTime"))
    return TreatmentLimitation(
        id=_id(resource),
        code=code,
        description=str(concept.get("text") or code.display or code.code),
        status=status,
        provenance=provenance(resource, fetched_at, decided_at),
        decided_at=decided_at,
        decided_by=next((str(p["display"]) for p in performers if p.get("display")), None),
        valid_until=_end_date(period),
        reason=reason if isinstance(reason, str) else None,
    )


# -- private helpers ----------------------------------------------------------------------------

_SEVERITY_RANK = {"mild": 1, "moderate": 2, "severe": 3}


def _id(resource: Mapping[str, Any]) -> str:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise UnreadableRecordError("A record without an id.")
    return rid


def _required_code(resource: Mapping[str, Any], prefer: str | None = None) -> Coding:
    code = coding_of(resource.get("code"), prefer)
    if code is None or not (code.code or code.display):
        raise UnreadableRecordError("A record without a code.")
    return code


def _code(concept: Any) -> str | None:
    """`coding_of(concept).code or None`, without building the Coding: the first coding with
    a code (the text alone has none)."""
    if not isinstance(concept, dict):
        return None
    for candidate in concept.get("coding", []):
        if isinstance(candidate, dict) and candidate.get("code"):
            code = candidate["code"]
            return (code if type(code) is str else str(code)) or None
    return None


def _text(concept: Any) -> str | None:
    coding = coding_of(concept)
    return (coding.display or coding.code or None) if coding else None


def _worst(severities: list[Any]) -> str | None:
    known = [s for s in severities if s in _SEVERITY_RANK]
    return max(known, key=_SEVERITY_RANK.__getitem__) if known else None


def _has_category(categories: Any, code: str) -> bool:
    concepts = categories if isinstance(categories, list) else []
    return any(isinstance(c, _OBJECT) and any(
        isinstance(x, _OBJECT) and x.get("code") == code for x in c.get("coding") or [])
        for c in concepts)


def _updated(resource: Mapping[str, Any]) -> datetime | None:
    meta = resource.get("meta")
    return parse_datetime(meta.get("lastUpdated")) if isinstance(meta, _OBJECT) else None


def _end_date(period: Any) -> date | None:
    return parse_date(period.get("end")) if isinstance(period, _OBJECT) else None
