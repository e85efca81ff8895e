"""The CDS client's own JWT (CDS Hooks 2.0 "Trusting CDS Clients"), where configured.

Sits in front of a CDS service call, before the user's token is looked at: when
`KILDE_CDS__CLIENTS` names trusted EPJs (`iss=JWKS URL`, comma separated), every call must carry
the EPJ's signed JWT in the `X-CDS-Client-JWT` header (the `Authorization` header carries the
user's HelseID token, as for /graphql). Checked: signature by the key `kid` names in the JWKS
configured for that `iss` (a `jku` in the token must be that same URL: keys are never fetched
from where a token says), `aud` is this service's URL, `exp` and `iat` within the leeway, a
lifetime of at most five minutes, and `jti` never seen before (remembered until the token
expires, in Redis when configured so every replica knows; locally as well, so a Redis outage
never lets a replay through twice on one replica).

>>> ClientJwtVerifier.parse_clients("https://epj.example=https://epj.example/jwks.json")
{'https://epj.example': 'https://epj.example/jwks.json'}
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt

from connectors.cachestore import CacheStore, CacheUnavailableError
from connectors.crypto import CacheKeys
from gateway.auth.errors import AuthError
from gateway.auth.jwks import JwksCache

log = logging.getLogger("kilde.cds")
HEADER = "x-cds-client-jwt"
# CDS Hooks requires ES384 and RS384; the others are what HelseID's world uses.
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS384": ("RSA", None), "ES384": ("EC", "P-384"), "RS256": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "ES256": ("EC", "P-256"),
}
MAX_LIFETIME = 300.0
MAX_TOKEN_BYTES = 8192
MAX_SEEN = 100_000


class ClientJwtVerifier:
    """Verifies CDS client JWTs for the configured EPJs; see the module docstring.

    >>> verifier = ClientJwtVerifier(clients, http, store, keys)    # doctest: +SKIP
    >>> await verifier.verify(request.headers.get(HEADER), aud=url)  # doctest: +SKIP
    """

    def __init__(self, clients: Mapping[str, str], http: httpx.AsyncClient,
                 store: CacheStore | None, keys: CacheKeys, *, leeway: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._jwks = {iss: JwksCache(url, http, min_refresh_seconds=30.0)
                      for iss, url in clients.items()}
        self._jwks_urls = dict(clients)
        self._store = store
        self._keys = keys
        self._leeway = leeway
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # jti key -> expiry

    @property
    def required(self) -> bool:
        return bool(self._jwks)

    @staticmethod
    def parse_clients(raw: str) -> dict[str, str]:
        """`iss=JWKS URL` pairs, comma separated; ValueError names a bad entry's position."""
        clients: dict[str, str] = {}
        for i, part in enumerate(filter(None, (p.strip() for p in raw.split(","))), 1):
            iss, sep, url = part.partition("=")
            if not sep or not iss.strip() or not url.strip().startswith(("https://", "http://")):
                raise ValueError(f"KILDE_CDS__CLIENTS entry {i} must look like "
                                 "'ISS=https://…/jwks.json'.")
            clients[iss.strip()] = url.strip()
        return clients

    async def verify(self, token: str | None, *, aud: str) -> str:
        """The verified client's `iss`; AuthError (401) otherwise."""
        if not token:
            raise AuthError(f"This CDS service needs the EPJ's signed JWT in {HEADER}.")
        header, claims = _unverified(token)
        iss = claims.get("iss")
        jwks = self._jwks.get(iss) if isinstance(iss, str) else None
        if jwks is None:
            raise AuthError("The CDS client is not one this Kilde trusts.")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS or not isinstance(kid, str) or not kid:
            raise AuthError("The CDS client JWT must name its key (kid) and use "
                            f"one of {sorted(ALGORITHMS)}.")
        if "jku" in header and header["jku"] != self._jwks_urls[iss]:
            raise AuthError("The CDS client JWT names a key set other than the configured one.")
        key = await jwks.key(kid)
        kty, crv = ALGORITHMS[alg]
        if key.key_type != kty or (crv is not None and _crv(key) != crv):
            raise AuthError("The CDS client JWT's algorithm does not match its key.")
        try:
            verified = jwt.decode(token, key=key.key, algorithms=[alg], audience=aud, issuer=iss,
                                  leeway=self._leeway,
                                  options={"require": ["exp", "iat", "jti", "aud", "iss"]})
        except jwt.InvalidAudienceError as exc:
            raise AuthError("The CDS client JWT is meant for another service.") from exc
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("The CDS client JWT has expired.") from exc
        except jwt.PyJWTError as exc:
            raise AuthError("The CDS client JWT could not be verified.") from exc
        now = self._clock()
        exp, iat = float(verified["exp"]), float(verified["iat"])
        if iat > now + self._leeway or exp - iat > MAX_LIFETIME:
            raise AuthError("The CDS client JWT's lifetime is not accepted (at most 5 min).")
        await self._first_use(iss, str(verified["jti"]), exp)
        return iss

    async def _first_use(self, iss: str, jti: str, exp: float) -> None:
        key = "kilde:cds-jti:" + self._keys.key_for("cds-jti", iss, jti)
        now = self._clock()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        if key in self._seen:
            raise AuthError("The CDS client JWT was used before (jti replay).")
        self._seen[key] = exp + self._leeway
        while len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)
        if self._store is None or not self._store.shared:
            return
        try:
            first = await self._store.add(key, b"1", max(1.0, exp + self._leeway - now))
        except CacheUnavailableError:
            log.warning("jti replay store unavailable; replays are caught on this replica only")
            return
        if not first:
            raise AuthError("The CDS client JWT was used before (jti replay).")


def _crv(key: jwt.PyJWK) -> str | None:
    curve = getattr(key.key, "curve", None)
    return {"secp256r1": "P-256", "secp384r1": "P-384"}.get(getattr(curve, "name", ""))


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise AuthError("The CDS client JWT is not a well-formed JWT.")
    try:
        parts = [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
                 for p in token.split(".")[:2]]
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise AuthError("The CDS client JWT is not a well-formed JWT.") from exc
    if not all(isinstance(p, dict) for p in parts):
        raise AuthError("The CDS client JWT is not a well-formed JWT.")
    return parts[0], parts[1]
