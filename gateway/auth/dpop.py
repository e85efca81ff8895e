"""DPoP proof verification (RFC 9449 §4.3, §7): the caller proves it holds the token's key.

Sits in `Authenticator.authenticate` after the access token is verified: a request with
`Authorization: DPoP <token>` carries one `DPoP` header, a JWT the client signed for this very
request with the private key whose public half is in the proof's `jwk` header and whose RFC 7638
thumbprint the token names in `cnf.jkt`. Checks run cheapest first, so a wrong or hostile proof
costs no signature check: size and shape; header `typ` `dpop+jwt`, an asymmetric `alg` from
HelseID's list (`connectors.credentials.SIGNING_ALGORITHMS`: ES/RS/PS 256-512, never `none` or
HMAC), a public `jwk` of the type the `alg` needs (no private or symmetric members); its
thumbprint against `cnf.jkt`; the signature; `htm`, `htu` (normalised: no query or fragment,
lower-case scheme and host, default port dropped), `iat` within `KILDE_AUTH__DPOP_MAX_AGE_SECONDS`
(and at most `KILDE_AUTH__LEEWAY_SECONDS` ahead), `ath` = the token's hash, the server nonce
when required; last, the `jti` is recorded and a replay refused. Every jwt error is translated
to `DpopProofError`; no message carries the proof, the token or a URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from connectors.credentials import DPOP_TYPE, SIGNING_ALGORITHMS, access_token_hash, htu_of
from connectors.credentials import jwk_thumbprint as _thumbprint
from gateway.auth.errors import DpopNonceError, DpopProofError
from gateway.auth.nonce import NonceIssuer
from gateway.auth.replay import ReplayStore

ALGORITHMS = tuple(sorted(SIGNING_ALGORITHMS))  # the `algs` of the WWW-Authenticate challenge
MAX_PROOF_BYTES = 8192
_MAX_JTI = 256
_MAX_HTU = 4096
# alg -> (kty, crv) the proof's key must have; a mismatch is refused, never coerced
_KEY_TYPES = {"ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
              **{f"{f}{n}": ("RSA", None) for f in ("RS", "PS") for n in (256, 384, 512)}}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")  # base64url without padding (RFC 7515 §2)
_KEY_CACHE_SIZE = 1024


def _invalid(what: str) -> DpopProofError:
    return DpopProofError(f"The DPoP proof is invalid: {what}.")


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64json(segment: str) -> Any:
    try:
        return json.loads(_b64(segment))
    except (ValueError, binascii.Error, RecursionError):
        raise _invalid("it is not a well-formed JWT") from None


def _segments(proof: str) -> list[str]:
    if len(proof) > MAX_PROOF_BYTES:
        raise _invalid("it is too large")
    parts = proof.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise _invalid("it is not a well-formed JWT")
    return parts


def read_proof_header(proof: str) -> tuple[str, dict[str, Any]]:
    """The proof's `alg` and public `jwk` after the shape and header checks (no signature)."""
    header = _b64json(_segments(proof)[0])
    if not isinstance(header, dict):
        raise _invalid("it is not a well-formed JWT")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() != DPOP_TYPE:
        raise _invalid(f"its typ must be {DPOP_TYPE!r}")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _KEY_TYPES:
        raise _invalid(f"its alg must be one of {' '.join(ALGORITHMS)}")
    if "crit" in header:
        raise _invalid("it requires header extensions that are not supported")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise _invalid("its header has no jwk")
    if jwk.get("kty") == "oct" or _PRIVATE_MEMBERS.intersection(jwk):
        raise _invalid("its jwk must be a public key only")
    kty, crv = _KEY_TYPES[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise _invalid("its jwk does not fit its alg")
    return alg, jwk


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of the proof's key; DpopProofError when it cannot be taken."""
    try:
        return _thumbprint(jwk)
    except ValueError:
        raise _invalid("its jwk lacks members a key of its type needs") from None


@dataclass(frozen=True, slots=True)
class ProofRules:
    """The window and clock leeway proofs are judged by (from `AuthSettings`)."""

    max_age_seconds: float = 60.0
    leeway_seconds: float = 30.0

    @property
    def replay_window(self) -> float:
        # a proof accepted at t with iat <= t + leeway stays acceptable until iat + max_age
        return self.max_age_seconds + self.leeway_seconds


def check_proof_claims(claims: Mapping[str, Any], *, method: str, url: str, token: str,
                       now: float, rules: ProofRules) -> str:
    """`htm`, `htu`, `iat`, `ath` and `jti` of verified proof claims (pure); the `jti`."""
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI:
        raise _invalid("it has no usable jti")
    if claims.get("htm") != method:
        raise _invalid("htm is not this request's method")
    htu = claims.get("htu")
    if not isinstance(htu, str) or len(htu) > _MAX_HTU:
        raise _invalid("it has no usable htu")
    try:
        same_url = htu_of(htu) == htu_of(url) and htu.lower().startswith(("https:", "http:"))
    except ValueError:
        same_url = False
    if not same_url:
        raise _invalid("htu is not this request's URL")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise _invalid("it has no iat")
    if iat > now + rules.leeway_seconds:
        raise _invalid("it was issued in the future")
    if iat < now - rules.max_age_seconds:
        raise _invalid("it is too old; sign a new proof for every request")
    ath = claims.get("ath")
    if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(token)):
        raise _invalid("ath is not the hash of the access token sent with it")
    return jti


def _verified_claims(proof: str, key: jwt.PyJWK) -> dict[str, Any]:
    """The claims of `proof` once its signature verifies with `key` (alg bound to the key).

    PyJWT's algorithm does the cryptography; the segments were already checked to be
    base64url (`_SEGMENT`), which spares PyJWT's per-character re-check, a third of a proof's
    CPU (bench/dpop_bench.py)."""
    head, body, signature = _segments(proof)
    algorithm = key.Algorithm
    if algorithm.check_key_length(key.key):
        raise _invalid("its key is too weak")
    try:
        valid = algorithm.verify(f"{head}.{body}".encode(), key.key, _b64(signature))
    except (ValueError, binascii.Error, jwt.PyJWTError):
        valid = False
    if not valid:
        raise _invalid("its signature does not verify")
    claims = _b64json(body)
    if not isinstance(claims, dict):
        raise _invalid("its claims are not a JSON object")
    return claims


class DpopVerifier:
    """Checks one proof per request; shared by all requests (holds the replay store).

    >>> verifier = DpopVerifier(ProofRules(), ReplayStore(90))          # doctest: +SKIP
    >>> await verifier.verify(proof, method="POST", url=url, token=token,
    ...                       jkt=cnf_jkt, now=time.time())              # doctest: +SKIP
    """

    def __init__(self, rules: ProofRules, replay: ReplayStore,
                 nonces: NonceIssuer | None = None) -> None:
        self.rules = rules
        self.replay = replay
        self.nonces = nonces
        self._keys: OrderedDict[tuple[str, str], jwt.PyJWK] = OrderedDict()

    def _key(self, alg: str, jwk: dict[str, Any], jkt: str) -> jwt.PyJWK:
        cached = self._keys.get((alg, jkt))
        if cached is not None:
            self._keys.move_to_end((alg, jkt))
            return cached
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError:
            raise _invalid("its jwk is not a usable public key") from None
        self._keys[(alg, jkt)] = key
        if len(self._keys) > _KEY_CACHE_SIZE:
            self._keys.popitem(last=False)
        return key

    async def verify(self, proof: str, *, method: str, url: str, token: str, jkt: str,
                     now: float) -> None:
        """Return when `proof` is a fresh, first-seen proof for this request by the key `jkt`
        names; raise DpopProofError (or DpopNonceError) saying what is wrong otherwise."""
        alg, jwk = read_proof_header(proof)
        proof_jkt = thumbprint(jwk)
        if not hmac.compare_digest(proof_jkt, jkt):
            raise _invalid("its key is not the one the access token is bound to (cnf.jkt)")
        claims = _verified_claims(proof, self._key(alg, jwk, proof_jkt))
        jti = check_proof_claims(claims, method=method, url=url, token=token, now=now,
                                 rules=self.rules)
        if self.nonces is not None and not self.nonces.valid(claims.get("nonce")):
            raise DpopNonceError("The DPoP proof must carry the server's nonce; sign it again "
                                 "with the one in the DPoP-Nonce header.", self.nonces.current())
        digest = hashlib.sha256(f"{proof_jkt}\x00{jti}".encode()).hexdigest()
        if not await self.replay.first_use(digest):
            raise _invalid("it has been used before; sign a new proof for every request")
