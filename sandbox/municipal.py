"""The simulated municipal stores (kommunens hendelseslager / EPJ): one FHIR R4 base per kommune.

Sits where a municipality's own store would be: `sandbox.app` mounts `create_app()` at
`/municipal`, so a store's base URL is `/municipal/{kommunenummer}`. It renders the facts of
`sandbox.world` kept in that municipality and answers two request shapes, both of which keep
the patient's identity number out of the URL:

    POST /{kommunenummer}                 a `batch` Bundle of searches -> `batch-response`
    POST /{kommunenummer}/{Type}/_search  form body `patient.identifier=system|nin` -> searchset

Searchable types: EpisodeOfCare (services), Consent (`scope=treatment` for treatment
limitations, `scope=patient-privacy` for local restrictions), Condition,
MedicationAdministration, DocumentReference. Correlation headers (`nhn-event-id`, ...) are
accepted when present and never required.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import bulk, world

KOMMUNENUMMER = "https://register.geonorge.no/sosi-kodelister/inndelinger/inndelingsbase/kommunenummer"
ORGNR = "urn:oid:2.16.578.1.12.4.1.4.101"
PERSON_SYSTEMS = frozenset({
    "urn:oid:2.16.578.1.12.4.1.4.1",  # fødselsnummer
    "urn:oid:2.16.578.1.12.4.1.4.2",  # D-nummer
    "urn:oid:2.16.578.1.12.4.1.4.3",  # felles hjelpenummer
})
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
EXT = "https://sandbox.kilde.no/fhir/StructureDefinition/"
DECISION_DATE = EXT + "service-decision-date"
SERVICE_DESCRIPTION = EXT + "service-description"
LIMITATION_DESCRIPTION = EXT + "behandlingsavklaring-description"
LIMITATION_REASON = EXT + "behandlingsavklaring-reason"

FHIR_JSON = "application/fhir+json"
_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

Resource = dict[str, Any]


# -- rendering world facts as FHIR ---------------------------------------------------------------


def _instant(value: date | datetime) -> str:
    return value.isoformat() if isinstance(value, datetime) else f"{value.isoformat()}T00:00:00Z"


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _org_ref(orgnr: str) -> dict[str, Any]:
    return {"identifier": {"system": ORGNR, "value": orgnr},
            "display": world.organisation(orgnr).name}


def _base(resource_type: str, rid: str, number: str, updated: date | datetime) -> Resource:
    return {"resourceType": resource_type, "id": rid,
            "meta": {"lastUpdated": _instant(updated),
                     "tag": [{"system": KOMMUNENUMMER, "code": number}]}}


def _services(p: world.Patient, number: str, subject: dict[str, Any]) -> Iterator[Resource]:
    for s in (s for s in p.services if s.municipality == number):
        unit = world.organisation(s.unit)
        period = {"start": s.started.isoformat(), **({"end": s.ended.isoformat()} if s.ended else {})}
        extension = [{"url": DECISION_DATE, "valueDate": s.decided_at.isoformat()}]
        if s.description:
            extension.append({"url": SERVICE_DESCRIPTION, "valueString": s.description})
        yield _base("EpisodeOfCare", s.id, number, s.decided_at) | {
            "contained": [{"resourceType": "Organization", "id": "unit",
                           "identifier": [{"system": ORGNR, "value": unit.orgnr}],
                           "name": unit.name,
                           "telecom": [{"system": "phone", "value": unit.phone, "use": "work"}]}],
            "extension": extension,
            "status": {"completed": "finished"}.get(s.status, s.status),
            "type": [_concept(world.IPLOS, s.code, s.display)],
            "patient": subject,
            "managingOrganization": {"reference": "#unit", **_org_ref(s.unit)},
            "period": period,
        }


def _limitations(p: world.Patient, number: str, subject: dict[str, Any]) -> Iterator[Resource]:
    for t in p.treatment_limitations:
        if t.where != world.MUNICIPAL or t.municipality != number:
            continue
        code = _concept(world.SNOMED, t.code, t.display)
        yield _base("Consent", t.id, number, t.decided_at) | {
            "extension": [{"url": LIMITATION_DESCRIPTION, "valueString": t.description},
                          {"url": LIMITATION_REASON, "valueString": t.reason}],
            "status": "active",
            "scope": _concept(CONSENT_SCOPE, "treatment", "Treatment"),
            "category": [code],
            "patient": subject,
            "dateTime": _instant(t.decided_at),
            "performer": [{"display": t.decided_by}],
            "organization": [_org_ref(t.organisation)] if t.organisation else [],
            "provision": {"type": "deny", "code": [code]},
        }


def _conditions(p: world.Patient, number: str, subject: dict[str, Any]) -> Iterator[Resource]:
    for c in (c for c in p.conditions if c.municipality == number):
        yield _base("Condition", c.id, number, c.onset) | {
            "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL,
                                           "code": c.clinical_status}]},
            "code": _concept(c.system, c.code, c.display),
            "subject": subject,
            "onsetDateTime": c.onset.isoformat(),
            "recordedDate": c.onset.isoformat(),
        }


def _administrations(p: world.Patient, number: str, subject: dict[str, Any]) -> Iterator[Resource]:
    for m in (m for m in p.medications if m.administered_in == number):
        resource = _base("MedicationAdministration", f"adm-{m.id}", number, m.started) | {
            "status": {"active": "in-progress"}.get(m.status, m.status),
            "medicationCodeableConcept": _concept(world.ATC, m.atc, m.name),
            "subject": subject,
            "effectivePeriod": {"start": m.started.isoformat()},
            "dosage": {"text": m.dosage},
        }
        if m.treatment_id:
            resource["identifier"] = [{"type": {"text": "treatmentID"}, "value": m.treatment_id}]
        if m.reason_code and m.reason:
            resource["reasonCode"] = [_concept(world.ICPC2, m.reason_code, m.reason)]
        yield resource


def _documents(p: world.Patient, number: str, subject: dict[str, Any]) -> Iterator[Resource]:
    for d in (d for d in p.documents if d.municipality == number):
        resource = _base("DocumentReference", d.id, number, d.date) | {
            "status": "current",
            "type": _concept(world.DOC_TYPE, d.type_code, d.type_display),
            "subject": subject,
            "date": _instant(d.date),
            "author": [_org_ref(d.author)],
            "description": d.title,
            "content": [{"attachment": {"contentType": "application/pdf", "title": d.title}}],
        }
        if d.confidential:
            resource["meta"]["security"] = [{"system": CONFIDENTIALITY, "code": "R",
                                             "display": "restricted"}]
        yield resource


Renderer = Callable[[world.Patient, str, dict[str, Any]], Iterator[Resource]]
RENDERERS: dict[str, Renderer] = {
    "EpisodeOfCare": _services,
    "Consent": _limitations,
    "Condition": _conditions,
    "MedicationAdministration": _administrations,
    "DocumentReference": _documents,
}


# -- searching ---------------------------------------------------------------------------------


class SearchError(Exception):
    """A search the store cannot run; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _valid_nin(value: str) -> bool:
    """Mod-11 with two control digits (FNR, D-nummer, FHN); a control digit 10 never matches."""
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        return False
    digits = [int(d) for d in value]
    for weights, position in ((_W1, 9), (_W2, 10)):
        k = 11 - sum(d * w for d, w in zip(digits, weights, strict=False)) % 11
        if (0 if k == 11 else k) != digits[position]:
            return False
    return True


def search(number: str, resource_type: str, params: dict[str, list[str]]) -> Resource:
    """Run one search in store `number` and answer a searchset Bundle (raises `SearchError`)."""
    if resource_type not in RENDERERS:
        raise SearchError(404, "not-supported", f"Resource type {resource_type!r} is not served.")
    token = (params.get("patient.identifier") or [""])[0]
    system, sep, nin = token.partition("|")
    if not sep or system not in PERSON_SYSTEMS or not _valid_nin(nin):
        raise SearchError(400, "invalid", "Search needs patient.identifier=system|value with a "
                                          "valid Norwegian person identifier.")
    found = bulk.patient(nin)
    resources: list[Resource] = []
    if found is not None:
        subject = {"identifier": {"system": system, "value": nin}}
        resources = list(RENDERERS[resource_type](found, number, subject))
    scopes = set(params.get("scope", []))
    if resource_type == "Consent" and scopes:
        resources = [r for r in resources if r["scope"]["coding"][0]["code"] in scopes]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}


def outcome(code: str, message: str) -> Resource:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": message}]}


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found"}


def _batch_entry(number: str, entry: Any) -> Resource:
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict) or request.get("method") != "GET":
        error = SearchError(400, "invalid", "Batch entries must be GET searches.")
    else:
        url = urlsplit(str(request.get("url", "")))
        try:
            return {"resource": search(number, url.path.strip("/"), parse_qs(url.query)),
                    "response": {"status": "200 OK"}}
        except SearchError as exc:
            error = exc
    return {"response": {"status": f"{error.status} {_REASONS[error.status]}",
                         "outcome": outcome(error.code, str(error))}}


def _json(body: Resource, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)


def _store(request: Request) -> str | None:
    number = str(request.path_params["number"])
    return number if any(m.number == number for m in world.MUNICIPALITIES) else None


async def batch(request: Request) -> Response:
    number = _store(request)
    if number is None:
        return _json(outcome("not-found", "No municipal store with that number."), 404)
    try:
        bundle = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        bundle = None
    if not (isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle"
            and bundle.get("type") == "batch" and isinstance(bundle.get("entry", []), list)):
        return _json(outcome("structure", "Expected a FHIR Bundle of type 'batch'."), 400)
    entries = [_batch_entry(number, e) for e in bundle.get("entry", [])]
    return _json({"resourceType": "Bundle", "type": "batch-response", "entry": entries})


async def form_search(request: Request) -> Response:
    number = _store(request)
    if number is None:
        return _json(outcome("not-found", "No municipal store with that number."), 404)
    params = parse_qs((await request.body()).decode("utf-8", "replace"))
    try:
        return _json(search(number, str(request.path_params["type"]), params))
    except SearchError as exc:
        return _json(outcome(exc.code, str(exc)), exc.status)


def create_app() -> Starlette:
    """The municipal stores of every municipality in `sandbox.world`, one base per number."""
    return Starlette(routes=[
        Route("/{number}", batch, methods=["POST"]),
        Route("/{number}/{type}/_search", form_search, methods=["POST"]),
    ])
