"""Kilde's own private keys (client assertion, DPoP), loaded from a PEM or JWK file.

Sits under the credential provider: HelseID knows Kilde by the public half of a key registered
for its client; the private half reaches the process as a file (a Kubernetes Secret mounted as a
volume, or a path in the demo). Nothing here generates a key silently: `generate_key` exists for
the sandbox and tests, and the gateway's production checks refuse to start without key files.
Every cryptography/PyJWT error becomes `KeyFileError`, whose message names the file's setting,
never the key material.

>>> key = generate_key(kid="test")
>>> key.alg, key.public_jwk["kty"]
('ES256', 'EC')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

__all__ = ["DPOP_TYPE", "SIGNING_ALGORITHMS", "KeyFileError", "PrivateKey", "generate_key",
           "jwk_thumbprint", "load_private_key"]

DPOP_TYPE = "dpop+jwt"  # a DPoP proof's `typ` (RFC 9449 §4.2); `dpop` re-exports it

# What HelseID accepts for client assertions and DPoP proofs; never `none`, never HMAC.
SIGNING_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512",
                                "PS256", "PS384", "PS512"})
_CURVE_ALG = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_MIN_RSA_BITS = 2048
# RFC 7638 §3.2: the required members per key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                       "OKP": ("crv", "kty", "x")}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class KeyFileError(ValueError):
    """A key file is missing, unreadable, not a private key, or of an unsupported kind."""


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a JWK, base64url without padding (`cnf.jkt`).

    Only the required public members count, so a private JWK and its public half agree.

    >>> key = generate_key()
    >>> jwk_thumbprint({**key.public_jwk, "kid": "other"}) == key.thumbprint
    True
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError(f"Cannot take the thumbprint of a key of type {kty!r}.")
    missing = [m for m in members if not isinstance(jwk.get(m), str)]
    if missing:
        raise ValueError(f"The JWK lacks the member(s) {missing!r} its thumbprint needs.")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"),
                           sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A private signing key with its algorithm and key id; `repr` never shows the key.

    `public_jwk` is what HelseID registers (and what goes into a DPoP proof's header);
    `thumbprint` is its RFC 7638 thumbprint (a DPoP-bound token's `cnf.jkt`);
    `proof_header` is the encoded protected header of this key's DPoP proofs (`typ`
    dpop+jwt, `alg`, the public `jwk` without `kid`, `use` and `alg`), made once per key
    rather than once per upstream call.
    """

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = field(repr=False)
    alg: str
    kid: str
    public_jwk: Mapping[str, str] = field(repr=False)
    thumbprint: str
    proof_header: bytes = field(init=False, repr=False, compare=False)
    # sign(data) -> the JWS signature, with the algorithm's objects built once
    _signer: Callable[[bytes], bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        jwk = {k: v for k, v in self.public_jwk.items() if k not in ("kid", "use", "alg")}
        object.__setattr__(self, "proof_header", _b64_bytes(orjson.dumps(
            {"typ": DPOP_TYPE, "jwk": jwk, "alg": self.alg})))
        object.__setattr__(self, "_signer", _signer(self.key, self.alg))

    @classmethod
    def of(cls, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, *, alg: str | None = None,
           kid: str | None = None) -> PrivateKey:
        """Wrap a cryptography key; `alg` defaults from the key (EC curve, RSA -> RS256)."""
        chosen = alg or _default_alg(key)
        _check_fits(key, chosen)
        public: dict[str, str] = (
            ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            if isinstance(key, ec.EllipticCurvePrivateKey)
            else RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
        public = {k: v for k, v in public.items() if k not in _PRIVATE_MEMBERS}
        thumbprint = jwk_thumbprint(public)
        chosen_kid = kid or thumbprint
        public.update({"kid": chosen_kid, "alg": chosen, "use": "sig"})
        return cls(key=key, alg=chosen, kid=chosen_kid, public_jwk=public, thumbprint=thumbprint)

    def public_jwks(self) -> dict[str, Any]:
        """A JWKS document holding only the public key (for registration or a fake issuer)."""
        return {"keys": [dict(self.public_jwk)]}

    def sign(self, data: bytes) -> bytes:
        """The JWS signature of `data` under `alg` (RFC 7518: ECDSA as raw r || s)."""
        return self._signer(data)

    def compact_jws(self, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        """A compact JWS (a JWT) of `claims` with `header` plus this key's `alg`, signed here
        without PyJWT's generic machinery (DPoP signs one per upstream call)."""
        return self.signed(_b64_bytes(orjson.dumps({**header, "alg": self.alg})), claims)

    def signed(self, encoded_header: bytes, claims: Mapping[str, Any]) -> str:
        """A compact JWS of `claims` under a header already encoded (base64url JSON, naming
        this key's `alg`), such as `proof_header`."""
        signing_input = encoded_header + b"." + _b64_bytes(orjson.dumps(claims))
        return (signing_input + b"." + _b64_bytes(self._signer(signing_input))).decode("ascii")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64_bytes(data: bytes) -> bytes:
    """base64url without padding (RFC 7515 §2), as bytes."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def _signer(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
            alg: str) -> Callable[[bytes], bytes]:
    """`sign(data)` for `key` under `alg`, its hash and padding objects made once."""
    digest = _HASHES[alg[2:]]()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        ecdsa = ec.ECDSA(digest)
        size = (key.curve.key_size + 7) // 8
        sign_ec = key.sign

        def sign_ecdsa(data: bytes) -> bytes:
            return raw_ecdsa_signature(sign_ec(data, ecdsa), size)

        return sign_ecdsa
    sign_rsa = key.sign
    pad: padding.AsymmetricPadding = (
        padding.PSS(padding.MGF1(digest), digest.digest_size) if alg.startswith("PS")
        else padding.PKCS1v15())

    def sign_pkcs(data: bytes) -> bytes:
        return sign_rsa(data, pad, digest)

    return sign_pkcs


def raw_ecdsa_signature(der: bytes, size: int) -> bytes:
    """A DER ECDSA signature (what cryptography gives) as JWS wants it: r || s, each `size`
    bytes big-endian (RFC 7518 §3.4). cryptography has no raw output; reading the two
    INTEGERs here costs half of `decode_dss_signature` and two `int.to_bytes`."""
    # SEQUENCE { INTEGER r, INTEGER s } with short-form lengths (P-256, P-384); a long-form
    # SEQUENCE length (P-521) goes through the library's decoder
    s_at = 4 + der[3]
    if (der[0] != 0x30 or der[1] >= 0x80 or der[2] != 0x02 or der[s_at] != 0x02
            or len(der) != 2 + der[1] or len(der) != s_at + 2 + der[s_at + 1]):
        r_int, s_int = decode_dss_signature(der)
        return r_int.to_bytes(size, "big") + s_int.to_bytes(size, "big")
    r = der[4:s_at]
    s = der[s_at + 2:]
    # a DER INTEGER carries a leading zero when its top bit is set, and drops leading zeros
    return r[-size:].rjust(size, b"\0") + s[-size:].rjust(size, b"\0")


def _default_alg(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = _CURVE_ALG.get(key.curve.name)
        if alg is None:
            raise KeyFileError(f"Elliptic curve {key.curve.name!r} is not supported.")
        return alg
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    raise KeyFileError("Only EC (P-256/384/521) and RSA private keys are supported.")


def _check_fits(key: object, alg: str) -> None:
    if alg not in SIGNING_ALGORITHMS:
        raise KeyFileError(f"Signing algorithm {alg!r} is not one of {sorted(SIGNING_ALGORITHMS)}.")
    if isinstance(key, rsa.RSAPrivateKey):
        if not alg.startswith(("RS", "PS")):
            raise KeyFileError(f"An RSA key cannot sign with {alg!r}.")
        if key.key_size < _MIN_RSA_BITS:
            raise KeyFileError(f"RSA keys need at least {_MIN_RSA_BITS} bits.")
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        if _CURVE_ALG.get(key.curve.name) != alg:
            raise KeyFileError(f"An EC key on {key.curve.name!r} cannot sign with {alg!r}.")
    else:
        raise KeyFileError("Only EC (P-256/384/521) and RSA private keys are supported.")


def load_private_key(path: str | Path, *, alg: str | None = None,
                     setting: str = "key file") -> PrivateKey:
    """The private key in `path`: PEM (PKCS#8 or traditional, unencrypted) or a JWK (JSON).

    A JWK's own `kid` and `alg` are kept unless `alg` is given; a PEM key's `kid` is its
    thumbprint. `setting` names the configuration entry in error messages.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"The {setting} cannot be read ({type(exc).__name__}).") from exc
    text = raw.strip()
    if text.startswith(b"{"):
        return _from_jwk(text, alg, setting)
    try:
        key = load_pem_private_key(text, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"The {setting} is not an unencrypted PEM private key or a private "
                           "JWK.") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyFileError(f"The {setting} holds neither an EC nor an RSA private key.")
    return _wrap(key, alg, None, setting)


def _from_jwk(text: bytes, alg: str | None, setting: str) -> PrivateKey:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KeyFileError(f"The {setting} is not valid JSON.") from exc
    if isinstance(data, dict) and isinstance(data.get("keys"), list) and len(data["keys"]) == 1:
        data = data["keys"][0]
    if not isinstance(data, dict) or "d" not in data:
        raise KeyFileError(f"The {setting} is not a private JWK (no 'd' member).")
    try:
        key = jwt.PyJWK(data).key
    except jwt.PyJWTError as exc:
        raise KeyFileError(f"The {setting} is not a usable private JWK.") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyFileError(f"The {setting} holds neither an EC nor an RSA private key.")
    declared = data.get("alg") if isinstance(data.get("alg"), str) else None
    kid = data.get("kid") if isinstance(data.get("kid"), str) and data.get("kid") else None
    return _wrap(key, alg or declared, kid, setting)


def _wrap(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, alg: str | None,
          kid: str | None, setting: str) -> PrivateKey:
    try:
        return PrivateKey.of(key, alg=alg, kid=kid)
    except KeyFileError as exc:
        raise KeyFileError(f"The {setting} cannot be used: {exc}") from exc


_CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def generate_key(*, alg: str = "ES256", kid: str | None = None) -> PrivateKey:
    """A fresh key, for the sandbox and tests only: production keys come from files."""
    if alg.startswith("ES"):
        curve = _CURVES[alg]()
        return PrivateKey.of(ec.generate_private_key(curve), alg=alg, kid=kid)
    return PrivateKey.of(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                         alg=alg, kid=kid)
