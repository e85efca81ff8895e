"""Authentication errors: raised at the gateway's edge before a request reaches the schema.

    AuthError                  UNAUTHENTICATED (401) `invalid_token`: no, malformed, expired or
     │                         untrusted credentials, or claims that do not hold together
     ├── JwksUnavailableError  the issuer's signing keys could not be fetched (transient)
     ├── DpopProofError        401 `invalid_dpop_proof`: the DPoP proof is missing or wrong
     │    └── DpopNonceError   401 `use_dpop_nonce`: send the proof again with the server's nonce
     └── NotAllowedHereError   FORBIDDEN (403) `insufficient_scope`: a valid token this door
                               does not serve (a machine token at /graphql)

`error` is the OAuth error code for the `WWW-Authenticate` challenge (RFC 6750 §3.1,
RFC 9449 §7.1); `status` the HTTP status. Messages are one sentence and never carry the token,
the proof, a national identity number, a name or a URL path; the underlying library error is
kept as `__cause__` for the operator.

They are branches of Kilde's one error tree (schema/errors.py): an `AuthError` is an
`UnauthenticatedError`; a `NotAllowedHereError` is an `AuthError` (a door answers it with its
challenge like any other) that gives FORBIDDEN, as a `ForbiddenError`.
"""

from __future__ import annotations

from schema.errors import ForbiddenError, UnauthenticatedError


class AuthError(UnauthenticatedError):
    """The request is not authenticated; `message` is safe to show to the caller.

    >>> AuthError("The token has expired.").code
    'UNAUTHENTICATED'
    """

    error = "invalid_token"  # "" when no credentials were sent (RFC 6750 §3.1: no error code)
    status = 401
    transient = False
    scheme: str | None = None  # the Authorization scheme the request used, set by the door
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = ()  # the door's challenge

    def __init__(self, message: str) -> None:
        super().__init__(message)


class JwksUnavailableError(AuthError):
    """The issuer's key set could not be fetched or read; retrying later may succeed."""

    transient = True


class DpopProofError(AuthError):
    """The DPoP proof is missing, malformed, replayed or does not fit this request or token."""

    error = "invalid_dpop_proof"


class DpopNonceError(DpopProofError):
    """The proof lacks the server's current nonce; `nonce` goes out as the `DPoP-Nonce` header."""

    error = "use_dpop_nonce"

    def __init__(self, message: str, nonce: str) -> None:
        super().__init__(message)
        self.nonce = nonce


class NotAllowedHereError(ForbiddenError, AuthError):
    """A valid token for a kind of caller this door does not serve (FORBIDDEN: ForbiddenError
    comes first)."""

    error = "insufficient_scope"
    status = 403
