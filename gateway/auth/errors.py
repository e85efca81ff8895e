"""Authentication errors: raised at the gateway's edge before a request reaches the schema.

    AuthError                  UNAUTHENTICATED: no, malformed, expired or untrusted credentials
     └── JwksUnavailableError  the issuer's signing keys could not be fetched (transient)

Messages are one sentence and never carry the token, a national identity number, a name or a
URL path; the underlying library error is kept as `__cause__` for the operator.
"""

from __future__ import annotations


class AuthError(Exception):
    """The request is not authenticated; `message` is safe to show to the caller.

    >>> AuthError("The token has expired.").code
    'UNAUTHENTICATED'
    """

    code = "UNAUTHENTICATED"
    transient = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class JwksUnavailableError(AuthError):
    """The issuer's key set could not be fetched or read; retrying later may succeed."""

    transient = True
