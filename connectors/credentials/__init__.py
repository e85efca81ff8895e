"""Kilde's credentials towards upstreams: its keys, DPoP proofs, and HelseID tokens per source.

Sits under the connectors' request layer (`connectors.fhir`), and is public so that an external
connector authenticates exactly as the built-ins do. HelseID protects every national service
and (in the Felles kommunal journal plan) the municipal stores: each wants an access token for
its own audience (RFC 8707), bound to Kilde's DPoP key (RFC 9449), obtained by token exchange
(RFC 8693) from the caller's token, with Kilde authenticating as a HelseID client by
`private_key_jwt`.

    from connectors.credentials import dpop_proof, jwk_thumbprint, load_private_key

    key = load_private_key("/var/run/secrets/kilde/dpop.jwk", setting="KILDE_HELSEID__DPOP_KEY")
    proof = dpop_proof(key, "GET", "https://kj.example/api/status", access_token=token)
"""

from __future__ import annotations

from connectors.credentials.dpop import DPOP_TYPE, access_token_hash, dpop_proof, htu_of
from connectors.credentials.keys import (
    SIGNING_ALGORITHMS,
    KeyFileError,
    PrivateKey,
    generate_key,
    jwk_thumbprint,
    load_private_key,
)

__all__ = [
    "DPOP_TYPE",
    "SIGNING_ALGORITHMS",
    "KeyFileError",
    "PrivateKey",
    "access_token_hash",
    "dpop_proof",
    "generate_key",
    "htu_of",
    "jwk_thumbprint",
    "load_private_key",
]
