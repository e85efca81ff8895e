"""`/audit/export`: the privacy officer fetches their municipality's audit trail as FHIR.

Sits at the HTTP edge beside `/graphql` and authenticates the same way. Only a privacy officer
(scope `kilde/accesslog.read`) whose organisation is one of this deployment's municipalities
may export, and only what concerns that municipality, the data controller (the same rule as
`accessLog`, docs/policies.md): across patients, the entries of its patients, of its store's
data and, where neither is recorded, of its own personnel; for one `patient`, their whole
trail when the population registry says they live there, only the entries that concern the
municipality when its store holds data of them, and 403 FORBIDDEN otherwise (the refused
attempt is audited). A registry that cannot answer is 503 UPSTREAM_UNAVAILABLE, never an
unfiltered export. Asking for another municipality's trail (`municipality`) is 403, and so is
a privacy officer of an organisation this deployment does not serve. The export is itself an
access to the log, so one event (reason AUDIT_EXPORT, naming the patient when the export is
for one) is written before anything streams; if it cannot be written, nothing is delivered
(503 AUDIT_UNAVAILABLE).

    POST /audit/export  {"from": "2026-03-01", "to": "2026-03-31", "patient": "<nin>",
                         "municipality": "0301", "format": "fhir" | "ndjson"}  (all optional)
    GET  /audit/export?from=2026-03-01&to=2026-03-31&format=fhir   (no patient in a URL)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from connectors.credentials import NO_CREDENTIALS, Credentials
from connectors.identifiers import is_valid_nin
from gateway.audit.events import AuditEvent
from gateway.audit.export import FORMATS, bounds
from gateway.audit.sink import AuditSink, AuditUnavailableError
from gateway.auth import AuthError, challenge
from policies import decide_access_log, reasons
from policies.model import Decision, Principal, PrincipalKind
from schema.context import Services
from schema.errors import (
    BadUserInputError,
    ForbiddenError,
    InvalidValueError,
    KildeError,
    RegistryUnavailableError,
    error_dict,
)
from schema.oversight import oversight_of

log = logging.getLogger("kilde.audit")
MAX_BODY_BYTES = 4096
EXPORT_REASON = "AUDIT_EXPORT"

Authenticate = Callable[[Request], Awaitable[Principal]]
CallerCredentials = Callable[[Request], Credentials]


def _error(status: int, error: KildeError) -> Response:
    return Response(orjson.dumps({"errors": [error_dict(error)]}),
                    status_code=status, media_type="application/json")


async def _params(request: Request) -> dict[str, Any]:
    if request.method == "GET":
        if "patient" in request.query_params:
            raise InvalidValueError("Send the patient in a POST body, never in a URL.")
        return dict(request.query_params)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise InvalidValueError("The request body is too large.")
    try:
        params = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise InvalidValueError("The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise InvalidValueError("The request body must be a JSON object.")
    return params


def _text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value or None
    raise InvalidValueError(f"{name!r} must be a string.", argument=name)


def _export_event(principal: Principal, request_id: str, patient: str | None, *,
                  home: str | None = None, refused: Decision | None = None) -> AuditEvent:
    return AuditEvent(
        request_id=request_id, outcome="DENIED" if refused else "DELIVERED",
        reason=refused.reason if refused else EXPORT_REASON,
        principal_kind=principal.kind.value, actor_person_id=principal.person_id,
        actor_name=principal.name, actor_hpr=principal.hpr_number,
        legal_entity=principal.legal_entity, legal_entity_name=principal.legal_entity_name,
        point_of_care=principal.point_of_care, point_of_care_name=principal.point_of_care_name,
        actor_municipality=principal.municipality, client_id=principal.client_id,
        patient_nin=patient, patient_municipality=home,
    )


async def handle_export(request: Request, authenticate: Authenticate, audit: AuditSink,
                        services: Services, *,
                        credentials: CallerCredentials | None = None) -> Response:
    """Answer one export request (see the module docstring); the population registry in
    `services` gives a patient's home municipality, asked with `credentials(request)`."""
    rules = services.rules
    try:
        principal = await authenticate(request)
    except AuthError as exc:
        return challenge(_error(exc.status, exc), exc)
    decision = decide_access_log(principal, None, rules=rules)
    officer = principal.kind is PrincipalKind.PRIVACY_OFFICER
    if officer and decision.reason == reasons.NO_MUNICIPALITY:
        return _error(403, ForbiddenError("Your organisation is not a municipality this "
                                          "Kilde serves, so there is no audit trail of yours "
                                          "to export."))
    if not officer or not decision.allowed or principal.municipality is None:
        return _error(403, ForbiddenError("Only a privacy officer may export the audit trail."))
    try:
        params = await _params(request)
        start, end = bounds(_text(params, "from"), _text(params, "to"))
        patient = _text(params, "patient")
        fmt = _text(params, "format") or "fhir"
        municipality = _text(params, "municipality") or principal.municipality
    except BadUserInputError as exc:
        return _error(400, exc)
    if municipality != principal.municipality:
        return _error(403, ForbiddenError("A privacy officer may export only their own "
                                          "municipality's audit trail."))
    if patient is not None and not is_valid_nin(patient):
        return _error(400, BadUserInputError(
            "'patient' is not a valid national identity number."))
    if fmt not in FORMATS:
        return _error(400, BadUserInputError(f"'format' must be one of {sorted(FORMATS)}."))
    request_id = uuid.uuid4().hex
    only: str | None = principal.municipality  # the entries that concern it; None: all
    home = None
    try:
        if patient is not None:
            oversight = await oversight_of(
                patient, principal.municipality, services=services, request_id=request_id,
                credentials=credentials(request) if credentials else NO_CREDENTIALS)
            home = oversight.home_municipality
            decision = decide_access_log(principal, patient, rules=rules, oversight=oversight)
            if not decision.allowed:  # a refused attempt on a patient's log: audited
                await audit.write(_export_event(principal, request_id, patient, home=home,
                                                refused=decision))
                return _error(403, ForbiddenError(decision.detail or "You may not export "
                                                  "this patient's audit trail."))
            if decision.reason == reasons.PRIVACY_OFFICER:
                only = None  # the patient lives in the officer's municipality: all of it
        # the export is an access to the log: recorded before the first byte leaves
        await audit.write(_export_event(principal, request_id, patient, home=home))
    except RegistryUnavailableError as exc:
        return _error(503, exc)
    except AuditUnavailableError:
        log.error("audit write failed; export refused", extra={"request_id": request_id})
        return _error(503, AuditUnavailableError("The export could not be recorded, so "
                                                 "nothing is delivered; try again shortly."))
    media, writer = FORMATS[fmt]
    events = audit.stream(patient_nin=patient, start=start, end=end, municipality=only)
    name = f"kilde-audit-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.{'json' if fmt == 'fhir' else fmt}"
    return StreamingResponse(writer(events), media_type=media, headers={
        "cache-control": "no-store", "x-request-id": request_id,
        "content-disposition": f'attachment; filename="{name}"'})
