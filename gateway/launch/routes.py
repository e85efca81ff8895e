"""`POST /launch` and `/.well-known/smart-configuration`: the EPJ hands a patient to an app.

Sits at the HTTP edge beside `/graphql` and authenticates the same way. In the SMART App Launch
style: an EPJ with a patient open posts `{"patient": "<nin>", "encounter": "<id>"}` with the
user's token and gets an opaque `launch` id (201), then opens the app at
`<app>?launch=<id>&iss=<Kilde's base URL>`. The app, signed in as the same user, reads the
context with the GraphQL query `launchContext(launch: $launch) { patient encounter }` once.

What Kilde does not do, and says so in its SMART configuration: it is not an authorization
server. HelseID issues every token (its endpoints are published there); HelseID's tokens carry
no SMART launch context, which is why the context is read through GraphQL, not from the token
response.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.identifiers import is_valid_nin
from gateway.auth import AuthError, challenge
from gateway.auth.principal import Trust
from gateway.launch.store import LaunchStore, LaunchUnavailableError
from gateway.settings import Settings
from policies.model import Principal, PrincipalKind
from schema.errors import (
    BadUserInputError,
    ForbiddenError,
    InvalidValueError,
    KildeError,
    error_dict,
)

MAX_BODY_BYTES = 4096
ENCOUNTER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
HEADERS = {"cache-control": "no-store"}


def public_base(request: Request) -> str:
    """Kilde's base URL as the caller reached it: the SMART `iss`."""
    return str(request.base_url).rstrip("/")


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json",
                    headers=HEADERS)


def _error(status: int, error: KildeError) -> Response:
    return _json(status, {"errors": [error_dict(error)]})


async def _body(request: Request) -> tuple[str, str | None]:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise InvalidValueError("The request body is too large.")
    try:
        params = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidValueError('The body must be JSON: {"patient": "<identity number>", '
                         '"encounter": "<optional id>"}.') from None
    if not isinstance(params, dict):
        raise InvalidValueError("The body must be a JSON object.")
    patient, encounter = params.get("patient"), params.get("encounter")
    if not isinstance(patient, str) or not is_valid_nin(patient):
        raise InvalidValueError("'patient' must be a valid national identity number.")
    if encounter is not None and not (isinstance(encounter, str)
                                      and ENCOUNTER_ID.fullmatch(encounter)
                                      and not re.search(r"\d{11}", encounter)):
        raise InvalidValueError("'encounter' must be an id of up to 64 letters, digits, '.', '_' or "
                         "'-' (and no identity number).")
    return patient, encounter


async def handle_launch(request: Request, principal_of: Any, launches: LaunchStore,
                        settings: Settings, trust: Trust) -> Response:
    """Create a launch context for the caller (see the module docstring); `trust` is the
    authenticator's (the policy's scope names, so a policy file's own clinical scope holds)."""
    try:
        principal: Principal = await principal_of(request)
    except AuthError as exc:
        return challenge(_error(exc.status, exc), exc)
    try:
        patient, encounter = await _body(request)
    except BadUserInputError as exc:
        return _error(400, exc)
    clinician = (principal.kind is PrincipalKind.CLINICIAN
                 and trust.clinical_scope in principal.scopes)
    citizen_self = (principal.kind is PrincipalKind.CITIZEN
                    and principal.person_id == patient)
    if not (clinician or citizen_self):
        return _error(403, ForbiddenError("Only a clinician (or the patient, for themself) "
                                          "can hand over a patient context."))
    try:
        launch, ttl = await launches.create(principal, patient, encounter)
    except LaunchUnavailableError as exc:
        return _error(503, exc)  # UPSTREAM_UNAVAILABLE, source "launch"
    iss = public_base(request)
    answer: dict[str, Any] = {"launch": launch, "iss": iss, "expiresIn": int(ttl)}
    app_url = settings.launch.app_url or ("" if settings.production else f"{iss}/app/")
    if app_url:
        answer["url"] = f"{app_url}?{urlencode({'launch': launch, 'iss': iss})}"
    return _json(201, answer)


def smart_configuration(request: Request, settings: Settings, trust: Trust) -> Response:
    """What Kilde supports of SMART App Launch 2.x, and what it leaves to HelseID; the scopes
    are the policy's (`trust`, the authenticator's)."""
    issuer = settings.auth.issuer.rstrip("/")
    base = public_base(request)
    body = {
        "issuer": issuer,
        "jwks_uri": settings.auth.jwks_url,
        "authorization_endpoint": settings.launch.authorization_endpoint
        or f"{issuer}/connect/authorize",
        "token_endpoint": settings.launch.token_endpoint or f"{issuer}/connect/token",
        "grant_types_supported": ["authorization_code"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(settings.auth.algorithms),
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": ["ES256", "RS256", "PS256"],
        "scopes_supported": ["openid", "profile", "launch", trust.clinical_scope,
                             trust.citizen_scope, trust.privacy_officer_scope],
        "capabilities": ["launch-ehr", "context-ehr-patient", "context-ehr-encounter",
                         "client-confidential-asymmetric", "sso-openid-connect",
                         "permission-user"],
        # Kilde's own part: where the context is created and read
        "kilde_launch_endpoint": f"{base}/launch",
        "kilde_graphql_endpoint": f"{base}/graphql",
        "kilde_launch_context": "HelseID issues the tokens and they carry no launch context: "
        "after sign-in, the app reads it once with the GraphQL query "
        "launchContext(launch: $launch) { patient encounter }, as the user who created it.",
        "kilde_launch_ttl_seconds": int(settings.launch.ttl_seconds),
    }
    return Response(orjson.dumps(body), media_type="application/json",
                    headers={"cache-control": "public, max-age=300"})
