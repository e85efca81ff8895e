"""What HelseID and every HelseID-protected API check: DPoP proofs, client assertions, tokens.

Sits under the simulator's token endpoint and the fakes' token guard (`sandbox.guard`). It is
written independently of Kilde's own `connectors.credentials` (the sandbox imports nothing from
Kilde), so a mistake in how Kilde builds a proof cannot be mirrored by the check that tests it.
Modelled on NHN's sample validators: `typ`, an asymmetric `alg`, a public `jwk`, the signature,
`htm`/`htu`, `iat` within a window, `jti` never seen before, `ath`, the server nonce, and the
token's `cnf.jkt` against the proof key. Every refusal is a `RefusedError` with an OAuth error code.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import jwt

PROOF_ALGS = frozenset({"ES256", "ES384", "ES512", "RS256", "PS256"})
ASSERTION_TYP = "client-authentication+jwt"
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_NO_CLAIM_CHECKS: Any = {"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "verify_aud": False, "verify_iss": False, "require": []}


class RefusedError(Exception):
    """A credential is missing or wrong: `error` is the OAuth/DPoP error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def b64url_sha256(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode().rstrip("=")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, no whitespace."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}.get(jwk.get("kty", ""))
    if required is None or any(not isinstance(jwk.get(m), str) for m in required):
        raise RefusedError("invalid_dpop_proof", "The proof's key is not an EC or RSA public key.")
    members = json.dumps({m: jwk[m] for m in required}, separators=(",", ":"), sort_keys=True)
    return b64url_sha256(members)


def same_url(a: str, b: str) -> bool:
    """Equal after RFC 3986 normalisation, ignoring query and fragment (RFC 9449 `htu`)."""
    def norm(url: str) -> tuple[str, str, int | None, str]:
        p = urlsplit(url)
        port = p.port if p.port not in ({"http": 80, "https": 443}.get(p.scheme.lower()),) else None
        return p.scheme.lower(), (p.hostname or "").lower(), port, p.path or "/"
    try:
        return norm(a) == norm(b)
    except ValueError:
        return False


class ReplayMemory:
    """`jti`s seen within `window` seconds (bounded; the oldest go first)."""

    def __init__(self, window: float = 300.0, limit: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._window = window
        self._limit = limit

    def first_use(self, jti: str, now: float) -> bool:
        while self._seen and (next(iter(self._seen.values())) < now - self._window
                              or len(self._seen) >= self._limit):
            self._seen.popitem(last=False)
        if jti in self._seen:
            return False
        self._seen[jti] = now
        return True


def _header(token: str, error: str, what: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise RefusedError(error, f"The {what} is not a JWT.") from exc
    return header


def check_proof(proof: str | None, *, method: str, url: str, now: float, replay: ReplayMemory,
                access_token: str | None = None, nonce: str | None = None,
                max_age: float = 60.0) -> str:
    """The proof key's thumbprint when `proof` is a valid DPoP proof for this request."""
    if not proof:
        raise RefusedError("invalid_dpop_proof", "A DPoP proof is required.")
    header = _header(proof, "invalid_dpop_proof", "DPoP proof")
    if header.get("typ") != "dpop+jwt":
        raise RefusedError("invalid_dpop_proof", "The DPoP proof's typ is not dpop+jwt.")
    alg, jwk = header.get("alg"), header.get("jwk")
    if alg not in PROOF_ALGS:
        raise RefusedError("invalid_dpop_proof", "The DPoP proof's algorithm is not accepted.")
    if not isinstance(jwk, dict) or _PRIVATE & set(jwk):
        raise RefusedError("invalid_dpop_proof", "The DPoP proof must carry a public jwk only.")
    thumbprint = jwk_thumbprint(jwk)
    try:
        claims = jwt.decode(proof, jwt.PyJWK(jwk, alg).key, algorithms=[alg],
                            options=_NO_CLAIM_CHECKS)
    except jwt.PyJWTError as exc:
        raise RefusedError("invalid_dpop_proof", "The DPoP proof's signature is invalid.") from exc
    if claims.get("htm") != method or not isinstance(claims.get("htu"), str) or \
            not same_url(claims["htu"], url):
        raise RefusedError("invalid_dpop_proof", "The DPoP proof is for another request.")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or abs(now - iat) > max_age:
        raise RefusedError("invalid_dpop_proof", "The DPoP proof is too old or from the future.")
    if access_token is not None and claims.get("ath") != b64url_sha256(access_token):
        raise RefusedError("invalid_dpop_proof", "The DPoP proof is not bound to this token (ath).")
    if nonce is not None and claims.get("nonce") != nonce:
        raise RefusedError("use_dpop_nonce", "Use the server's DPoP nonce.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or not replay.first_use(jti, now):
        raise RefusedError("invalid_dpop_proof", "The DPoP proof was used before.")
    return thumbprint


def check_assertion(assertion: str | None, client_id: str, keys: Iterable[Mapping[str, Any]], *,
                    audiences: Iterable[str], now: float, replay: ReplayMemory) -> None:
    """A `private_key_jwt` client assertion signed by one of the client's registered keys."""
    if not assertion:
        raise RefusedError("invalid_client", "A client assertion is required.")
    header = _header(assertion, "invalid_client", "client assertion")
    if header.get("typ") != ASSERTION_TYP:
        raise RefusedError("invalid_client", f"The client assertion's typ must be {ASSERTION_TYP}.")
    alg = header.get("alg")
    key = next((k for k in keys if k.get("kid") == header.get("kid")), None)
    if alg not in PROOF_ALGS or key is None:
        raise RefusedError("invalid_client", "The client assertion's key is not registered.")
    try:
        claims = jwt.decode(assertion, jwt.PyJWK(dict(key), alg).key, algorithms=[alg],
                            options=_NO_CLAIM_CHECKS)
    except jwt.PyJWTError as exc:
        raise RefusedError("invalid_client", "The client assertion's signature is invalid.") from exc
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise RefusedError("invalid_client", "The client assertion's iss and sub must be the client.")
    aud = claims.get("aud")
    if not set(aud if isinstance(aud, list) else [aud]) & set(audiences):
        raise RefusedError("invalid_client", "The client assertion is for another audience.")
    exp, iat = claims.get("exp"), claims.get("iat", now)
    if not isinstance(exp, int | float) or exp <= now or exp - iat > 120:
        raise RefusedError("invalid_client", "The client assertion is expired or too long-lived.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or not replay.first_use(f"{client_id}:{jti}", now):
        raise RefusedError("invalid_client", "The client assertion was used before.")


def check_token(token: str, verify: Any, *, issuer: str, audience: str | None,
                now: float) -> dict[str, Any]:
    """The claims of an access token from `issuer` for `audience` (None: any), unexpired."""
    header = _header(token, "invalid_token", "access token")
    if str(header.get("typ", "jwt")).lower() not in ("jwt", "at+jwt", "application/at+jwt"):
        raise RefusedError("invalid_token", "This is not an access token.")
    try:
        claims: dict[str, Any] = verify(token, options=_NO_CLAIM_CHECKS)
    except jwt.PyJWTError as exc:
        raise RefusedError("invalid_token", "The token's signature or key is not valid.") from exc
    if claims.get("iss") != issuer:
        raise RefusedError("invalid_token", "The token is from another issuer.")
    aud = claims.get("aud")
    if audience is not None and aud != audience and aud != [audience]:
        raise RefusedError("invalid_token", "The token is for another audience.")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        raise RefusedError("invalid_token", "The token has expired.")
    return claims
