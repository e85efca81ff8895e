"""Authentication: a HelseID-style JWT and its care-relationship attest become a Principal.

The gateway's first step for every request (before the schema), the same at every door:

    auth = Authenticator(settings.auth, http, settings.tenants, rules=rules, replay=replay)
    try:
        principal = await authenticate_request(request, auth)     # Authorization + DPoP
    except AuthError as exc:
        return challenge(error_response(exc), exc, auth)          # WWW-Authenticate, DPoP-Nonce

Modules in request order: `door` (the HTTP request), `authenticator` (scheme, mode, cache),
`tokens` + `jwks` + `discovery` (the access token), `dpop` + `replay` + `nonce` (the proof),
`principal` + `attest` (claims to a Principal).

`AuthError.code` is "UNAUTHENTICATED" (or "FORBIDDEN" for a valid token a door does not
serve); its message is safe to return to the caller.
"""

from __future__ import annotations

from gateway.auth.attest import (
    ATTEST_TYPE,
    Attest,
    AttestPatient,
    Code,
    DecisionRef,
    Ident,
    find_attest,
    parse_attest,
    read_attest,
    to_canonical,
)
from gateway.auth.authenticator import Authenticator, bearer_token
from gateway.auth.door import authenticate_request, challenge
from gateway.auth.errors import (
    AuthError,
    DpopNonceError,
    DpopProofError,
    JwksUnavailableError,
    NotAllowedHereError,
)
from gateway.auth.jwks import JwksCache
from gateway.auth.principal import (
    CITIZEN_SCOPE,
    CLINICAL_SCOPE,
    EVENTS_SCOPE,
    PRIVACY_OFFICER_SCOPE,
    Trust,
    build_principal,
)
from gateway.auth.tokens import validate

__all__ = [
    "ATTEST_TYPE",
    "CITIZEN_SCOPE",
    "CLINICAL_SCOPE",
    "EVENTS_SCOPE",
    "PRIVACY_OFFICER_SCOPE",
    "Attest",
    "AttestPatient",
    "AuthError",
    "Authenticator",
    "Code",
    "DecisionRef",
    "DpopNonceError",
    "DpopProofError",
    "Ident",
    "JwksCache",
    "JwksUnavailableError",
    "NotAllowedHereError",
    "Trust",
    "authenticate_request",
    "bearer_token",
    "build_principal",
    "challenge",
    "find_attest",
    "parse_attest",
    "read_attest",
    "to_canonical",
    "validate",
]
