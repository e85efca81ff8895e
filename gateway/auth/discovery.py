"""OpenID Connect discovery: where the issuer publishes its signing keys (`jwks_uri`).

Sits under `gateway.auth.jwks`: when `KILDE_AUTH__JWKS_URL` is empty, the key cache asks
`<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4) for the
`jwks_uri` before every scheduled refresh, so an issuer that moves its key set is followed.
The document must name the configured issuer exactly (§4.3), otherwise a look-alike issuer
could hand us its keys. httpx and JSON errors become `JwksUnavailableError` here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from gateway.auth.errors import JwksUnavailableError

WELL_KNOWN = "/.well-known/openid-configuration"


def discovery_url(issuer: str) -> str:
    """The discovery document's URL for `issuer` (a trailing slash is not doubled).

    >>> discovery_url("https://helseid-sts.test.nhn.no/")
    'https://helseid-sts.test.nhn.no/.well-known/openid-configuration'
    """
    return issuer.rstrip("/") + WELL_KNOWN


async def discover_jwks_uri(issuer: str, http: httpx.AsyncClient, *, timeout: float) -> str:
    """The issuer's `jwks_uri`, read from its discovery document; JwksUnavailableError when the
    document cannot be fetched, is not for this issuer, or names no absolute http(s) URL."""
    try:
        response = await http.get(discovery_url(issuer), timeout=timeout)
    except httpx.HTTPError as exc:
        raise JwksUnavailableError(
            "The issuer's discovery document could not be fetched; try again later.") from exc
    if response.status_code != 200:
        raise JwksUnavailableError(
            f"The issuer answered HTTP {response.status_code} for its discovery document; "
            "try again later.")
    try:
        document = response.json()
    except ValueError as exc:
        raise JwksUnavailableError("The issuer's discovery document is not valid JSON.") from exc
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise JwksUnavailableError(
            "The issuer's discovery document names another issuer; check KILDE_AUTH__ISSUER.")
    uri = document.get("jwks_uri")
    if not isinstance(uri, str) or urlsplit(uri).scheme not in ("http", "https") \
            or not urlsplit(uri).netloc:
        raise JwksUnavailableError("The issuer's discovery document has no usable jwks_uri.")
    return uri
