"""The simulator's signing keys and the sandbox's published demo keys for Kilde itself.

Sits inside the HelseID simulator. `KeyRing` holds the issuer's keys: the first is the embedded
`keys/issuer.json` (so a token minted in one process verifies in another), `rotate()` adds a
fresh key and signs with it from then on, `remove(kid)` unpublishes one (tokens it signed stop
verifying at the next JWKS refresh). `keys/kilde-client.json` and `keys/kilde-dpop.json` are
Kilde's own client-assertion and DPoP keys *for the sandbox only*: the registered client
`kilde` knows the first one's public half. Everything here is public, so none of it may ever
sign anything in production.

>>> ring = KeyRing()
>>> ring.signing_kid
'kilde-demo-1'
"""

from __future__ import annotations

import json
import secrets
from importlib.resources import files
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def key_file(name: str) -> Path:
    """The path of an embedded key file (`issuer.json`, `kilde-client.json`, `kilde-dpop.json`)."""
    return Path(str(files("sandbox.helseid").joinpath("keys", name)))


def load_jwk(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(key_file(name).read_text())
    return data


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in _PRIVATE}


class KeyRing:
    """The issuer's private keys by kid; one of them signs, all are published."""

    def __init__(self) -> None:
        first = load_jwk("issuer.json")
        self._keys: dict[str, dict[str, Any]] = {}
        self._private: dict[str, Any] = {}
        self._add(first)
        self.signing_kid: str = first["kid"]

    def _add(self, jwk: dict[str, Any]) -> None:
        self._keys[jwk["kid"]] = jwk
        self._private[jwk["kid"]] = jwt.PyJWK(jwk).key

    def rotate(self) -> str:
        """Add a fresh RS256 key and sign with it from now on; returns its kid."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"sandbox-helseid-{secrets.token_hex(4)}"
        self._add({**RSAAlgorithm.to_jwk(private, as_dict=True), "kid": kid, "alg": "RS256",
                   "use": "sig"})
        self.signing_kid = kid
        return kid

    def remove(self, kid: str) -> bool:
        """Unpublish `kid` (never the signing key: rotate first). False if unknown."""
        if kid not in self._keys:
            return False
        if kid == self.signing_kid:
            raise ValueError("The signing key cannot be removed; rotate first.")
        del self._keys[kid], self._private[kid]
        return True

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(k) for k in self._keys.values()]}

    def kids(self) -> list[str]:
        return list(self._keys)

    def sign(self, claims: dict[str, Any], *, typ: str = "at+jwt") -> str:
        return jwt.encode(claims, self._private[self.signing_kid], algorithm="RS256",
                          headers={"kid": self.signing_kid, "typ": typ})

    def verify(self, token: str, **options: Any) -> dict[str, Any]:
        """Claims of `token` signed by a published key (PyJWT errors pass through)."""
        kid = jwt.get_unverified_header(token).get("kid")
        private = self._private.get(kid) if isinstance(kid, str) else None
        if private is None:
            raise jwt.InvalidKeyError("unknown kid")
        claims: dict[str, Any] = jwt.decode(token, private.public_key(),
                                            algorithms=["RS256"], **options)
        return claims
