"""Access-token validation: a HelseID-style JWT in, its verified claims out (or AuthError).

Sits first in `gateway.auth`: `Authenticator` calls `validate` on the bearer token, then reads
the claims and the attest into a Principal. Checks run cheapest first (size, shape, header)
so that garbage never costs a key lookup; PyJWT verifies the signature with the issuer's JWK,
and the time and audience rules are checked here against an explicit `now`. Every jwt error is
translated to AuthError; no message carries the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

import jwt
from jwt.types import Options

from connectors.identifiers import is_valid_nin
from gateway.auth.errors import AuthError
from gateway.auth.jwks import KEY_TYPES, JwksCache
from gateway.settings import AuthSettings

PID = "helseid://claims/identity/pid"
HPR_NUMBER = "helseid://claims/hpr/hpr_number"
HPR_DETAILS = "helseid://claims/hpr/hpr_details"
SECURITY_LEVEL = "helseid://claims/identity/security_level"
ORGNR_PARENT = "helseid://claims/client/claims/orgnr_parent"
ORGNR_CHILD = "helseid://claims/client/claims/orgnr_child"

# Never configurable beyond this: no `none`, no HMAC (a public key must not become a secret).
SUPPORTED_ALGORITHMS = frozenset(KEY_TYPES)
# RFC 9068 access tokens, or plain `jwt` (the Tillitsrammeverk profile asks APIs to accept it);
# anything else (DPoP proofs, client assertions, ID tokens typed otherwise) is another token.
ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
_MAX_KID_LENGTH = 256

_SIGNATURE_OPTIONS: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
    "enforce_minimum_key_length": True,
}


def read_header(token: str, settings: AuthSettings) -> dict[str, Any]:
    """The token's JOSE header after the size, shape and algorithm checks (no signature yet)."""
    if len(token.encode("utf-8", "replace")) > settings.max_token_bytes:
        raise AuthError("The token is too large.")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise AuthError("The token is not a well-formed JWT.")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise AuthError("The token is not a well-formed JWT.") from exc
    if not isinstance(header, dict):
        raise AuthError("The token is not a well-formed JWT.")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed_algorithms(settings):
        raise AuthError("The token's signing algorithm is not accepted.")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        raise AuthError("The token's type is not an access token.")
    if "crit" in header:
        raise AuthError("The token requires header extensions that are not supported.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
        raise AuthError("The token does not name its signing key.")
    return header


def allowed_algorithms(settings: AuthSettings) -> frozenset[str]:
    return SUPPORTED_ALGORITHMS.intersection(settings.algorithms)


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(f"The token has no valid {name!r} claim.")
    return float(value)


def check_claims(claims: Mapping[str, Any], settings: AuthSettings, *, now: float) -> None:
    """Issuer, audience, lifetime and required claims of already-verified claims (pure)."""
    if claims.get("iss") != settings.issuer:
        raise AuthError("The token's issuer is not accepted.")
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if isinstance(aud, list):
        raise AuthError("The token must have exactly one audience.")
    if aud != settings.audience:
        raise AuthError("The token's audience is not accepted.")
    leeway = settings.leeway_seconds
    exp, nbf, iat = _number(claims, "exp"), _number(claims, "nbf"), _number(claims, "iat")
    if now >= exp + leeway:
        raise AuthError("The token has expired.")
    if nbf > now + leeway:
        raise AuthError("The token is not valid yet.")
    if iat > now + leeway:
        raise AuthError("The token was issued in the future.")
    pid = claims.get(PID)  # absent in a machine's (client-credentials) token
    if pid is not None and (not isinstance(pid, str) or not is_valid_nin(pid)):
        raise AuthError("The token has no valid person identifier (pid) claim.")
    if not scopes_of(claims):
        raise AuthError("The token has no scope.")
    client_id = claims.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise AuthError("The token has no client_id claim.")
    bound_key(claims)


_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url SHA-256, no padding


def bound_key(claims: Mapping[str, Any]) -> str | None:
    """The RFC 7638 thumbprint the token is bound to (`cnf.jkt`, RFC 9449 §6), None if unbound.

    A `cnf` Kilde cannot check (mTLS `x5t#S256`, say) is refused: accepting it unchecked would
    turn a sender-constrained token back into a bearer token."""
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
    if not isinstance(jkt, str) or not _THUMBPRINT.fullmatch(jkt):
        raise AuthError("The token is bound to a key in a way Kilde cannot check (cnf has no "
                        "valid jkt).")
    return jkt


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """`scope` as a set: space separated (RFC 9068) or a list (as HelseID emits it)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        return frozenset(s for s in scope if s)
    return frozenset()


async def validate(
    token: str, jwks: JwksCache, settings: AuthSettings, *, now: float
) -> dict[str, Any]:
    """The verified claims of `token`, or AuthError saying (without the token) what is wrong.

    >>> claims = await validate(token, jwks, settings, now=time.time())   # doctest: +SKIP
    >>> claims["helseid://claims/identity/pid"]                           # doctest: +SKIP
    """
    header = read_header(token, settings)
    key = await jwks.key(header["kid"], alg=header["alg"])
    try:
        claims = jwt.decode(token, key=key, algorithms=[header["alg"]], options=_SIGNATURE_OPTIONS)
    except jwt.InvalidSignatureError as exc:
        raise AuthError("The token's signature is invalid.") from exc
    except (jwt.InvalidAlgorithmError, jwt.InvalidKeyError) as exc:
        raise AuthError("The token's algorithm does not match its signing key.") from exc
    except jwt.DecodeError as exc:
        raise AuthError("The token is not a well-formed JWT.") from exc
    except jwt.PyJWTError as exc:
        raise AuthError("The token could not be verified.") from exc
    check_claims(claims, settings, now=now)
    return claims
