"""The issuer's signing keys (JWKS), cached and refreshed; token validation asks it by `kid`.

Sits under `gateway.auth.tokens`: a token names its key by `kid`. Keys are fetched again every
`KILDE_AUTH__JWKS_REFRESH_SECONDS` (so a key the issuer rotated out is refused from the next
refresh on) and when an unknown `kid` appears, at most once per `min_refresh_seconds`, so a
flood of tokens with invented key ids cannot make the gateway hammer the issuer. Concurrent
misses wait for the same fetch; misses inside the window fail fast. httpx and JSON errors
become `JwksUnavailableError` here (and in `gateway.auth.discovery`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from gateway.auth.discovery import discover_jwks_uri
from gateway.auth.errors import AuthError, JwksUnavailableError

log = logging.getLogger("kilde.auth")

# How long keys stay in use after their scheduled refresh failed (the issuer is unreachable):
# about one access-token lifetime, so an issuer hiccup does not lock every caller out, while a
# key the issuer removed cannot be kept alive for long by cutting Kilde off from the issuer.
MAX_STALE_SECONDS = 3600.0

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
    """Signing keys of one issuer: refreshed on a schedule and on an unknown `kid`.

    Keys older than `refresh_seconds` are fetched again before they are used, so a key the
    issuer removed is refused from the next refresh on, at most `refresh_seconds` after its
    removal. An unknown `kid` triggers a refresh at most once per `min_refresh_seconds` (a
    flood of invented key ids cannot make the gateway hammer the issuer). When a scheduled
    refresh fails, the keys already held stay in use for `MAX_STALE_SECONDS` more (an issuer
    hiccup is not an outage) and the next attempt waits `min_refresh_seconds`. With no `url`,
    the key set's address is discovered from the issuer (gateway.auth.discovery).

    >>> cache = JwksCache(settings.jwks_url, http, issuer=settings.issuer,
    ...                   min_refresh_seconds=30.0, refresh_seconds=300.0)  # doctest: +SKIP
    >>> key = await cache.key("kilde-demo-1")            # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        min_refresh_seconds: float,
        refresh_seconds: float = 300.0,
        issuer: str = "",
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 5.0,
    ) -> None:
        if min_refresh_seconds < 0 or refresh_seconds <= 0:
            raise ValueError("min_refresh_seconds must not be negative and refresh_seconds "
                             "must be positive.")
        if not url and not issuer:
            raise ValueError("A key cache needs a JWKS URL or an issuer to discover it from.")
        self._url = url
        self._issuer = issuer
        self._http = http
        self._min_refresh = min_refresh_seconds
        self._refresh = refresh_seconds
        self._clock = clock
        self._timeout = timeout
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many times the key set was asked for (for metrics and tests)
        self.discoveries = 0  # how many times the discovery document was asked for

    async def key(self, kid: str, *, alg: str | None = None) -> jwt.PyJWK:
        """The key named `kid`, bound to `alg` when given; AuthError when there is none."""
        await self.ensure_current()
        data = self._keys.get(kid)
        if data is None:
            data = await self._refresh_for(kid)
        if alg is not None:
            return key_for(data, alg)
        try:
            return jwt.PyJWK(data)
        except jwt.PyJWTError as exc:  # pragma: no cover - usable_keys already parsed it
            raise AuthError("The token's signing key is not usable.") from exc

    async def holds(self, kid: str) -> bool:
        """Whether `kid` is still in the issuer's key set (refreshed first when due).

        The authenticator asks this before it trusts a token it verified earlier, so a token
        signed by a removed key stops working at the same refresh as new ones."""
        await self.ensure_current()
        return kid in self._keys

    async def ensure_current(self) -> None:
        """Refresh the keys when the scheduled refresh is due (one fetch for all waiters)."""
        if self._too_stale():
            self._keys = {}  # not refreshed for too long: trust none of them any more
        if not self._due():
            return
        async with self._lock:
            if not self._due():  # whoever held the lock refreshed them
                return
            self._last_attempt = self._clock()
            try:
                self._keys = await self._fetch()
            except JwksUnavailableError:
                if self._fetched_at is None or self._too_stale():
                    self._keys = {}
                    raise
                log.warning("the issuer's signing keys could not be refreshed; using the "
                            "ones fetched %.0f s ago", self._clock() - self._fetched_at)
                return
            self._fetched_at = self._clock()

    def _due(self) -> bool:
        now = self._clock()
        if self._fetched_at is not None and now - self._fetched_at < self._refresh:
            return False
        # after a failed attempt, wait the minimum interval before asking again
        return self._last_attempt is None or now - self._last_attempt >= self._min_refresh

    def _too_stale(self) -> bool:
        return (self._fetched_at is not None
                and self._clock() - self._fetched_at >= self._refresh + MAX_STALE_SECONDS)

    async def _refresh_for(self, kid: str) -> dict[str, Any]:
        async with self._lock:
            # Whoever held the lock before us may have fetched the key we need.
            data = self._keys.get(kid)
            if data is not None:
                return data
            now = self._clock()
            if self._last_attempt is not None and now - self._last_attempt < self._min_refresh:
                if not self._keys:
                    raise JwksUnavailableError(
                        "The issuer's signing keys could not be fetched; try again later.")
                raise AuthError("The token's signing key is not known to the issuer.")
            self._last_attempt = now
            self._keys = await self._fetch()
            self._fetched_at = self._clock()
        data = self._keys.get(kid)
        if data is None:
            raise AuthError("The token's signing key is not known to the issuer.")
        return data

    async def _fetch(self) -> dict[str, dict[str, Any]]:
        url = self._url
        if not url:
            self.discoveries += 1
            url = await discover_jwks_uri(self._issuer, self._http, timeout=self._timeout)
        self.fetches += 1
        try:
            response = await self._http.get(url, timeout=self._timeout)
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
