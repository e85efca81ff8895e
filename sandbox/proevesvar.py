"""Simulated Pasientens prøvesvar (PPS, formerly NILAR): the upstream the `proevesvar` connector calls.

Mounted at `/proevesvar` by `sandbox.app`. One route, as in the national API:
`POST /DiagnosticReport/_search` with a form-encoded body (`date` with `gt`/`lt`/`eq`/`ge`/`le`,
`_include=DiagnosticReport:result`, `_include:iterate=Observation:has-member`, `_count`
(default 50), `_skip`) and the patient in the `person-id` header, never in the URL. It answers a
FHIR R4 searchset Bundle rendered from `sandbox.world` lab reports: DiagnosticReport entries
(`search.mode = match`), the Observations they reference (`include`) and, where the patient's
privacy choices shaped the answer, a NilarOperationOutcome (`outcome`) with a PvkOutcome code.
A restriction (`Specific`/`General`) is opened by `FORHOYET_SAMTYKKE`, `AKUTT` or
`FORHOYET_AKUTT`; a reservation never is.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from connectors.identifiers import is_valid_nin, nin_kind, nin_system
from sandbox.bulk import patient
from sandbox.world import NLK, LabReportFact, LabValueFact, Patient

CATEGORY_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.8202"
INTERPRETATION_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.8244"
PVK_OUTCOME_SYSTEM = "http://nhn.no/fhir/nilar/CodeSystem/PvkOutcome"
UCUM = "http://unitsofmeasure.org"
PROFILE = "http://nhn.no/fhir/nilar/StructureDefinition/"
ACCESS_BASES = ("UNNTAK", "SAMTYKKE", "FORHOYET_SAMTYKKE", "AKUTT", "FORHOYET_AKUTT")
OPENING_BASES = frozenset({"FORHOYET_SAMTYKKE", "AKUTT", "FORHOYET_AKUTT"})
DEFAULT_COUNT = 50
MAX_COUNT = 100
SEARCH_PATH = "/DiagnosticReport/_search"

_CATEGORY_DISPLAY = {"LAB": "Laboratoriemedisin", "PAT": "Patologi", "BLD": "Bildediagnostikk"}
_INTERPRETATION_DISPLAY = {"H": "Over øvre referansegrense", "L": "Under nedre referansegrense"}
_PVK_DISPLAY = {
    "Specific": "Sperring for denne virksomheten",
    "General": "Sperring for alle virksomheter",
    "Reservation": "Pasienten har reservert seg",
    "Opened": "Sperring opphevet med forhøyet tilgangsgrunnlag",
}


class SearchError(ValueError):
    """A search the fake refuses with 400; the message never names the patient."""


def create_app() -> Starlette:
    """The PPS fake as its own Starlette app (mounted at `/proevesvar` by `sandbox.app`)."""
    return Starlette(routes=[Route(SEARCH_PATH, search, methods=["POST"])])


async def search(request: Request) -> Response:
    nin = request.headers.get("person-id", "").strip()
    if not nin:
        # The real service answers some header errors in plain text, not as OperationOutcome.
        return PlainTextResponse("Missing required header: person-id", status_code=400)
    try:
        if not is_valid_nin(nin) or nin_kind(nin) == "FHN":
            raise SearchError("Header person-id is not a valid fødselsnummer or D-nummer.")
        access_basis = request.headers.get("access-basis", "UNNTAK").strip().upper()
        if access_basis not in ACCESS_BASES:
            raise SearchError(f"Header access-basis must be one of {list(ACCESS_BASES)}.")
        content_type = request.headers.get("content-type", "")
        body = (await request.body()).decode("utf-8", errors="replace")
        if body and not content_type.startswith("application/x-www-form-urlencoded"):
            raise SearchError("The body must be application/x-www-form-urlencoded.")
        params = parse_qsl(body, keep_blank_values=True)
        query = parse_query(params)
    except SearchError as exc:
        return fhir_response(operation_outcome("error", "invalid", str(exc)), 400)
    base = str(request.url.replace(query="")).removesuffix(SEARCH_PATH)
    bundle = search_bundle(patient(nin), query, access_basis, base, params)
    return fhir_response(bundle)


def fhir_response(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/fhir+json")


@dataclass
class Query:
    """A parsed search: date filters, includes and the page window."""

    dates: list[tuple[str, date | datetime]] = field(default_factory=list)
    include_results: bool = False
    include_members: bool = False
    count: int = DEFAULT_COUNT
    skip: int = 0


def parse_query(params: list[tuple[str, str]]) -> Query:
    query = Query()
    for key, value in params:
        if key == "date":
            query.dates.append(parse_date_filter(value))
        elif key == "_include" and value == "DiagnosticReport:result":
            query.include_results = True
        elif key == "_include:iterate" and value == "Observation:has-member":
            query.include_members = True
        elif key in ("_count", "_skip"):
            if not value.isdigit():
                raise SearchError(f"Parameter {key} must be a non-negative integer.")
            if key == "_count":
                query.count = min(int(value), MAX_COUNT)
            else:
                query.skip = int(value)
    return query


def parse_date_filter(value: str) -> tuple[str, date | datetime]:
    prefix, raw = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
    if prefix not in ("eq", "gt", "lt", "ge", "le"):
        raise SearchError("Parameter date has an unsupported prefix; use eq, gt, lt, ge or le.")
    try:
        if len(raw) == 10:
            return prefix, date.fromisoformat(raw)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise SearchError("Parameter date must be a date or a dateTime with a prefix.") from None
    if parsed.tzinfo is None:
        raise SearchError("Parameter date needs a time zone when it has a time.")
    return prefix, parsed


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "gt": operator.gt, "lt": operator.lt, "ge": operator.ge, "le": operator.le,
}


def matches_dates(report: LabReportFact, dates: list[tuple[str, date | datetime]]) -> bool:
    """True when the report's effective time passes every filter (a bare date compares days)."""
    return all(
        _COMPARE[prefix](
            report.effective if isinstance(value, datetime) else report.effective.date(), value
        )
        for prefix, value in dates
    )


def visible_reports(
    person: Patient, query: Query, access_basis: str
) -> tuple[list[dict[str, Any]], list[LabReportFact]]:
    """The outcome entries and the matching reports, newest first, after privacy rules."""
    outcome = person.pps_outcome
    if outcome == "Reservation":
        return [outcome_entry(["Reservation"])], []
    outcomes: list[dict[str, Any]] = []
    if outcome in ("Specific", "General"):
        if access_basis not in OPENING_BASES:
            return [outcome_entry([outcome])], []
        outcomes.append(outcome_entry([outcome, "Opened"]))
    reports = sorted(
        (r for r in person.lab_reports if matches_dates(r, query.dates)),
        key=lambda r: r.effective, reverse=True,
    )
    return outcomes, reports


def search_bundle(
    person: Patient | None,
    query: Query,
    access_basis: str,
    base: str,
    params: list[tuple[str, str]],
) -> dict[str, Any]:
    """The searchset Bundle for one patient (None: unknown to PPS, an empty result)."""
    entries: list[dict[str, Any]] = []
    total = 0
    if person is not None:
        outcomes, reports = visible_reports(person, query, access_basis)
        total = len(reports)
        page = reports[query.skip: query.skip + query.count]
        entries.extend(report_entry(r, person, base) for r in page)
        if query.include_results:
            for report in page:
                entries.extend(observation_entries(report, person, base, query.include_members))
        entries.extend(outcomes)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": page_links(base, params, query, total),
        "entry": entries,
    }


def page_links(
    base: str, params: list[tuple[str, str]], query: Query, total: int
) -> list[dict[str, str]]:
    kept = [(k, v) for k, v in params if k not in ("_count", "_skip")]

    def url(skip: int) -> str:
        q = urlencode([*kept, ("_count", str(query.count)), ("_skip", str(skip))])
        return f"{base}{SEARCH_PATH}?{q}"

    links = [{"relation": "self", "url": url(query.skip)}]
    if query.count and query.skip + query.count < total:
        links.append({"relation": "next", "url": url(query.skip + query.count)})
    if query.skip > 0:
        links.append({"relation": "previous", "url": url(max(0, query.skip - query.count))})
    return links


def operation_outcome(severity: str, code: str, diagnostics: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def outcome_entry(codes: list[str]) -> dict[str, Any]:
    issues = [
        {
            "severity": "information",
            "code": "informational" if "Opened" in codes else "suppressed",
            "details": {"coding": [{"system": PVK_OUTCOME_SYSTEM, "code": code,
                                    "display": _PVK_DISPLAY[code]}]},
            "diagnostics": _PVK_DISPLAY[code],
        }
        for code in codes
    ]
    return {
        "resource": {
            "resourceType": "OperationOutcome",
            "id": "pvk-" + "-".join(c.lower() for c in codes),
            "meta": {"profile": [PROFILE + "nilar-operation-outcome"]},
            "issue": issues,
        },
        "search": {"mode": "outcome"},
    }


def subject(person: Patient) -> dict[str, Any]:
    return {"identifier": {"system": nin_system(person.nin), "value": person.nin}}


def report_entry(report: LabReportFact, person: Patient, base: str) -> dict[str, Any]:
    resource = {
        "resourceType": "DiagnosticReport",
        "id": report.id,
        "meta": {"profile": [PROFILE + "nilar-diagnostic-report"]},
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": report.category,
                                  "display": _CATEGORY_DISPLAY.get(report.category)}]}],
        "code": {"coding": [{"system": NLK, "code": report.code, "display": report.display}]},
        "subject": subject(person),
        "effectiveDateTime": report.effective.isoformat(),
        "issued": report.issued.isoformat(),
        "performer": [{"display": report.performer}],
        "result": [{"reference": f"Observation/{report.id}-{n}"}
                   for n, _ in enumerate(report.values, 1)],
    }
    return {"fullUrl": f"{base}/DiagnosticReport/{report.id}", "resource": resource,
            "search": {"mode": "match"}}


def observation_entries(
    report: LabReportFact, person: Patient, base: str, members: bool
) -> list[dict[str, Any]]:
    """The report's Observations, depth first; panel members only when `members` is set."""
    out: list[dict[str, Any]] = []

    def walk(value: LabValueFact, obs_id: str) -> None:
        resource = observation(value, obs_id, report, person)
        out.append({"fullUrl": f"{base}/Observation/{obs_id}", "resource": resource,
                    "search": {"mode": "include"}})
        if members:
            for n, member in enumerate(value.members, 1):
                walk(member, f"{obs_id}-{n}")

    for n, value in enumerate(report.values, 1):
        walk(value, f"{report.id}-{n}")
    return out


def observation(
    value: LabValueFact, obs_id: str, report: LabReportFact, person: Patient
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "meta": {"profile": [PROFILE + "nilar-observation"]},
        "status": "final",
        "code": {"coding": [{"system": NLK, "code": value.code, "display": value.display}]},
        "subject": subject(person),
        "effectiveDateTime": report.effective.isoformat(),
    }
    if value.value:
        resource.update(observation_value(value))
    if value.low is not None or value.high is not None:
        resource["referenceRange"] = [{
            **({"low": quantity(value.low, value.unit)} if value.low is not None else {}),
            **({"high": quantity(value.high, value.unit)} if value.high is not None else {}),
        }]
    if flag := value.abnormal:
        resource["interpretation"] = [{"coding": [{
            "system": INTERPRETATION_SYSTEM, "code": flag,
            "display": _INTERPRETATION_DISPLAY[flag]}]}]
    if value.members:
        resource["hasMember"] = [{"reference": f"Observation/{obs_id}-{n}"}
                                 for n, _ in enumerate(value.members, 1)]
    return resource


def observation_value(value: LabValueFact) -> dict[str, Any]:
    try:
        number = float(value.value)
    except ValueError:
        return {"valueCodeableConcept": {"text": value.value}}
    exact: int | float = int(number) if "." not in value.value else number
    return {"valueQuantity": quantity(exact, value.unit)}


def quantity(number: float, unit: str | None) -> dict[str, Any]:
    if unit is None:
        return {"value": number}
    return {"value": number, "unit": unit, "system": UCUM, "code": unit}
