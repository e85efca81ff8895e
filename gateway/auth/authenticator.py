"""Authentication at the gateway's edge: an `Authorization` header in, a `Principal` out.

Every authenticated door (`/graphql`, `/events`, ...) calls `Authenticator.authenticate` once
per request before anything else; the Principal it returns is what policies decide on. The
token is validated by `gateway.auth.tokens`, its claims and attest become a Principal in
`gateway.auth.principal`, and the caller's municipality is resolved from the legal entity
through the tenant table. A token verified once is remembered by its hash until it expires,
but only while the issuer still publishes the key that signed it.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.auth.errors import AuthError, NotAllowedHereError
from gateway.auth.jwks import JwksCache
from gateway.auth.principal import Trust, build_principal
from gateway.auth.tokens import SUPPORTED_ALGORITHMS, bound_key, read_header, validate
from gateway.settings import AuthSettings, Tenant
from policies.model import Principal, PrincipalKind

VERIFIED_CACHE_SIZE = 10_000


def bearer_token(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer <token>` header value; AuthError otherwise."""
    if not authorization or not authorization.strip():
        raise AuthError("The request has no Authorization header; send a Bearer token.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("The Authorization header must use the Bearer scheme.")
    token = token.strip()
    if not token:
        raise AuthError("The Authorization header carries no token.")
    return token


@dataclass(frozen=True, slots=True)
class _Verified:
    not_before: float
    expires: float
    kid: str
    jkt: str | None  # the DPoP key the token is bound to (cnf.jkt), None when unbound
    principal: Principal


class Authenticator:
    """Turns an `Authorization` header into a Principal; one instance per app, shared.

    >>> auth = Authenticator(settings.auth, http, settings.tenants, rules=rules)  # doctest: +SKIP
    >>> principal = await auth.authenticate("Bearer eyJ...")      # doctest: +SKIP
    """

    def __init__(
        self,
        settings: AuthSettings,
        http: httpx.AsyncClient,
        tenants: Sequence[Tenant],
        *,
        rules: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unsupported = sorted(set(settings.algorithms) - SUPPORTED_ALGORITHMS)
        if unsupported or not settings.algorithms:
            raise ValueError(
                f"KILDE_AUTH__ALGORITHMS may only name {sorted(SUPPORTED_ALGORITHMS)}; "
                f"got {unsupported or 'none'}."
            )
        self._settings = settings
        self._tenants = {t.orgnr: t for t in tenants}
        self._clock = clock
        self.trust = Trust.of(settings, rules) if rules is not None else Trust(
            min_security_level=settings.min_security_level,
            citizen_min_security_level=settings.citizen_min_security_level,
            leeway=settings.leeway_seconds)
        self.jwks = JwksCache(
            settings.jwks_url, http, issuer=settings.issuer,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            refresh_seconds=settings.jwks_refresh_seconds,
        )
        # Verified tokens, keyed by their SHA-256 (never the token), until they expire: an app
        # sends the same token for many requests, and the signature check was a few per cent
        # of a request's CPU (bench/RESULTS.md). Bounded, oldest out first.
        self._verified: OrderedDict[bytes, _Verified] = OrderedDict()

    async def authenticate(self, authorization: str | None, *,
                           machine_scope: str | None = None) -> Principal:
        """The Principal behind an `Authorization` header value, or AuthError.

        A machine's token (no person) is let in only when `machine_scope` is given and the
        token carries it; elsewhere it is refused with NotAllowedHereError (403)."""
        token = bearer_token(authorization)
        verified = await self._verify(token)
        if verified.jkt is not None:
            raise AuthError("The token is bound to a DPoP key; send it with the DPoP scheme "
                            "and a proof, not as a Bearer token.")
        principal = verified.principal
        if principal.kind is PrincipalKind.MACHINE and (
                machine_scope is None or machine_scope not in principal.scopes):
            raise NotAllowedHereError("This door serves people; a token without a person "
                                      "(client credentials) is not accepted here.")
        return principal

    async def _verify(self, token: str) -> _Verified:
        now = self._clock()
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(digest)
        leeway = self._settings.leeway_seconds
        if cached is not None:
            if (cached.not_before - leeway <= now < cached.expires + leeway
                    and await self.jwks.holds(cached.kid)):
                return cached
            del self._verified[digest]
        kid = read_header(token, self._settings)["kid"]
        claims = await validate(token, self.jwks, self._settings, now=now)
        principal = build_principal(claims, self._tenants, now=now, trust=self.trust)
        verified = _Verified(float(claims.get("nbf", claims.get("iat", now))),
                             float(claims["exp"]), kid, bound_key(claims), principal)
        self._verified[digest] = verified
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return verified
