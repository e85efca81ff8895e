"""Authentication: a HelseID-style JWT and its care-relationship attest become a Principal.

The gateway's first step for every request (before the schema):

    auth = Authenticator(settings.auth, http, settings.tenants)
    principal = await auth.authenticate(request.headers.get("authorization"))

`AuthError.code` is "UNAUTHENTICATED"; its message is safe to return to the caller.
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
from gateway.auth.errors import AuthError, JwksUnavailableError
from gateway.auth.jwks import JwksCache
from gateway.auth.principal import (
    CITIZEN_SCOPE,
    CLINICAL_SCOPE,
    PRIVACY_OFFICER_SCOPE,
    Authenticator,
    bearer_token,
    build_principal,
)
from gateway.auth.tokens import validate

__all__ = [
    "ATTEST_TYPE",
    "CITIZEN_SCOPE",
    "CLINICAL_SCOPE",
    "PRIVACY_OFFICER_SCOPE",
    "Attest",
    "AttestPatient",
    "AuthError",
    "Authenticator",
    "Code",
    "DecisionRef",
    "Ident",
    "JwksCache",
    "JwksUnavailableError",
    "bearer_token",
    "build_principal",
    "find_attest",
    "parse_attest",
    "read_attest",
    "to_canonical",
    "validate",
]
