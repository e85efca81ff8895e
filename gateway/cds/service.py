"""CDS Hooks 2.0: `GET /cds-services` and the `patient-view` service an EPJ calls.

Sits at the HTTP edge beside `/graphql`, and answers from the *same* execution path: the
service runs one fixed GraphQL operation (`PATIENT_VIEW`) through `run_operation`, so the same
authentication, policies, audit-before-delivery and AUDIT_UNAVAILABLE apply as to any query,
and the cards (gateway/cds/cards.py) are made from that answer.

A call: `POST /cds-services/kilde-patient-view` with the user's HelseID token in
`Authorization` (the EPJ calls on the user's behalf, exactly as /graphql authenticates it,
DPoP included) and, where `KILDE_CDS__CLIENTS` is set, the EPJ's own signed JWT in
`X-CDS-Client-JWT` (gateway/cds/clientjwt.py). `context.patientId` must carry a Norwegian
identity number: the number itself, `Patient/<number>`, `<system>|<number>` with a person
identifier system (FNR, D-number, FHN), or the id of a prefetched `patient` Patient resource
that carries such an identifier; anything else is 400.

`prefetch` is not requested (the discovery document declares none) and, apart from finding
the patient's identifier, not used: Kilde answers from its own sources, live, and the EPJ's
data is already on the EPJ's screen. `fhirAuthorization` is ignored: Kilde never calls the
EPJ's FHIR server and never forwards a token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.identifiers import PERSON_SYSTEMS, is_valid_nin
from gateway.auth import AuthError, challenge
from gateway.cds.cards import build_cards
from gateway.cds.clientjwt import HEADER, ClientJwtVerifier
from gateway.graphql import Endpoint, caller_credentials, run_operation
from gateway.launch.store import LaunchStore
from gateway.logs import request_id_of
from policies.model import Principal
from schema.errors import BadUserInputError, KildeError, RateLimitedError, error_dict

log = logging.getLogger("kilde.cds")
SERVICE_ID = "kilde-patient-view"
HOOK = "patient-view"
MAX_BODY_BYTES = 262_144  # prefetch may be sizeable; Kilde reads only the patient from it
PATIENT_VIEW = """query CdsPatientView($nin: String!) {
  patient(nin: $nin) {
    alerts { kind priority title detail itemId %(alert_extra)s
             provenance { source municipality recordId } }
    treatmentLimitations { id description decidedAt decidedBy }
    sources { source category status detail %(source_extra)s }
  }
}"""

SERVICE = {
    "hook": HOOK,
    "id": SERVICE_ID,
    "title": "Kilde: kritisk informasjon og behandlingsavklaringer",
    "description": "Treatment limitations (HLR-minus) and conflicting decisions as critical "
    "cards, CAVE and other critical information as warnings, and every source that did not "
    "answer as info, from every municipal store and national service Kilde federates, under "
    "the same policies and audit as its GraphQL API. context.patientId must carry a Norwegian "
    "identity number.",
    "usageRequirements": "Send the user's HelseID access token in Authorization (with its "
    "care-relationship attest bound to the patient); where the Kilde operator requires it, "
    "the EPJ's signed CDS client JWT in X-CDS-Client-JWT.",
}


def operation(schema: Any) -> str:
    """The fixed patient-view operation, with the newer fields the schema has (conflicting
    decisions' provenances, per-store status rows)."""
    types = schema._schema.type_map

    def has(type_name: str, field: str) -> bool:
        return field in getattr(types.get(type_name), "fields", {})

    alert_extra = ("provenances { source municipality recordId }"
                   if has("Alert", "provenances") else "")
    source_extra = " ".join(f for f in ("municipality", "reason") if has("SourceStatus", f))
    return PATIENT_VIEW % {"alert_extra": alert_extra, "source_extra": source_extra}


def _json(status: int, payload: Mapping[str, Any], request_id: str = "") -> Response:
    headers = {"cache-control": "no-store"}
    if request_id:
        headers["x-request-id"] = request_id
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json",
                    headers=headers)


def _error(status: int, error: KildeError, request_id: str = "") -> Response:
    return _json(status, {"errors": [error_dict(error)]}, request_id)


def discovery() -> Response:
    """`GET /cds-services`: the one service Kilde offers."""
    return _json(200, {"services": [SERVICE]})


class HookError(ValueError):
    """The hook request is not one this service can answer (HTTP 400)."""


def _nin_of(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("Patient/"):
        text = text[len("Patient/"):]
    system, bar, number = text.rpartition("|")
    if bar and system not in PERSON_SYSTEMS:
        return None
    return number if is_valid_nin(number) else None


def _from_prefetch(patient_id: object, prefetch: object) -> str | None:
    patient = prefetch.get("patient") if isinstance(prefetch, dict) else None
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        return None
    if patient.get("id") != patient_id:  # the prefetched resource must be the hook's patient
        return None
    for ident in patient.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") in PERSON_SYSTEMS:
            if isinstance(ident.get("value"), str) and is_valid_nin(ident["value"]):
                return str(ident["value"])
    return None


def patient_of(request: Any) -> str:
    """The identity number of the hook's patient; HookError says what is wrong (without it)."""
    if not isinstance(request, dict):
        raise HookError("The hook request must be a JSON object.")
    if request.get("hook") != HOOK:
        raise HookError(f"This service answers the {HOOK!r} hook only.")
    if not isinstance(request.get("hookInstance"), str) or not request["hookInstance"]:
        raise HookError("The hook request has no hookInstance.")
    context = request.get("context")
    if not isinstance(context, dict) or "patientId" not in context:
        raise HookError("The hook request has no context.patientId.")
    nin = _nin_of(context["patientId"]) or _from_prefetch(context["patientId"],
                                                          request.get("prefetch"))
    if nin is None:
        raise HookError("context.patientId must carry a Norwegian identity number: the number, "
                        "'Patient/<number>', '<identifier system>|<number>', or the id of a "
                        "prefetched Patient with such an identifier.")
    return nin


class PatientViewService:
    """The `patient-view` service; built once in the lifespan, shared by requests."""

    def __init__(self, endpoint: Endpoint, launches: LaunchStore, clients: ClientJwtVerifier,
                 *, app_url: str, demo: bool, municipalities: Mapping[str, str]) -> None:
        self.endpoint = endpoint
        self.launches = launches
        self.clients = clients
        self.app_url = app_url
        self.demo = demo  # the demo serves the legevakt app itself, at /app/
        self.municipalities = dict(municipalities)
        self.query = operation(endpoint.schema)

    async def handle(self, request: Request, service_id: str, base: str) -> Response:
        request_id = request_id_of(request.scope)
        if service_id != SERVICE_ID:
            # the client's mistake, in the contract's words (this door said NOT_FOUND)
            return _error(404, BadUserInputError(f"There is no CDS service {service_id!r}; "
                                                 "see GET /cds-services."), request_id)
        if self.clients.required:
            try:
                await self.clients.verify(request.headers.get(HEADER),
                                          aud=f"{base}/cds-services/{SERVICE_ID}")
            except AuthError as exc:
                return _error(401, exc, request_id)
        try:
            principal = await self.endpoint.authenticate(request)
        except AuthError as exc:
            return challenge(_error(exc.status, exc, request_id), exc)
        admission = self.endpoint.admission
        retry_after = (await admission.rate.hit(principal.client_id or "")
                       if admission is not None else None)
        if retry_after is not None:  # the same per-client budget as /graphql
            response = _error(429, RateLimitedError(f"Too many requests from this client; "
                                                    f"retry after {int(retry_after)} s."),
                              request_id)
            response.headers["retry-after"] = str(int(retry_after))
            return response
        try:
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                raise HookError("The hook request is too large.")
            nin = patient_of(orjson.loads(body))
        except (HookError, orjson.JSONDecodeError) as exc:
            message = str(exc) if isinstance(exc, HookError) else "The body is not valid JSON."
            return _error(400, BadUserInputError(message), request_id)
        # the EPJ's token is exchanged per source, as for /graphql (never forwarded)
        credentials = caller_credentials(self.endpoint.tokens,
                                         request.headers.get("authorization"))
        outcome = await run_operation(self.endpoint, principal, self.query, {"nin": nin},
                                      request_id=request_id, operation_name="CdsPatientView",
                                      credentials=credentials)
        if outcome.audit_unavailable:  # as for /graphql: nothing is delivered
            return _json(503, outcome.payload, request_id)
        cards = build_cards(outcome.payload, self.municipalities)
        await self._link(cards, principal, nin, base)
        return _json(200, {"cards": cards}, request_id)

    async def _link(self, cards: list[dict[str, Any]], principal: Principal, nin: str,
                    base: str) -> None:
        """Each card opens the legevakt app on this patient: a launch per card (each is
        single-use), as POST /launch would make."""
        app_url = self.app_url or (f"{base}/app/" if self.demo else "")
        if not app_url:
            return
        for card in cards:
            launch, _ = await self.launches.create(principal, nin, None)
            query = urlencode({"launch": launch, "iss": base})
            card["links"] = [{"label": "Åpne i Kilde legevakt", "type": "absolute",
                              "url": f"{app_url}?{query}"}]
