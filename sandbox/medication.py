"""The simulated SFM medication API: `POST /Patient/$getMedication` for PLL and e-resept.

Sits in the sandbox behind the fault middleware, mounted twice (`/pll` and `/eresept`) so the
two sources fail independently; both serve the same SFM Basis operation. The answer is a FHIR
`Parameters` with `medication` = an `sfm-MedicationBundle` (a document Bundle: Composition
first, with the sections "PLL info" and "Resepter"), `KJHentetTidspunkt` and
`RFHentetTidspunkt`. Rendered from `sandbox.world` `MedicationFact`s: a PLL statement for each
fact `in_pll`, a prescription statement for each `prescription_id` (with `eresept_dosage` when
set, a deliberate conflict), both sharing the `treatmentID`. Resources are transient: they are
referenced by `urn:uuid:` fullUrls that change on every call, as SFM's do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.bulk import patient
from sandbox.world import ATC, ICPC2, MedicationFact, Patient

KINDS = ("pll", "eresept")
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
FHN = "urn:oid:2.16.578.1.12.4.1.4.3"
PATIENT_SYSTEMS = frozenset({FNR, DNR, FHN})
CONSENT_CODES = frozenset({"HPAKUTT", "HPMOTTATTSAMTYKKE", "HPUNNTAK"})
BOOLEAN_PARAMETERS = ("SamtykkeSperretLegemidler", "SamtykkeLasteResepter", "IncludeOriginal")
PLL_SECTION = "PLL info"
PRESCRIPTION_SECTION = "Resepter"
FHIR_JSON = "application/fhir+json"
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
ORGNR = "urn:oid:2.16.578.1.12.4.1.4.101"
NHN_ORGNR = "994598759"  # Norsk helsenett SF, the author of the SFM answer


class BadQueryError(ValueError):
    """The `$getMedication` Parameters are unusable; the message is safe to send back."""


@dataclass(frozen=True)
class Query:
    nin: str
    system: str
    consent: str


def read_query(body: Any) -> Query:
    """The patient and consent from a `$getMedication` Parameters body, or `BadQueryError`."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadQueryError("Expected a Parameters resource.")
    parameters = body.get("parameter")
    if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
        raise BadQueryError("Parameters.parameter must be a list of parameters.")
    by_name = {p.get("name"): p for p in parameters}
    resource = by_name.get("patient", {}).get("resource")
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise BadQueryError("The 'patient' parameter must hold a Patient resource.")
    identifiers = resource.get("identifier")
    found = [
        i for i in identifiers or [] if isinstance(i, dict) and i.get("system") in PATIENT_SYSTEMS
    ] if isinstance(identifiers, list) else []
    if not found:
        raise BadQueryError("The patient needs an identifier with an FNR, DNR or FHN system.")
    nin = found[0].get("value")
    if not isinstance(nin, str) or len(nin) != 11 or not nin.isascii() or not nin.isdigit():
        raise BadQueryError("The patient identifier must be 11 digits.")
    consent_param = by_name.get("SamtykkeKjernejournal", {})
    consent = consent_param.get("valueCode", consent_param.get("valueString"))
    if consent not in CONSENT_CODES:
        raise BadQueryError(f"SamtykkeKjernejournal must be one of {sorted(CONSENT_CODES)}.")
    for name in BOOLEAN_PARAMETERS:
        if name in by_name and not isinstance(by_name[name].get("valueBoolean"), bool):
            raise BadQueryError(f"The {name!r} parameter must have a valueBoolean.")
    return Query(nin=nin, system=str(found[0]["system"]), consent=str(consent))


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _medication(fact: MedicationFact) -> dict[str, Any]:
    return {
        "resourceType": "Medication",
        "code": {"coding": [{"system": ATC, "code": fact.atc}], "text": fact.name},
    }


def _statement(
    fact: MedicationFact, medication_url: str, patient_url: str, *, prescription: bool
) -> dict[str, Any]:
    identifiers = (
        [{"type": {"text": "prescriptionID"}, "value": fact.prescription_id}]
        if prescription
        else [{"type": {"text": "PLL"}, "value": fact.pll_id}]
    )
    if fact.treatment_id:
        identifiers.append({"type": {"text": "treatmentID"}, "value": fact.treatment_id})
    dosage = (fact.eresept_dosage or fact.dosage) if prescription else fact.dosage
    statement: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "identifier": identifiers,
        "status": fact.status,
        "medicationReference": {"reference": medication_url},
        "subject": {"reference": patient_url},
        "effectivePeriod": {"start": fact.started.isoformat()},
        "dosage": [{"sequence": 1, "text": dosage}],
    }
    if fact.reason_code:
        statement["reasonCode"] = [
            {"coding": [{"system": ICPC2, "code": fact.reason_code, "display": fact.reason}]}
        ]
    return statement


def _section(title: str, refs: list[dict[str, str]]) -> dict[str, Any]:
    """A Composition section; FHIR forbids empty arrays, so an empty one has an emptyReason
    and (cmp-1) a narrative saying so."""
    section: dict[str, Any] = {"title": title, "code": {"text": title}}
    if refs:
        section["entry"] = refs
    else:
        section["text"] = {"status": "generated",
                           "div": '<div xmlns="http://www.w3.org/1999/xhtml">Ingen</div>'}
        section["emptyReason"] = {"coding": [{"system": EMPTY_REASON, "code": "nilknown"}]}
    return section


def render_bundle(
    person: Patient | None, nin: str, system: str, at: datetime, *, rf_lookup: bool = True
) -> dict[str, Any]:
    """The `sfm-MedicationBundle` for one patient; an unknown patient gets empty sections."""
    patient_url = _urn()
    entries: list[dict[str, Any]] = [{
        "fullUrl": patient_url,
        "resource": {"resourceType": "Patient", "identifier": [{"system": system, "value": nin}]},
    }]
    pll_refs: list[dict[str, str]] = []
    prescription_refs: list[dict[str, str]] = []
    for fact in person.medications if person else ():
        in_pll = fact.in_pll and fact.pll_id
        prescribed = fact.prescription_id and rf_lookup
        if not (in_pll or prescribed):
            continue
        medication_url = _urn()
        entries.append({"fullUrl": medication_url, "resource": _medication(fact)})
        if in_pll:
            url = _urn()
            entries.append({"fullUrl": url, "resource": _statement(
                fact, medication_url, patient_url, prescription=False)})
            pll_refs.append({"reference": url})
        if prescribed:
            url = _urn()
            entries.append({"fullUrl": url, "resource": _statement(
                fact, medication_url, patient_url, prescription=True)})
            prescription_refs.append({"reference": url})
    composition = {
        "resourceType": "Composition",
        "status": "final",
        "type": {"text": "Legemiddeloversikt"},
        "subject": {"reference": patient_url},
        "date": at.isoformat(),
        "author": [{"identifier": {"system": ORGNR, "value": NHN_ORGNR},
                    "display": "Norsk helsenett SF (Sentral forskrivningsmodul)"}],
        "title": "Legemidler",
        "section": [_section(PLL_SECTION, pll_refs),
                    _section(PRESCRIPTION_SECTION, prescription_refs)],
    }
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": _urn()},
        "type": "document",
        "timestamp": at.isoformat(),
        "entry": [{"fullUrl": _urn(), "resource": composition}, *entries],
    }


def render_response(query: Query, at: datetime, *, rf_lookup: bool = True) -> dict[str, Any]:
    """The `$getMedication` output Parameters; `RFHentetTidspunkt` only when RF was consulted."""
    bundle = render_bundle(patient(query.nin), query.nin, query.system, at, rf_lookup=rf_lookup)
    parameters: list[dict[str, Any]] = [
        {"name": "medication", "resource": bundle},
        {"name": "KJHentetTidspunkt", "valueDateTime": at.isoformat()},
    ]
    if rf_lookup:
        parameters.append({"name": "RFHentetTidspunkt", "valueDateTime": at.isoformat()})
    return {"resourceType": "Parameters", "parameter": parameters}


def _outcome(status: int, message: str) -> Response:
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "invalid", "diagnostics": message}]}
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


def create_app(kind: str, *, rf_lookup: bool = True) -> Starlette:
    """The fake for `kind` ("pll" or "eresept"). `rf_lookup=False` simulates an SFM that did
    not consult Reseptformidleren: no prescriptions and no `RFHentetTidspunkt`."""
    if kind not in KINDS:
        raise ValueError(f"Unknown medication source {kind!r}; one of {list(KINDS)}.")

    async def get_medication(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _outcome(400, "The request body is not JSON.")
        try:
            query = read_query(body)
        except BadQueryError as exc:
            return _outcome(400, str(exc))
        answer = render_response(query, datetime.now(UTC), rf_lookup=rf_lookup)
        return JSONResponse(answer, media_type=FHIR_JSON)

    return Starlette(routes=[Route("/Patient/$getMedication", get_medication, methods=["POST"])])
