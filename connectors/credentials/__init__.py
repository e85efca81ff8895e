"""Kilde's credentials towards upstreams: its keys, DPoP proofs, and HelseID tokens per source.

Sits under the connectors' request layer (`connectors.fhir`), and is public so that an external
connector authenticates exactly as the built-ins do. HelseID protects every national service
and (in the Felles kommunal journal plan) the municipal stores: each wants an access token for
its own audience (RFC 8707), bound to Kilde's DPoP key (RFC 9449), obtained by token exchange
(RFC 8693) from the caller's token, with Kilde authenticating as a HelseID client by
`private_key_jwt`.

    client = HelseIdClient(http, issuer="https://helseid-sts.nhn.no", client_id="kilde",
                           client_key=load_private_key("/var/run/secrets/kilde/client.jwk"),
                           dpop_key=load_private_key("/var/run/secrets/kilde/dpop.jwk"))
    provider = TokenProvider(client)                       # one per process (the lifespan)
    credentials = provider.for_caller(caller_token)        # one per request
    body = await request_json(http, "kjernejournal", "GET", url, timeout=2.0,
                              auth=credentials.to(Audience("nhn:kjernejournal", "nhn:kj/api")))
"""

from __future__ import annotations

from connectors.credentials.dpop import DPOP_TYPE, access_token_hash, dpop_proof, htu_of
from connectors.credentials.helseid import (
    ASSERTION_TYPE,
    CLIENT_ASSERTION_TYPE,
    TOKEN_EXCHANGE,
    HelseIdClient,
    IssuedToken,
    TokenRequestError,
)
from connectors.credentials.keys import (
    SIGNING_ALGORITHMS,
    KeyFileError,
    PrivateKey,
    generate_key,
    jwk_thumbprint,
    load_private_key,
)
from connectors.credentials.provider import TokenProvider
from connectors.credentials.upstream import (
    GRANTS,
    NO_CREDENTIALS,
    Audience,
    Credentials,
    UpstreamAnswer,
    UpstreamAuth,
    challenge_error,
)

__all__ = [
    "ASSERTION_TYPE",
    "CLIENT_ASSERTION_TYPE",
    "DPOP_TYPE",
    "GRANTS",
    "NO_CREDENTIALS",
    "SIGNING_ALGORITHMS",
    "TOKEN_EXCHANGE",
    "Audience",
    "Credentials",
    "HelseIdClient",
    "IssuedToken",
    "KeyFileError",
    "PrivateKey",
    "TokenProvider",
    "TokenRequestError",
    "UpstreamAnswer",
    "UpstreamAuth",
    "access_token_hash",
    "challenge_error",
    "dpop_proof",
    "generate_key",
    "htu_of",
    "jwk_thumbprint",
    "load_private_key",
]
