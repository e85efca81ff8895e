"""Pasientens prøvesvar FHIR -> unified `LabReport`s: the pure half of the `proevesvar` connector.

Sits between the connector's fetch (which collects the searchset entries of every page) and the
unified model. DiagnosticReports (`search.mode = match`) become `LabReport`s; the Observations
they reference (`include`) become `LabResult`s in the order the laboratory wrote them, panel
members (`hasMember`) right after their panel with `level` one deeper, because NILAR says such
hierarchies "must be presented and viewed as a whole". NilarOperationOutcome entries
(`outcome`) carry the patient's privacy choices as PvkOutcome codes:

    Reservation          -> RESERVED, no items (never openable)
    Specific | General   -> RESTRICTED, no items (sperring, for this provider | for all)
    ... with data/Opened -> restriction opened (FORHOYET_*/AKUTT): items, restriction_opened

>>> map_search([], fetched_at=datetime(2026, 1, 1, tzinfo=UTC)).reports
()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors import Coding, LabReport, LabResult, PrivacyState, Provenance, Status
from connectors.fhir import coding_of, parse_datetime, security_of, text_of

SOURCE = "proevesvar"
NLK = "urn:oid:2.16.578.1.12.4.1.1.7280"
CATEGORY_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.8202"
INTERPRETATION_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.8244"
# The NILAR IG itself names kodeverk 8244 by URL and codes it 1/2/3; accept that spelling too.
INTERPRETATION_SYSTEMS = frozenset({
    INTERPRETATION_SYSTEM, "http://ehelse.no/fhir/CodeSystem/no-kodeverk-8244",
})
PVK_OUTCOME_SYSTEMS = frozenset({
    "http://nhn.no/fhir/nilar/CodeSystem/PvkOutcome",
    "http://nhn.no/fhir/nilar/CodeSystem/pvk-outcome-cs",
})
ABNORMAL_CODES = frozenset({"H", "L", "HH", "LL", "A", "AA"})
ABNORMAL_8244 = frozenset({"1", "2", "3"})  # over upper, under lower, outside the limits
RESTRICTIONS = frozenset({"Specific", "General"})
DASH = "\u2013"  # en dash, as laboratories print a range: 13.4\u201317.0 g/dL
MAX_DEPTH = 8  # hasMember nesting we follow; real panels are two or three levels deep
# A JSON object: a dict is told by its type before the Mapping ABC, whose isinstance check
# runs Python code (and these checks run for every element of every record)
_OBJECT = (dict, Mapping)


@dataclass(frozen=True, slots=True)
class MappedSearch:
    """What the entries of one search said.

    `status` is RESERVED or RESTRICTED when privacy withheld the data, else None; `incomplete`
    counts reports and references that could not be mapped (the result is then PARTIAL).
    """

    reports: tuple[LabReport, ...]
    privacy: PrivacyState
    status: Status | None = None
    incomplete: int = 0
    seen: int = 0  # DiagnosticReport entries, read or not (to hold against `Bundle.total`)


def map_search(entries: Sequence[Mapping[str, Any]], fetched_at: datetime) -> MappedSearch:
    """Map the Bundle entries of all fetched pages; reports come out newest (sampled) first."""
    observations: dict[str, Mapping[str, Any]] = {}
    report_resources: list[Mapping[str, Any]] = []
    other = 0  # entries of a type the search cannot have sent: records not read
    for entry in entries:
        resource = entry.get("resource")
        if not isinstance(resource, _OBJECT):
            other += 1
            continue
        kind = resource.get("resourceType")
        if kind == "Observation":
            for key in _keys(entry, resource):
                observations.setdefault(key, resource)
        elif kind == "DiagnosticReport":
            report_resources.append(resource)
        elif kind != "OperationOutcome" and _mode(entry) == "match":
            other += 1  # an included Specimen, Patient, ... is fine
    privacy, status = privacy_of(pvk_codes(entries), has_reports=bool(report_resources))
    if status is not None:
        return MappedSearch((), privacy, status)
    reports: dict[str, LabReport] = {}
    incomplete = other
    for resource in report_resources:
        report_id = resource.get("id")
        if not isinstance(report_id, str) or not report_id:
            incomplete += 1
            continue
        if report_id in reports:  # the same report on two pages
            continue
        report, missing = map_report(resource, observations, fetched_at)
        reports[report_id] = report
        incomplete += missing
    ordered = sorted(reports.values(), key=_newest_first_key, reverse=True)
    return MappedSearch(tuple(ordered), privacy, None, incomplete, len(report_resources))


def _mode(entry: Mapping[str, Any]) -> str:
    search = entry.get("search")
    mode = search.get("mode") if isinstance(search, _OBJECT) else None
    return mode if isinstance(mode, str) else "match"


def pvk_codes(entries: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """The PvkOutcome codes of every OperationOutcome in the entries."""
    codes: set[str] = set()
    for entry in entries:
        resource = entry.get("resource")
        if not isinstance(resource, _OBJECT) or resource.get("resourceType") != "OperationOutcome":
            continue
        for issue in resource.get("issue") or []:
            details = issue.get("details") if isinstance(issue, _OBJECT) else None
            codings = details.get("coding") if isinstance(details, _OBJECT) else None
            for coding in codings or []:
                if isinstance(coding, _OBJECT) and coding.get("system") in PVK_OUTCOME_SYSTEMS:
                    codes.add(str(coding.get("code", "")))
    return frozenset(codes)


def privacy_of(codes: frozenset[str], *, has_reports: bool) -> tuple[PrivacyState, Status | None]:
    """The privacy state and, when the data was withheld, the status it implies."""
    if "Reservation" in codes:
        return PrivacyState(
            reserved=True, detail="The patient has reserved against Pasientens prøvesvar."
        ), Status.RESERVED
    restriction = codes & RESTRICTIONS
    if "Opened" in codes or (restriction and has_reports):
        return PrivacyState(
            restricted=True, restriction_opened=True,
            detail="A restriction on the lab results was opened by the access basis.",
        ), None
    if restriction:
        scope = "this provider" if "Specific" in restriction else "all providers"
        return PrivacyState(
            restricted=True, detail=f"The patient has restricted lab results for {scope}."
        ), Status.RESTRICTED
    return PrivacyState(), None


def map_report(
    resource: Mapping[str, Any], observations: Mapping[str, Mapping[str, Any]],
    fetched_at: datetime,
) -> tuple[LabReport, int]:
    """One DiagnosticReport with its results, and how many result references were missing."""
    report_id = str(resource["id"])
    issued = parse_datetime(resource.get("issued"))
    results, missing = results_of(resource, observations)
    categories = resource.get("category") or []
    return LabReport(
        id=report_id,
        category=coding_of(categories[0] if isinstance(categories, list) and categories
                           else None, CATEGORY_SYSTEM) or Coding(CATEGORY_SYSTEM, ""),
        code=coding_of(resource.get("code"), NLK) or Coding("", ""),
        status=str(resource.get("status") or "unknown"),
        provenance=Provenance(SOURCE, report_id, fetched_at, recorded_at=issued),
        issued_at=issued,
        effective_at=_effective(resource),
        performer=_performer(resource),
        results=results,
        security=security_of(resource),
    ), missing


def results_of(
    report: Mapping[str, Any], observations: Mapping[str, Mapping[str, Any]]
) -> tuple[tuple[LabResult, ...], int]:
    """The report's observations depth first (panel, then its members one level deeper)."""
    results: list[LabResult] = []
    missing = _walk(report.get("result"), 0, frozenset(), observations, results)
    return tuple(results), missing


def _walk(refs: Any, level: int, path: frozenset[str],
          observations: Mapping[str, Mapping[str, Any]], results: list[LabResult]) -> int:
    """Append the observations `refs` name, depth first; return how many were not found.

    A module function, not a closure that calls itself: such a closure is a reference cycle,
    and it held the decoded observations and the results for the cyclic collector."""
    missing = 0
    for ref in refs if isinstance(refs, list) else []:
        target = ref.get("reference") if isinstance(ref, _OBJECT) else None
        resource = _resolve(target, observations)
        if resource is None:
            missing += 1
            continue
        key = str(resource.get("id") or target)
        if key in path or level > MAX_DEPTH:  # a cycle or absurd depth: stop descending
            continue
        results.append(map_observation(resource, level, key))
        members = resource.get("hasMember")
        if isinstance(members, list) and members:  # (the walk of anything else finds none)
            missing += _walk(members, level + 1, path | {key}, observations, results)
    return missing


def map_observation(resource: Mapping[str, Any], level: int = 0, fallback_id: str = "") -> LabResult:
    value, unit = value_of(resource)
    interpretation = interpretation_of(resource)
    return LabResult(  # positionally, in the fields' order: id, code, value, unit, range, ...
        str(resource.get("id") or fallback_id),
        coding_of(resource.get("code"), NLK) or Coding("", ""),
        value,
        unit,
        reference_range_of(resource, unit),
        interpretation,
        is_abnormal(interpretation),
        level,
        parse_datetime(resource.get("effectiveDateTime")),
    )


def value_of(resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The observation's value as text and its unit; (None, None) when there is none."""
    if isinstance(q := resource.get("valueQuantity"), _OBJECT):
        number = format_number(q.get("value"))
        if number is None:
            return None, None
        comparator = q.get("comparator") if isinstance(q.get("comparator"), str) else ""
        return f"{comparator}{number}", _unit(q)
    if "valueCodeableConcept" in resource:
        return text_of(resource["valueCodeableConcept"]), None
    if isinstance(r := resource.get("valueRange"), _OBJECT):
        low, high = _bound(r.get("low")), _bound(r.get("high"))
        if low is None and high is None:
            return None, None
        return f"{low or ''}{DASH}{high or ''}", _unit(r.get("low")) or _unit(r.get("high"))
    for key in ("valueString", "valueDateTime", "valueInteger"):
        if isinstance(v := resource.get(key), str | int) and not isinstance(v, bool):
            return str(v), None
    return None, None


def reference_range_of(resource: Mapping[str, Any], unit: str | None = None) -> str | None:
    """'low{DASH}high unit', '≥ low unit' or '≤ high unit' (bounds are inclusive), else its text."""
    ranges = resource.get("referenceRange")
    first = ranges[0] if isinstance(ranges, list) and ranges else None
    if not isinstance(first, _OBJECT):
        return None
    low, high = _bound(first.get("low")), _bound(first.get("high"))
    unit = _unit(first.get("low")) or _unit(first.get("high")) or unit
    suffix = f" {unit}" if unit else ""
    if low is not None and high is not None:
        return f"{low}{DASH}{high}{suffix}"
    if low is not None:
        return f"≥ {low}{suffix}"
    if high is not None:
        return f"≤ {high}{suffix}"
    text = first.get("text")
    return text if isinstance(text, str) and text else None


def interpretation_of(resource: Mapping[str, Any]) -> Coding | None:
    concepts = resource.get("interpretation")
    if not isinstance(concepts, list) or not concepts:
        return None
    return coding_of(concepts[0], INTERPRETATION_SYSTEM)


def is_abnormal(interpretation: Coding | None) -> bool:
    """True for H, L, HH, LL, A, AA, and for kodeverk 8244's own codes 1, 2 and 3."""
    if interpretation is None:
        return False
    if interpretation.code.upper() in ABNORMAL_CODES:
        return True
    return interpretation.system in INTERPRETATION_SYSTEMS and interpretation.code in ABNORMAL_8244


def format_number(value: Any) -> str | None:
    """A FHIR decimal as written, without exponent notation (1e-05 -> '0.00001')."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    # the common cases without a Decimal: an int is written as it is, and so is a float whose
    # shortest repr has no exponent (and is no inf or nan)
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is float and "e" not in (text := repr(value)) and "n" not in text:
        return text
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return format(number, "f") if number.is_finite() else None


def _bound(quantity: Any) -> str | None:
    return format_number(quantity.get("value")) if isinstance(quantity, _OBJECT) else None


def _unit(quantity: Any) -> str | None:
    if not isinstance(quantity, _OBJECT):
        return None
    unit = quantity.get("unit") or quantity.get("code")
    return str(unit) if unit else None


def _keys(entry: Mapping[str, Any], resource: Mapping[str, Any]) -> list[str]:
    keys = [f"Observation/{resource['id']}"] if resource.get("id") else []
    if isinstance(full := entry.get("fullUrl"), str) and full:
        keys.append(full)
    return keys


def _resolve(
    reference: Any, observations: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    if not isinstance(reference, str) or not reference:
        return None
    if reference in observations:
        return observations[reference]
    # An absolute reference to a server other than the fullUrl: match on the type/id tail.
    tail = "/".join(reference.rstrip("/").split("/")[-2:])
    return observations.get(tail)


def _effective(resource: Mapping[str, Any]) -> datetime | None:
    if effective := parse_datetime(resource.get("effectiveDateTime")):
        return effective
    period = resource.get("effectivePeriod")
    return parse_datetime(period.get("start")) if isinstance(period, _OBJECT) else None


def _performer(resource: Mapping[str, Any]) -> str | None:
    for performer in resource.get("performer") or []:
        if isinstance(performer, _OBJECT) and isinstance(performer.get("display"), str):
            return str(performer["display"])
    return None


_OLDEST = datetime.min.replace(tzinfo=UTC)


def _newest_first_key(report: LabReport) -> datetime:
    # Sampling time first: that is when the value was true; `issued` changes with corrections.
    return report.effective_at or report.issued_at or _OLDEST
