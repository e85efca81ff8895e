"""The issuer's signing keys (JWKS), fetched once and cached; token validation asks it by `kid`.

Sits under `gateway.auth.tokens`: a token names its key by `kid`; an unknown `kid` triggers at
most one refresh per `min_refresh_seconds`, so a flood of tokens with invented key ids cannot
make the gateway hammer the issuer. Concurrent misses wait for the same fetch; misses inside
the window fail fast. httpx and JSON errors become `JwksUnavailableError` here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from gateway.auth.errors import AuthError, JwksUnavailableError

# alg -> (kty, crv) a key must have to verify it; a mismatch is refused, never coerced.
KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
}


def usable_keys(document: object) -> dict[str, dict[str, Any]]:
    """The signing keys of a JWKS document by `kid`; keys PyJWT cannot read are skipped.

    Raises `JwksUnavailableError` when the document is not a JWKS at all.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksUnavailableError("The issuer's key set is not a JWKS document.")
    keys: dict[str, dict[str, Any]] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        keys[entry["kid"]] = entry
    return keys


def key_for(data: dict[str, Any], alg: str) -> jwt.PyJWK:
    """A PyJWK bound to `alg`, refused unless the key's type (and declared `alg`) fit it."""
    kty, crv = KEY_TYPES.get(alg, ("", None))
    declared = data.get("alg")
    if (
        data.get("kty") != kty
        or (crv is not None and data.get("crv") != crv)
        or (declared is not None and declared != alg)
    ):
        raise AuthError("The token's algorithm does not match its signing key.")
    try:
        return jwt.PyJWK(data, algorithm=alg)
    except jwt.PyJWTError as exc:
        raise AuthError("The token's algorithm does not match its signing key.") from exc


class JwksCache:
    """Signing keys of one issuer, cached; refreshed on an unknown `kid` at most once a window.

    >>> cache = JwksCache(settings.jwks_url, http, min_refresh_seconds=30.0)  # doctest: +SKIP
    >>> key = await cache.key("kilde-demo-1")            # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        min_refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 5.0,
    ) -> None:
        if min_refresh_seconds < 0:
            raise ValueError("min_refresh_seconds must not be negative.")
        self._url = url
        self._http = http
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._timeout = timeout
        self._keys: dict[str, dict[str, Any]] = {}
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many times the issuer was asked (for metrics and tests)

    async def key(self, kid: str, *, alg: str | None = None) -> jwt.PyJWK:
        """The key named `kid`, bound to `alg` when given; AuthError when there is none."""
        data = self._keys.get(kid)
        if data is None:
            data = await self._refresh_for(kid)
        if alg is not None:
            return key_for(data, alg)
        try:
            return jwt.PyJWK(data)
        except jwt.PyJWTError as exc:  # pragma: no cover - usable_keys already parsed it
            raise AuthError("The token's signing key is not usable.") from exc

    async def _refresh_for(self, kid: str) -> dict[str, Any]:
        async with self._lock:
            # Whoever held the lock before us may have fetched the key we need.
            data = self._keys.get(kid)
            if data is not None:
                return data
            now = self._clock()
            if self._last_attempt is not None and now - self._last_attempt < self._min_refresh:
                raise AuthError("The token's signing key is not known to the issuer.")
            self._last_attempt = now
            self._keys = await self._fetch()
        data = self._keys.get(kid)
        if data is None:
            raise AuthError("The token's signing key is not known to the issuer.")
        return data

    async def _fetch(self) -> dict[str, dict[str, Any]]:
        self.fetches += 1
        try:
            response = await self._http.get(self._url, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise JwksUnavailableError(
                "The issuer's signing keys could not be fetched; try again later."
            ) from exc
        if response.status_code != 200:
            raise JwksUnavailableError(
                f"The issuer answered HTTP {response.status_code} for its signing keys; "
                "try again later."
            )
        try:
            document = response.json()
        except ValueError as exc:
            raise JwksUnavailableError("The issuer's key set is not valid JSON.") from exc
        return usable_keys(document)
