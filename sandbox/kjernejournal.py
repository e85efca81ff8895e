"""The simulated Kjernejournal "Kritisk informasjon" FHIR R4 API (national summary care record).

Sits where NHN's critical-information API would be: `sandbox.app` mounts `create_app()` at
`/kjernejournal`. It renders the facts of `sandbox.world` kept in Kjernejournal (`where ==
KJERNEJOURNAL`) and enforces the patient's privacy choices at the source, as the real API does:

    POST /status {"nin": ...}                 privacy settings, change dates, requesterBlocked
    GET  /AllergyIntolerance[?criticalInfoType=DrugReaction|OtherAllergen]   KjAllergyIntolerance
    GET  /Condition                           KjConditionCriticalMedicalCondition (category 5)
    GET  /Flag                                KjFlag (category 9)
    GET  /Consent                             KjConsentBehandlingsavklaring (category 11)

The patient travels in the `nhn-patient-nin` header, never in the URL; `nhn-access-basis`
(UNNTAK, SAMTYKKE, AKUTT, FORHOYET_SAMTYKKE, FORHOYET_AKUTT) is required on searches, and
`nhn-user-hpr` names the requester. Reserved -> 200 with an outcome entry `Reservation`; anyone
blocked -> 403 `blocked` (never overridable); restricted (sperret) -> 403 `restricted` unless an
emergency or elevated-consent basis opens it (then `nhn-restriction-opened: true`). Every JSON
body carries one unknown `x-kj-gibberish-*` field, as the real Kjernejournal does.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import bulk, world

KJ = "http://nhn.no/kj/fhir/"
PROFILE = KJ + "StructureDefinition/"
HEALTH_PROFESSIONALS = KJ + "CodeSystem/CategoriesOfHealthProfessionals"
# The sandbox's choice: the public pages give the category codes (5, 9, 11), not their system.
CATEGORY = KJ + "CodeSystem/CriticalInformationCategory"
OUTCOME = KJ + "CodeSystem/PrivacyOutcome"
SOURCE_OF_INFORMATION = PROFILE + "KjSourceOfInformation"
LIMITATION_REASON = PROFILE + "KjReasonForLimitation"
HPR = "urn:oid:2.16.578.1.12.4.1.4.4"
ORGNR = "urn:oid:2.16.578.1.12.4.1.4.101"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"

ACCESS_BASES = frozenset({"UNNTAK", "SAMTYKKE", "AKUTT", "FORHOYET_SAMTYKKE", "FORHOYET_AKUTT"})
OPENS_RESTRICTION = frozenset({"AKUTT", "FORHOYET_AKUTT", "FORHOYET_SAMTYKKE"})
FHIR_JSON = "application/fhir+json"
_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

Resource = dict[str, Any]


def _valid_nin(value: str) -> bool:
    """Mod-11 with two control digits (the fake checks on its own, like the real API)."""
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        return False
    digits = [int(d) for d in value]
    for weights, position in ((_W1, 9), (_W2, 10)):
        k = 11 - sum(d * w for d, w in zip(digits, weights, strict=False)) % 11
        if k == 10 or (k % 11) != digits[position]:
            return False
    return True


# -- responses ----------------------------------------------------------------------------------


def _json(body: Mapping[str, Any], status: int = 200, *, media_type: str = FHIR_JSON,
          headers: Mapping[str, str] | None = None) -> Response:
    """Every Kjernejournal answer carries one arbitrary unknown field (tolerant readers only)."""
    noisy = {**body, f"x-kj-gibberish-{secrets.token_hex(2)}": secrets.token_hex(6)}
    return Response(orjson.dumps(noisy), status_code=status, media_type=media_type,
                    headers=dict(headers or {}))


def _outcome(code: str, text: str, severity: str = "error", issue: str = "forbidden") -> Resource:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": issue,
                       "details": {"coding": [{"system": OUTCOME, "code": code}],
                                   "text": text}}]}


def _bundle(resources: list[Resource], outcome: Resource | None = None) -> Resource:
    entries: list[Resource] = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
                                "search": {"mode": "match"}} for r in resources]
    if outcome is not None:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": entries}


# -- rendering world facts as Kj* resources ------------------------------------------------------


def _concept(system: str, code: str, display: str) -> Resource:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _meta(profile: str, updated: datetime) -> Resource:
    return {"versionId": "1", "lastUpdated": updated.isoformat(), "profile": [PROFILE + profile]}


def _recorder(p: world.Patient) -> Resource:
    """The contained PractitionerRole `recorderRef`: a physician in the patient's municipality
    (HPR number and workplace only), or an anonymous GP where the world has none."""
    doctor = next((x for x in world.PROFESSIONALS if x.profession == "LE" and x.hpr
                   and world.organisation(x.workplace).municipality == p.municipality), None)
    role: Resource = {"resourceType": "PractitionerRole", "id": "recorderRef",
                      "practitioner": {"display": "Fastlege"},
                      "code": [_concept(HEALTH_PROFESSIONALS, "LE", "Lege")]}
    if doctor is not None:
        workplace = world.organisation(doctor.workplace)
        role["practitioner"] = {"identifier": {"system": HPR, "value": doctor.hpr},
                                "display": "Lege"}
        role["organization"] = {"identifier": {"system": ORGNR, "value": workplace.orgnr},
                                "display": workplace.name}
    return role


def _subject(p: world.Patient) -> Resource:
    return {"identifier": {"system": FNR, "value": p.nin}}


def _allergy(p: world.Patient, a: world.AllergyFact) -> Resource:
    substance = _concept(a.substance_system, a.substance_code, a.substance)
    return {
        "resourceType": "AllergyIntolerance", "id": a.id,
        "meta": _meta("KjAllergyIntolerance", a.recorded_at),
        "contained": [_recorder(p)],
        "extension": [{"url": SOURCE_OF_INFORMATION,
                       "valueCodeableConcept": {"text": "Helsepersonell"}}],
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": "confirmed"}]},
        "type": "allergy",
        "category": ["medication" if a.drug_reaction else "food"],
        "criticality": "high" if a.severity == "severe" else "low",
        "code": substance,
        "patient": _subject(p),
        "recordedDate": a.recorded_at.isoformat(),
        "recorder": {"reference": "#recorderRef"},
        "reaction": [{"substance": substance, "manifestation": [{"text": a.reaction}],
                      "severity": a.severity}],
    }


def _condition(p: world.Patient, c: world.CriticalConditionFact) -> Resource:
    return {
        "resourceType": "Condition", "id": c.id,
        "meta": _meta("KjConditionCriticalMedicalCondition", c.recorded_at),
        "contained": [_recorder(p)],
        "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": CONDITION_VERIFICATION,
                                           "code": "confirmed"}]},
        "category": [_concept(CATEGORY, "5", "Kritisk medisinsk tilstand")],
        "code": {"coding": [{"system": world.ICD10, "code": c.code, "display": c.display,
                             "userSelected": True}], "text": c.display},
        "subject": _subject(p),
        "onsetDateTime": c.onset.isoformat(),
        "recordedDate": c.recorded_at.isoformat(),
        "recorder": {"reference": "#recorderRef"},
    }


def _consent(p: world.Patient, t: world.TreatmentLimitationFact) -> Resource:
    return {
        "resourceType": "Consent", "id": t.id,
        "meta": _meta("KjConsentBehandlingsavklaring", t.decided_at),
        "contained": [_recorder(p)],
        "extension": [{"url": LIMITATION_REASON, "valueString": t.reason[:80]}],
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "treatment"}]},
        "category": [_concept(CATEGORY, "11", "HLR-minus og behandlingsavklaringer")],
        "patient": _subject(p),
        "dateTime": t.decided_at.isoformat(),
        "performer": [{"reference": "#recorderRef", "display": t.decided_by}],
        "policyRule": {"coding": [{"system": CATEGORY, "code": "2"}]},
        "provision": {"type": "deny",
                      "code": [{"coding": [{"system": t.system, "code": t.code,
                                            "display": t.display}],
                                "text": t.description}]},
    }


def _allergies(p: world.Patient, request: Request) -> Iterator[Resource]:
    kind = request.query_params.get("criticalInfoType")
    for a in p.allergies:
        if a.where != world.KJERNEJOURNAL:
            continue
        if kind == "DrugReaction" and not a.drug_reaction:
            continue
        if kind == "OtherAllergen" and a.drug_reaction:
            continue
        yield _allergy(p, a)


def _conditions(p: world.Patient, request: Request) -> Iterator[Resource]:
    yield from (_condition(p, c) for c in p.critical_conditions
                if c.where == world.KJERNEJOURNAL)


def _flags(p: world.Patient, request: Request) -> Iterator[Resource]:
    return iter(())  # the world records no procedural-change flags


def _consents(p: world.Patient, request: Request) -> Iterator[Resource]:
    yield from (_consent(p, t) for t in p.treatment_limitations
                if t.where == world.KJERNEJOURNAL)


# -- status -------------------------------------------------------------------------------------


def _latest(values: Iterator[datetime]) -> datetime | None:
    return max(values, default=None)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def status_of(p: world.Patient | None, nin: str, requester_hpr: str | None) -> Resource:
    """The /status answer for a patient (None: a valid number Kjernejournal does not know)."""
    reserved = bool(p and p.kj_reserved)
    blocked = () if p is None else p.kj_blocked_hpr
    kj = world.KJERNEJOURNAL
    allergies = [] if p is None or reserved else [a for a in p.allergies if a.where == kj]
    conditions = [] if p is None or reserved else [c for c in p.critical_conditions
                                                   if c.where == kj]
    limitations = [] if p is None or reserved else [t for t in p.treatment_limitations
                                                    if t.where == kj]
    changed = {
        "allergyIntoleranceDate": _latest(a.recorded_at for a in allergies),
        "conditionComplicationsOfAnesthesiaDate": None,
        "conditionCriticalMedicalConditionDate": _latest(c.recorded_at for c in conditions),
        "flagDate": None,
        "consentBehandlingsavklaringDate": _latest(t.decided_at for t in limitations),
    }
    has_any = bool(allergies or conditions or limitations)
    return {
        "patientNIN": nin,
        "hasCriticalInformation": has_any,
        "hasActiveCriticalInformation": has_any,
        "lastChangedDateTime": _iso(_latest(d for d in changed.values() if d)),
        "dateChanged": {key: _iso(value) for key, value in changed.items()},
        "privacySettings": {"reserved": reserved, "restricted": bool(p and p.kj_restricted),
                            "blockedHealthPersonnelExists": bool(blocked)},
        "requesterBlocked": bool(requester_hpr and requester_hpr in blocked),
    }


async def _status(request: Request) -> Response:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        body = None
    nin = body.get("nin") if isinstance(body, dict) else None
    if not isinstance(nin, str) or not _valid_nin(nin):
        return _json(_outcome("invalid-nin", "The body must be {\"nin\": <valid national "
                                             "identity number>}.", issue="invalid"), 400)
    status = status_of(bulk.patient(nin), nin, request.headers.get("nhn-user-hpr"))
    return _json(status, media_type="application/json")


# -- searches -----------------------------------------------------------------------------------

Render = Callable[[world.Patient, Request], Iterator[Resource]]


def _bad_request(text: str) -> Response:
    return _json(_outcome("bad-request", text, issue="invalid"), 400)


def _check_role(raw: str | None) -> bool:
    """`nhn-user-role` is optional here, but when sent it must be URL-encoded JSON."""
    if raw is None:
        return True
    try:
        role = orjson.loads(unquote(raw))
    except orjson.JSONDecodeError:
        return False
    return isinstance(role, dict) and isinstance(role.get("code"), str)


def _search(render: Render) -> Callable[[Request], Any]:
    async def search(request: Request) -> Response:
        nin = request.headers.get("nhn-patient-nin", "")
        basis = request.headers.get("nhn-access-basis", "")
        if not _valid_nin(nin):
            return _bad_request("Header nhn-patient-nin must be a valid national identity number.")
        if basis not in ACCESS_BASES:
            return _bad_request(f"Header nhn-access-basis must be one of {sorted(ACCESS_BASES)}.")
        if not _check_role(request.headers.get("nhn-user-role")):
            return _bad_request("Header nhn-user-role must be URL-encoded JSON {system, code}.")
        if len(request.headers.get("nhn-event-id", "")) > 128:
            return _bad_request("Header nhn-event-id must be at most 128 characters.")
        kind = request.query_params.get("criticalInfoType")
        if kind is not None and kind not in ("DrugReaction", "OtherAllergen"):
            return _bad_request("criticalInfoType must be DrugReaction or OtherAllergen.")
        p = bulk.patient(nin)
        if p is None:
            return _json(_bundle([]))
        if p.kj_reserved:
            reservation = _outcome("Reservation", "The patient has reserved against "
                                   "Kjernejournal.", severity="information", issue="suppressed")
            return _json(_bundle([], reservation))
        if p.kj_blocked_hpr:
            # Kjernejournal cannot control shared data, so one blocking stops all sharing.
            return _json(_outcome("blocked", "The patient has blocked health personnel; no "
                                  "clinical information is shared."), 403)
        headers: dict[str, str] = {}
        if p.kj_restricted:
            if basis not in OPENS_RESTRICTION:
                return _json(_outcome("restricted", "Kjernejournal is restricted; an emergency "
                                      "or elevated-consent access basis is needed."), 403)
            headers["nhn-restriction-opened"] = "true"
        return _json(_bundle(list(render(p, request))), headers=headers)

    return search


def create_app() -> Starlette:
    """The Kjernejournal fake, to be mounted at `/kjernejournal`."""
    return Starlette(routes=[
        Route("/status", _status, methods=["POST"]),
        Route("/AllergyIntolerance", _search(_allergies)),
        Route("/Condition", _search(_conditions)),
        Route("/Flag", _search(_flags)),
        Route("/Consent", _search(_consents)),
    ])
