"""The one way an HTTP door authenticates a request, and the one way it refuses.

Sits between Starlette and `Authenticator`: every authenticated door (`/graphql`, `/events`,
and any door added later) calls `authenticate_request(request, authenticator)` first and, on
`AuthError`, answers with its own error body passed through `challenge(response, error,
authenticator)`, which adds the `WWW-Authenticate` challenges (DPoP and/or Bearer, by
`KILDE_AUTH__DPOP`) and the `DPoP-Nonce` header when the client must sign again with it.

    try:
        principal = await authenticate_request(request, authenticator)
    except AuthError as exc:
        return challenge(my_error_response(exc), exc, authenticator)

The URL a DPoP proof must name (`htu`) is `KILDE_AUTH__PUBLIC_URL` followed by the request's
path when that is set (behind a reverse proxy or an ingress: the URL the caller uses), else
the URL the request arrived at; uvicorn takes the scheme from `X-Forwarded-Proto` only from
the proxies it trusts (`--forwarded-allow-ips`, `FORWARDED_ALLOW_IPS`), and `X-Forwarded-Host`
is never read.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth.authenticator import Authenticator
from gateway.auth.errors import AuthError, DpopNonceError
from policies.model import Principal


def request_url(request: Request, public_url: str = "") -> str:
    """The URL a proof for this request must name (query and fragment are ignored later)."""
    if public_url:
        return public_url.rstrip("/") + request.url.path
    return str(request.url)


async def authenticate_request(request: Request, authenticator: Authenticator, *,
                               machine_scope: str | None = None) -> Principal:
    """The Principal behind the request's `Authorization` and `DPoP` headers, or AuthError.

    `machine_scope`: the scope that lets a machine's token (no person) through this door."""
    try:
        authorizations = request.headers.getlist("authorization")
        if len(authorizations) > 1:
            raise AuthError("The request has more than one Authorization header; send one.")
        proofs = request.headers.getlist("dpop")
        return await authenticator.authenticate(
            authorizations[0] if authorizations else None,
            proofs=proofs,
            method=request.method,
            # only a DPoP proof names the URL (htu): a Bearer request never builds it
            url=request_url(request, authenticator.public_url) if proofs else "",
            machine_scope=machine_scope,
        )
    except AuthError as exc:
        exc.headers = _headers(exc, authenticator)  # so any door can answer with them
        raise


def _headers(error: AuthError, authenticator: Authenticator) -> list[tuple[str, str]]:
    headers = [("www-authenticate", value) for value in authenticator.challenges(error)]
    if isinstance(error, DpopNonceError):
        headers.append(("dpop-nonce", error.nonce))
    return headers


def challenge(response: Response, error: AuthError,
              authenticator: Authenticator | None = None) -> Response:
    """`response` with the challenges for `error` (and the nonce to sign with, if asked).

    An error from `authenticate_request` carries its headers; `authenticator` is needed only
    for one raised elsewhere."""
    headers = error.headers
    if not headers and authenticator is not None:
        headers = _headers(error, authenticator)
    for name, value in headers:
        response.headers.append(name, value)
    return response
