"""The simulated municipal stores (kommunens hendelseslager / EPJ): one FHIR R4 base per kommune.

Sits where a municipality's own store would be: `sandbox.app` mounts `create_app()` at
`/municipal`, so a store's base URL is `/municipal/{kommunenummer}`. Each store holds the
resources of `sandbox.municipal_records` (Patients with opaque ids, records referring to them
as `Patient/{id}`) and answers like a real server, within its `StoreProfile`
(`sandbox.fhirsearch.PROFILES`, chosen with `KILDE_SANDBOX__MUNICIPAL__PROFILE`):

    GET  /{kommunenummer}/metadata              CapabilityStatement (what the profile supports)
    POST /{kommunenummer}                       `batch` Bundle of GET searches -> `batch-response`
    GET  /{kommunenummer}/{Type}?...            search -> searchset (paged, `Bundle.link`)
    POST /{kommunenummer}/{Type}/_search        the same search with a form body
    GET  /{kommunenummer}/{Type}/{id}           read
    POST /{kommunenummer}/{Type}                create (Consent, DocumentReference,
                                                MedicationAdministration): validated as R4
                                                (`sandbox.fhirwrite`), `If-None-Exist`
                                                honoured, kept for the life of the process

Types: Patient, Consent (`scope=treatment` for treatment limitations, `scope=patient-privacy`
for local restrictions), EpisodeOfCare (services), Condition, MedicationAdministration,
DocumentReference, AllergyIntolerance (CAVE), Flag. `Prefer: handling=strict` makes an
unknown parameter a 400 OperationOutcome; without it (lenient) unknown parameters are ignored
and reported in an `outcome` entry. Correlation headers (`nhn-event-id`, ...) are accepted and
never required.

A create answers 201 with the stored resource (new id, `meta.versionId` 1, `lastUpdated`,
the store's tags) and a `Location`; with `If-None-Exist: identifier=system|value` matching one
record of the type, 200 with that record and nothing stored; matching several, 412. Invalid R4
is 400; a subject this store does not hold, or a record dated before the patient's birth
(`business-rule`), is 422; each an OperationOutcome naming the element. The `lenient` profile is broken here too: it declares no conditional create and
ignores `If-None-Exist`. After each stored record `on_change(number, nin, type)` is called
(the sandbox's "data changed" hook: it tells Kilde).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import fhirwrite, world
from sandbox.fhirsearch import (
    PROFILES,
    SEARCH_PARAMETERS,
    SearchError,
    StoreProfile,
    _token_matches,
    declared,
    outcome,
    search,
)
from sandbox.municipal_records import KOMMUNENUMMER, SOURCE_TAG, store_resources

__all__ = ["KOMMUNENUMMER", "PROFILES", "StoreProfile", "create_app", "profile_from_env"]

FHIR_JSON = "application/fhir+json"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
WRITABLE = tuple(fhirwrite.TYPES)  # the types a store creates
ChangeHook = Callable[[str, str, str], None]  # (kommunenummer, identity number, type)
# the time a record is about, per type: a store refuses one before the patient's birth
WHEN = {"Consent": "dateTime", "DocumentReference": "date",
        "MedicationAdministration": "effectiveDateTime"}


def profile_from_env(environ: Mapping[str, str] | None = None) -> StoreProfile:
    """The profile named by `KILDE_SANDBOX__MUNICIPAL__PROFILE` (default `full`)."""
    env = os.environ if environ is None else environ
    name = env.get("KILDE_SANDBOX__MUNICIPAL__PROFILE", "full")
    if name not in PROFILES:
        raise ValueError(f"KILDE_SANDBOX__MUNICIPAL__PROFILE must be one of {sorted(PROFILES)}, "
                         f"not {name!r}.")
    return PROFILES[name]


def capability_statement(profile: StoreProfile) -> dict[str, Any]:
    resources = []
    for rtype in SEARCH_PARAMETERS:
        params = declared(rtype, profile)
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": n, "type": t} for n, t in params.items()],
        }
        if rtype in WRITABLE:
            entry["interaction"].append({"code": "create"})
            entry["conditionalCreate"] = not profile.ignore_search
        if profile.include and rtype != "Patient":
            entry["searchInclude"] = [f"{rtype}:{n}" for n, t in params.items()
                                      if t == "reference"]
        resources.append(entry)
    rest: dict[str, Any] = {"mode": "server", "resource": resources}
    if profile.batch:
        rest["interaction"] = [{"code": "batch"}]
    return {"resourceType": "CapabilityStatement", "status": "active", "date": "2026-01-01",
            "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
            "software": {"name": f"Kilde sandbox municipal store ({profile.name})"},
            "implementation": {"description": profile.description},
            "rest": [rest]}


def _json(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)


def _strict(request: Request) -> bool:
    prefer = request.headers.get("prefer", "")
    return any(p.strip().replace(" ", "") == "handling=strict" for p in prefer.split(";")
               for p in p.split(","))


def create_app(profile: StoreProfile | None = None,
               resources: Callable[[str], Sequence[Mapping[str, Any]]] | None = None,
               numbers: Iterable[str] | None = None,
               on_change: ChangeHook | None = None) -> Starlette:
    """The municipal stores of every municipality in `sandbox.world`, one base per number.

    `resources(number)` replaces what a store holds (default: the world's records), and
    `numbers` the stores served: tests build stores with the identity collisions they need.
    What is created is kept in `app.state.written` (number -> resources) and served with the
    rest; `on_change` is called after each create (see the module docstring).
    """
    chosen = profile or profile_from_env()
    numbers = set(numbers or (m.number for m in world.MUNICIPALITIES))
    given = resources or store_resources
    written: dict[str, list[dict[str, Any]]] = {}

    def holdings(number: str) -> Sequence[Mapping[str, Any]]:
        extra = written.get(number)
        return (*given(number), *extra) if extra else given(number)

    def base_of(request: Request, number: str) -> str:
        url = request.url
        return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}/{number}"

    def run(request: Request, number: str, rtype: str, params: list[tuple[str, str]]
            ) -> dict[str, Any]:
        return search(holdings(number), rtype, params, profile=chosen,
                      strict=_strict(request), base=base_of(request, number))

    def store(request: Request) -> str:
        number = str(request.path_params["number"])
        if number not in numbers:
            raise SearchError(404, "not-found", "No municipal store with that number.")
        return number

    async def metadata(request: Request) -> Response:
        try:
            store(request)
        except SearchError as exc:
            return _json(outcome(exc.code, str(exc)), exc.status)
        return _json(capability_statement(chosen))

    async def batch(request: Request) -> Response:
        try:
            number = store(request)
            if not chosen.batch:
                raise SearchError(405, "not-supported", "This store does not support batch.")
            try:
                bundle = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                bundle = None
            if not (isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle"
                    and bundle.get("type") == "batch"
                    and isinstance(bundle.get("entry", []), list)):
                raise SearchError(400, "structure", "Expected a FHIR Bundle of type 'batch'.")
        except SearchError as exc:
            return _json(outcome(exc.code, str(exc)), exc.status)
        entries = [entry_answer(request, number, e) for e in bundle.get("entry", [])]
        return _json({"resourceType": "Bundle", "type": "batch-response", "entry": entries})

    def entry_answer(request: Request, number: str, entry: Any) -> dict[str, Any]:
        ask = entry.get("request") if isinstance(entry, dict) else None
        try:
            if not isinstance(ask, dict) or ask.get("method") != "GET":
                raise SearchError(400, "not-supported", "Batch entries must be GET searches.")
            url = urlsplit(str(ask.get("url", "")))
            result = run(request, number, url.path.strip("/"), parse_qsl(url.query))
            return {"resource": result, "response": {"status": "200 OK"}}
        except SearchError as exc:
            return {"response": {"status": f"{exc.status} {_REASONS[exc.status]}",
                                 "outcome": outcome(exc.code, str(exc))}}

    async def type_search(request: Request) -> Response:
        try:
            number = store(request)
            rtype = str(request.path_params["type"])
            if request.method == "POST":
                body = (await request.body()).decode("utf-8", "replace")
                params = parse_qsl(request.url.query) + parse_qsl(body)
            else:
                params = parse_qsl(request.url.query)
            return _json(run(request, number, rtype, params))
        except SearchError as exc:
            return _json(outcome(exc.code, str(exc)), exc.status)

    async def read(request: Request) -> Response:
        try:
            number = store(request)
        except SearchError as exc:
            return _json(outcome(exc.code, str(exc)), exc.status)
        rtype, rid = request.path_params["type"], request.path_params["id"]
        for r in holdings(number):
            if r["resourceType"] == rtype and r["id"] == rid:
                return _json(r)
        return _json(outcome("not-found", f"No {rtype} with that id."), 404)

    async def create(request: Request) -> Response:
        try:
            number = store(request)
            rtype = str(request.path_params["type"])
            if rtype not in WRITABLE:
                raise SearchError(405, "not-supported", f"This store does not create {rtype}."
                                  if rtype in SEARCH_PARAMETERS else "Unknown resource type.")
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media not in (FHIR_JSON, "application/json"):
                return _json(outcome("not-supported", f"Send {FHIR_JSON}."), 415)
            try:
                resource = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                raise SearchError(400, "structure", "The body is not JSON.") from None
            found = fhirwrite.problems(resource, rtype)
            if found:
                return _json(_issues(found), 400)
            patient = _subject_of(holdings(number), resource, rtype, base_of(request, number))
            if patient is None:
                return _json(outcome("processing", f"{rtype}.{fhirwrite.SUBJECT[rtype]} is "
                                     "not a patient of this store."), 422)
            when = str(resource.get(WHEN[rtype], ""))[:10]
            if when and when < str(patient.get("birthDate", "")):
                return _json(outcome("business-rule", f"{rtype}.{WHEN[rtype]} lies before "
                                     "the patient's birth."), 422)
            subject = next((str(i["value"]) for i in patient.get("identifier", [])
                            if isinstance(i, dict) and i.get("value")), "")
            condition = request.headers.get("if-none-exist")
            if condition is not None and not chosen.ignore_search:
                same = _matching(holdings(number), rtype, condition)
                if len(same) > 1:
                    raise SearchError(412, "duplicate", "If-None-Exist matches several "
                                      "records.")
                if same:
                    return _json(same[0], 200)
        except SearchError as exc:
            return _json(outcome(exc.code, str(exc)), exc.status)
        stored = _stored(resource, number)
        written.setdefault(number, []).append(stored)  # no await since the check: atomic
        if on_change is not None:
            on_change(number, subject, rtype)
        response = _json(stored, 201)
        response.headers["location"] = (f"{base_of(request, number)}/{rtype}/{stored['id']}"
                                        "/_history/1")
        return response

    app = Starlette(routes=[
        Route("/{number}/metadata", metadata, methods=["GET"]),
        Route("/{number}", batch, methods=["POST"]),
        Route("/{number}/{type}/_search", type_search, methods=["POST"]),
        Route("/{number}/{type}", type_search, methods=["GET"]),
        Route("/{number}/{type}", create, methods=["POST"]),
        Route("/{number}/{type}/{id}", read, methods=["GET"]),
    ])
    app.state.written = written
    return app


def _issues(found: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "expression": [where],
                       "diagnostics": f"{where} is not valid R4 ({code})."}
                      for code, where in found]}


def _subject_of(held: Sequence[Mapping[str, Any]], resource: Mapping[str, Any], rtype: str,
                base: str) -> Mapping[str, Any] | None:
    """The store's Patient the resource is about, or None."""
    reference = (resource.get(fhirwrite.SUBJECT[rtype]) or {}).get("reference")
    if not isinstance(reference, str):
        return None
    local = reference.removeprefix(base + "/")
    return next((r for r in held
                 if r["resourceType"] == "Patient" and f"Patient/{r['id']}" == local), None)


def _matching(held: Sequence[Mapping[str, Any]], rtype: str, condition: str
              ) -> list[Mapping[str, Any]]:
    """The records of `rtype` an `If-None-Exist` query matches (only `identifier` is taken)."""
    params = parse_qsl(condition.removeprefix("?"))
    if not params or any(name != "identifier" for name, _ in params):
        raise SearchError(400, "not-supported", "If-None-Exist takes identifier=system|value.")
    return [r for r in held if r["resourceType"] == rtype
            and all(_token_matches(value, r.get("identifier")) for _, value in params)]


def _stored(resource: Mapping[str, Any], number: str) -> dict[str, Any]:
    """The resource as the store keeps it: a new logical id, version 1, its tags."""
    now = datetime.now(UTC)
    meta = dict(resource.get("meta") or {})
    meta.update(versionId="1", lastUpdated=now.isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"))
    tags = [t for t in meta.get("tag", []) if t.get("system") not in (KOMMUNENUMMER, SOURCE_TAG)]
    meta["tag"] = [*tags, {"system": KOMMUNENUMMER, "code": number},
                   {"system": SOURCE_TAG, "code": "municipal"}]
    return {**resource, "id": "w" + uuid.uuid4().hex[:20], "meta": meta}
