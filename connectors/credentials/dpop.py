"""DPoP proofs (RFC 9449): the signed "I hold this key" that travels with every token use.

Sits under the credential provider and the request layer: Kilde signs one proof per HTTP
request, at HelseID's token endpoint (no `ath`) and at every upstream (`ath` = the hash of the
access token sent with it). Upstreams may demand a server nonce; the caller retries once with
the nonce they sent (`DPoP-Nonce`). Public, so external connectors and the gateway's own DPoP
verifier share the same thumbprint, hash and `htu` rules.

>>> from connectors.credentials.keys import generate_key
>>> key = generate_key()
>>> proof = dpop_proof(key, "GET", "https://kj.example/api/status?x=1", access_token="t")
>>> proof.count(".")
2
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# DPOP_TYPE and jwk_thumbprint are re-exported: a DPoP user needs them (`typ`, `cnf.jkt`);
# their owner is `keys`, which encodes each key's proof header once.
from connectors.credentials.keys import DPOP_TYPE, PrivateKey, jwk_thumbprint

__all__ = ["DPOP_TYPE", "access_token_hash", "dpop_proof", "htu_of", "jwk_thumbprint"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# a host name or IPv4 address with an optional port of up to 5 digits (checked <= 65535 by
# `urlsplit`'s `port` otherwise): no user info, no IPv6 literal
_SIMPLE_NETLOC = re.compile(r"([A-Za-z0-9.-]+)(?::([0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}"
                            r"|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?")


def access_token_hash(access_token: str) -> str:
    """The `ath` claim: base64url(SHA-256(ASCII token)) without padding (RFC 9449 §4.2).

    >>> access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
    'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo'
    """
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def htu_of(url: str) -> str:
    """The `htu` for `url`: no query or fragment, scheme and host lower-case, default port
    dropped (RFC 9449 §4.2 and §4.3, with RFC 3986 §6 normalisation), so that a proof made for
    a URL and a server checking the URL it received compare equal.

    >>> htu_of("HTTPS://Kj.Example:443/api/Status?nin=1#x")
    'https://kj.example/api/Status'
    """
    # the query and fragment never count, so the normalisation is remembered per URL without
    # them (a connector's few endpoints; an identifier in a query is never kept)
    end = len(url)
    for mark in ("?", "#"):
        at = url.find(mark, 0, end)
        if at >= 0:
            end = at
    return _htu_of_base(url[:end])


@functools.lru_cache(maxsize=256)
def _htu_of_base(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    simple = _SIMPLE_NETLOC.fullmatch(parts.netloc)
    if simple is not None and scheme in _DEFAULT_PORTS:  # the usual URL, without the slow parts
        host, port_text = simple.group(1).lower(), simple.group(2)
        if port_text is not None and int(port_text) != _DEFAULT_PORTS[scheme]:
            host = f"{host}:{int(port_text)}"
        return f"{scheme}://{host}{parts.path or '/'}"
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def dpop_proof(
    key: PrivateKey,
    method: str,
    url: str,
    *,
    access_token: str | None = None,
    ath: str | None = None,
    nonce: str | None = None,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """A DPoP proof JWT for one request: header `typ` dpop+jwt, `alg`, the public `jwk`;
    claims `jti` (random, unique), `htm`, `htu`, `iat`, and `ath` when an access token goes
    with the request, `nonce` when the server asked for one. `ath` is `access_token`'s hash
    when the caller has it already (`IssuedToken.ath`: one SHA-256 per token, not per call).

    >>> import jwt
    >>> from connectors.credentials.keys import generate_key
    >>> header = jwt.get_unverified_header(dpop_proof(generate_key(), "POST", "https://h.example/t"))
    >>> header["typ"], header["jwk"]["kty"], "d" in header["jwk"]
    ('dpop+jwt', 'EC', False)
    """
    claims: dict[str, Any] = {
        "jti": os.urandom(16).hex(),  # 128 random bits, as `secrets.token_hex(16)`
        "htm": method.upper(),
        "htu": htu_of(url),
        "iat": int(time.time() if now is None else now),
    }
    if access_token is not None:
        claims["ath"] = ath or access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    if extra_claims:
        claims.update(extra_claims)
    return key.signed(key.proof_header, claims)
