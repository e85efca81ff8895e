"""FHIR R4 search over a list of resources, as a real server runs it: the municipal stores' engine.

Sits under `sandbox.municipal`: the store hands it its resources, the search type and its
parameters, and gets a searchset Bundle (or a `SearchError` it answers as an OperationOutcome).
What it understands is exactly what a `StoreProfile` declares in the store's
CapabilityStatement: token and reference parameters, `_id`, `_count` paging with
`Bundle.link[next]`, `_include` and the chained `patient.identifier` only in profiles that
list them. Unknown parameters follow `Prefer: handling`: `strict` -> 400, `lenient` (FHIR's
default) -> ignored and reported in an OperationOutcome entry (`search.mode = outcome`).
A profile with `ignore_search` is a broken lenient store: it answers every resource of the
type, whoever it belongs to (the connector must never show those).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

Resource = Mapping[str, Any]
RESULT_PARAMETERS = frozenset({"_count", "_offset", "_total", "_format"})


@dataclass(frozen=True)
class StoreProfile:
    """What a store supports, and so what its CapabilityStatement declares.

    >>> PROFILES["plain"].batch
    False
    """

    name: str = "full"
    batch: bool = True
    chained: bool = True
    include: bool = True
    page_size: int = 50
    ignore_search: bool = False
    description: str = "batch, chained patient.identifier, _include, pages of 50"


PROFILES: dict[str, StoreProfile] = {p.name: p for p in (
    StoreProfile(),
    StoreProfile("batch", chained=False, include=False,
                 description="batch; search by patient reference only"),
    StoreProfile("plain", batch=False, chained=False, include=False,
                 description="no batch, no chaining, no _include: one search per request"),
    StoreProfile("paged", batch=False, chained=False, include=False, page_size=2,
                 description="as plain, with pages of 2 (Bundle.link next)"),
    StoreProfile("lenient", ignore_search=True, chained=False, include=False,
                 description="broken: ignores every search parameter (any patient's records)"),
)}

# (parameter, type, path): token paths are read by `_tokens`, references by `_references`.
_CLINICAL_STATUS = ("clinical-status", "token", "clinicalStatus")
SEARCH_PARAMETERS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "Patient": (("identifier", "token", "identifier"), ("active", "token", "active")),
    "Consent": (("patient", "reference", "patient"), ("scope", "token", "scope"),
                ("status", "token", "status"), ("category", "token", "category")),
    "EpisodeOfCare": (("patient", "reference", "patient"), ("status", "token", "status")),
    "Condition": (("patient", "reference", "subject"), ("subject", "reference", "subject"),
                  _CLINICAL_STATUS),
    "MedicationAdministration": (("patient", "reference", "subject"),
                                 ("subject", "reference", "subject"),
                                 ("status", "token", "status")),
    "DocumentReference": (("patient", "reference", "subject"),
                          ("subject", "reference", "subject"), ("status", "token", "status")),
    "AllergyIntolerance": (("patient", "reference", "patient"), _CLINICAL_STATUS),
    "Flag": (("patient", "reference", "subject"), ("subject", "reference", "subject"),
             ("status", "token", "status")),
}


class SearchError(Exception):
    """A search the store refuses; `status` is the HTTP status, `code` the issue type."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def outcome(code: str, message: str, severity: str = "error") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": message}]}


def declared(resource_type: str, profile: StoreProfile) -> dict[str, str]:
    """The search parameters of `resource_type` in `profile`: name -> type."""
    params = {name: kind for name, kind, _ in SEARCH_PARAMETERS.get(resource_type, ())}
    params["_id"] = "token"
    if profile.chained and "patient" in params:
        params["patient.identifier"] = "token"
    return params


# -- matching ----------------------------------------------------------------------------------


def _tokens(value: Any) -> Iterable[tuple[str | None, str]]:
    """(system, code) pairs of a code, Coding, CodeableConcept, Identifier or a list of them."""
    if isinstance(value, list):
        for item in value:
            yield from _tokens(item)
    elif isinstance(value, bool):
        yield None, str(value).lower()
    elif isinstance(value, str):
        yield None, value
    elif isinstance(value, Mapping):
        if "coding" in value:
            yield from _tokens(value["coding"])
        elif "code" in value:
            yield value.get("system"), str(value["code"])
        elif "value" in value:
            yield value.get("system"), str(value["value"])


def _token_matches(wanted: str, value: Any) -> bool:
    """FHIR token search: `code`, `system|code`, `|code` (no system) or `system|`; `,` is OR."""
    for one in wanted.split(","):
        system, sep, code = one.partition("|")
        for have_system, have_code in _tokens(value):
            if not sep:
                found = have_code == one
            elif not code:
                found = have_system == system
            elif not system:
                found = not have_system and have_code == code
            else:
                found = have_system == system and have_code == code
            if found:
                return True
    return False


def _local(reference: str, base: str) -> str:
    """`Type/id` of a reference on this server (absolute on its base, versioned or not)."""
    local = reference.removeprefix(base + "/")
    return local.split("/_history/", 1)[0]


def _reference_matches(wanted: str, value: Any, base: str) -> bool:
    reference = value.get("reference") if isinstance(value, Mapping) else None
    if not isinstance(reference, str):
        return False
    reference = _local(reference, base)
    for one in wanted.split(","):
        one = one.removeprefix(base + "/")
        if reference == one or reference == f"Patient/{one}":
            return True
    return False


def _chain_matches(wanted: str, value: Any, patients: Mapping[str, Resource], base: str) -> bool:
    reference = value.get("reference") if isinstance(value, Mapping) else None
    patient = patients.get(_local(str(reference), base).removeprefix("Patient/"))
    return patient is not None and _token_matches(wanted, patient.get("identifier"))


# -- searching ---------------------------------------------------------------------------------


@dataclass
class Query:
    filters: list[tuple[str, str]] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    count: int = 0
    offset: int = 0


def parse(resource_type: str, params: Sequence[tuple[str, str]], profile: StoreProfile, *,
          strict: bool) -> Query:
    """The search as this store reads it; unknown parameters raise (strict) or are ignored."""
    known = declared(resource_type, profile)
    query = Query(count=profile.page_size)
    for name, value in params:
        if name in ("_count", "_offset"):
            if not value.isdigit():
                raise SearchError(400, "invalid", f"Parameter {name!r} must be a number.")
            if name == "_count":
                query.count = max(1, min(int(value), profile.page_size))
            else:
                query.offset = int(value)
        elif name in RESULT_PARAMETERS:
            continue
        elif name == "_include" and profile.include:
            query.includes.append(value)
        elif name in known:
            query.filters.append((name, value))
        elif strict:
            raise SearchError(400, "not-supported",
                              f"Unknown search parameter {name!r} for {resource_type}.")
        else:
            query.ignored.append(name)
    return query


def search(
    resources: Sequence[Resource],
    resource_type: str,
    params: Sequence[tuple[str, str]],
    *,
    profile: StoreProfile,
    strict: bool,
    base: str,
) -> dict[str, Any]:
    """A searchset Bundle of `resource_type` in `resources` (raises `SearchError`)."""
    if resource_type not in SEARCH_PARAMETERS:
        raise SearchError(404, "not-supported", f"Resource type {resource_type!r} is not served.")
    query = parse(resource_type, params, profile, strict=strict)
    patients = {str(r["id"]): r for r in resources if r["resourceType"] == "Patient"}
    paths = {name: path for name, _, path in SEARCH_PARAMETERS[resource_type]}
    matches = [r for r in resources if r["resourceType"] == resource_type]
    if not profile.ignore_search:
        for name, value in query.filters:
            matches = [r for r in matches if _matches(r, name, value, paths, patients, base)]
    page = matches[query.offset:query.offset + query.count]
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{base}/{resource_type}/{r['id']}", "resource": r,
         "search": {"mode": "match"}} for r in page]
    entries += _included(page, query.includes, paths, patients, base)
    if query.ignored:
        ignored = ", ".join(sorted(set(query.ignored)))
        entries.append({"resource": outcome("not-supported", f"Ignored unknown search "
                                            f"parameters: {ignored}.", "warning"),
                        "search": {"mode": "outcome"}})
    kept = [(n, v) for n, v in params if n != "_offset"]
    links = [{"relation": "self", "url": _page_url(base, resource_type, kept, query.offset)}]
    if query.offset + query.count < len(matches):
        links.append({"relation": "next", "url": _page_url(
            base, resource_type, kept, query.offset + query.count)})
    return {"resourceType": "Bundle", "type": "searchset", "total": len(matches),
            "link": links, "entry": entries} if entries else {
        "resourceType": "Bundle", "type": "searchset", "total": len(matches), "link": links}


def _matches(resource: Resource, name: str, value: str, paths: Mapping[str, str],
             patients: Mapping[str, Resource], base: str) -> bool:
    if name == "_id":
        return _token_matches(value, resource.get("id"))
    if name == "patient.identifier":
        return _chain_matches(value, resource.get(paths["patient"]), patients, base)
    path = paths[name]
    kinds = {n: k for n, k, _ in SEARCH_PARAMETERS[str(resource["resourceType"])]}
    if kinds[name] == "reference":
        return _reference_matches(value, resource.get(path), base)
    return _token_matches(value, resource.get(path))


def _included(page: Sequence[Resource], includes: Sequence[str], paths: Mapping[str, str],
              patients: Mapping[str, Resource], base: str) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for include in includes:
        _, _, element = include.partition(":")
        for r in page:
            target = r.get(paths.get(element, element))
            rid = str(target.get("reference", "") if isinstance(target, Mapping) else "")
            rid = _local(rid, base).removeprefix("Patient/")
            if rid in patients and rid not in seen:
                seen.add(rid)
                out.append({"fullUrl": f"{base}/Patient/{rid}", "resource": patients[rid],
                            "search": {"mode": "include"}})
    return out


def _page_url(base: str, resource_type: str, params: Sequence[tuple[str, str]],
              offset: int) -> str:
    query = urlencode([*params, ("_offset", str(offset))], safe=":|/")
    return f"{base}/{resource_type}?{query}"
