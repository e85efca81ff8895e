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

from gateway.auth.dpop import ALGORITHMS, DpopVerifier, ProofRules
from gateway.auth.errors import AuthError, DpopProofError, NotAllowedHereError
from gateway.auth.jwks import JwksCache
from gateway.auth.nonce import NonceIssuer, nonce_secret
from gateway.auth.principal import Trust, build_principal
from gateway.auth.replay import ReplayStore
from gateway.auth.tokens import SUPPORTED_ALGORITHMS, bound_key, read_header, validate
from gateway.settings import AuthSettings, Tenant
from policies.model import Principal, PrincipalKind

VERIFIED_CACHE_SIZE = 10_000
DPOP_MODES = ("required", "allowed", "off")


def _quoted(message: str) -> str:
    """A message fit for a quoted header parameter: ASCII, no quotes or backslashes."""
    return message.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "/")


def bearer_token(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer <token>` header value; AuthError otherwise."""
    scheme, token = credentials(authorization)
    if scheme != "bearer":
        raise AuthError("The Authorization header must use the Bearer scheme.")
    return token


def credentials(authorization: str | None) -> tuple[str, str]:
    """The scheme (`bearer` or `dpop`, lower-case) and the token of an Authorization value."""
    if not authorization or not authorization.strip():
        raise MissingCredentialsError("The request has no Authorization header; send an "
                                      "access token.")
    scheme, _, token = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "dpop"):
        raise AuthError("The Authorization header must use the DPoP or Bearer scheme.")
    token = token.strip()
    if not token:
        raise AuthError("The Authorization header carries no token.")
    return scheme, token


class MissingCredentialsError(AuthError):
    """No credentials at all: the challenge carries no error code (RFC 6750 §3.1)."""

    error = ""


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
        replay: ReplayStore | None = None,
        nonce_key: str = "",
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
        if settings.dpop not in DPOP_MODES:
            raise ValueError(f"KILDE_AUTH__DPOP must be one of {list(DPOP_MODES)}.")
        self.mode = settings.dpop
        proof_rules = ProofRules(settings.dpop_max_age_seconds, settings.leeway_seconds)
        self.dpop = DpopVerifier(
            proof_rules, replay or ReplayStore(proof_rules.replay_window),
            NonceIssuer(nonce_secret(nonce_key), clock=clock) if settings.dpop_nonce else None)
        self.public_url = settings.public_url.rstrip("/")
        # Verified tokens, keyed by their SHA-256 (never the token), until they expire: an app
        # sends the same token for many requests, and the signature check was a few per cent
        # of a request's CPU (bench/RESULTS.md). Bounded, oldest out first.
        self._verified: OrderedDict[bytes, _Verified] = OrderedDict()

    async def authenticate(self, authorization: str | None, *, proofs: Sequence[str] = (),
                           method: str = "", url: str = "",
                           machine_scope: str | None = None) -> Principal:
        """The Principal behind an `Authorization` header value, or AuthError.

        `proofs` are the request's `DPoP` header values, `method` and `url` the request's (for
        `htm`/`htu`); `gateway.auth.door.authenticate_request` passes them from a request.
        A machine's token (no person) is let in only when `machine_scope` is given and the
        token carries it; elsewhere it is refused with NotAllowedHereError (403)."""
        scheme = None
        try:
            scheme, token = credentials(authorization)
            verified = await self._check_binding(scheme, token, proofs, method, url)
        except AuthError as exc:
            exc.scheme = scheme
            raise
        principal = verified.principal
        if principal.kind is PrincipalKind.MACHINE and (
                machine_scope is None or machine_scope not in principal.scopes):
            error = NotAllowedHereError("This door serves people; a token without a person "
                                        "(client credentials) is not accepted here.")
            error.scheme = scheme
            raise error
        return principal

    async def _check_binding(self, scheme: str, token: str, proofs: Sequence[str], method: str,
                             url: str) -> _Verified:
        if scheme == "bearer":
            if self.mode == "required":
                raise AuthError("Send the access token with the DPoP scheme and a DPoP proof; "
                                "Bearer tokens are not accepted here.")
            verified = await self._verify(token)
            if verified.jkt is not None:
                raise AuthError("The token is bound to a DPoP key; send it with the DPoP "
                                "scheme and a proof, not as a Bearer token.")
            return verified
        if self.mode == "off":
            raise AuthError("DPoP is not accepted here; send the access token with the Bearer "
                            "scheme.")
        if len(proofs) != 1:
            raise DpopProofError("A DPoP request needs exactly one DPoP header with a proof; "
                                 f"this one has {len(proofs)}.")
        verified = await self._verify(token)
        if verified.jkt is None:
            raise AuthError("The token is not bound to a DPoP key (no cnf.jkt); ask the "
                            "issuer for a DPoP-bound token.")
        await self.dpop.verify(proofs[0], method=method, url=url, token=token,
                               jkt=verified.jkt, now=self._clock())
        return verified

    def challenges(self, error: AuthError | None = None) -> list[str]:
        """The `WWW-Authenticate` values for a refusal: the error on the scheme the request
        used (or the preferred one), a plain challenge for the other scheme accepted."""
        schemes = {"required": ["dpop"], "allowed": ["bearer", "dpop"], "off": ["bearer"]}[
            self.mode]
        if error is not None and error.scheme == "dpop" and "dpop" in schemes:
            schemes = ["dpop", *(s for s in schemes if s != "dpop")]
        values = []
        for i, scheme in enumerate(schemes):
            params = ['realm="kilde"']
            if i == 0 and error is not None and error.error:
                params += [f'error="{error.error}"',
                           f'error_description="{_quoted(error.message)}"']
            if scheme == "dpop":
                params.append(f'algs="{" ".join(ALGORITHMS)}"')
            values.append(("DPoP " if scheme == "dpop" else "Bearer ") + ", ".join(params))
        return values

    async def _verify(self, token: str) -> _Verified:
        now = self._clock()
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(digest)
        leeway = self._settings.leeway_seconds
        if cached is not None:
            if (cached.not_before - leeway <= now < cached.expires + leeway
                    and await self.jwks.holds(cached.kid)):
                return cached
            self._verified.pop(digest, None)  # another request may have dropped it already
        kid = read_header(token, self._settings)["kid"]
        claims = await validate(token, self.jwks, self._settings, now=now)
        principal = build_principal(claims, self._tenants, now=now, trust=self.trust)
        verified = _Verified(float(claims.get("nbf", claims.get("iat", now))),
                             float(claims["exp"]), kid, bound_key(claims), principal)
        self._verified[digest] = verified
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return verified
