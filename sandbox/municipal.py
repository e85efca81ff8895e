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

Types: Patient, Consent (`scope=treatment` for treatment limitations, `scope=patient-privacy`
for local restrictions), EpisodeOfCare (services), Condition, MedicationAdministration,
DocumentReference, AllergyIntolerance (CAVE), Flag. `Prefer: handling=strict` makes an
unknown parameter a 400 OperationOutcome; without it (lenient) unknown parameters are ignored
and reported in an `outcome` entry. Correlation headers (`nhn-event-id`, ...) are accepted and
never required.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import world
from sandbox.fhirsearch import (
    PROFILES,
    SEARCH_PARAMETERS,
    SearchError,
    StoreProfile,
    declared,
    outcome,
    search,
)
from sandbox.municipal_records import KOMMUNENUMMER, store_resources

__all__ = ["KOMMUNENUMMER", "PROFILES", "StoreProfile", "create_app", "profile_from_env"]

FHIR_JSON = "application/fhir+json"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


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
               numbers: Iterable[str] | None = None) -> Starlette:
    """The municipal stores of every municipality in `sandbox.world`, one base per number.

    `resources(number)` replaces what a store holds (default: the world's records), and
    `numbers` the stores served: tests build stores with the identity collisions they need.
    """
    chosen = profile or profile_from_env()
    numbers = set(numbers or (m.number for m in world.MUNICIPALITIES))
    holdings = resources or store_resources

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

    return Starlette(routes=[
        Route("/{number}/metadata", metadata, methods=["GET"]),
        Route("/{number}", batch, methods=["POST"]),
        Route("/{number}/{type}/_search", type_search, methods=["POST"]),
        Route("/{number}/{type}", type_search, methods=["GET"]),
        Route("/{number}/{type}/{id}", read, methods=["GET"]),
    ])
