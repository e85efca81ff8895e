"""The HelseID simulator: the sandbox's stand-in for NHN's HelseID STS.

Sits beside the fake upstreams (imports nothing from Kilde). It issues the personas' tokens
for Kilde, exchanges them (RFC 8693) for DPoP-bound tokens per upstream resource, verifies
`private_key_jwt` client assertions and DPoP proofs, rotates its keys on request and counts
what it was asked. `sandbox.guard` makes every fake upstream demand such a token.

    from sandbox.helseid import HelseId
    helseid = HelseId()
    token = helseid.persona_token("legevakt-lege", "14033841389",
                                  issuer="http://127.0.0.1:8000/helseid")
"""

from __future__ import annotations

from sandbox.helseid.issuer import (
    DEMO_CLIENT_ID,
    KILDE_AUDIENCE,
    KILDE_CLIENT_ID,
    RESOURCES,
    Client,
    HelseId,
    jwks_url,
    kilde_environment,
    kilde_settings,
)
from sandbox.helseid.keys import key_file
from sandbox.helseid.personas import PERSONAS, Persona

__all__ = ["DEMO_CLIENT_ID", "KILDE_AUDIENCE", "KILDE_CLIENT_ID", "PERSONAS", "RESOURCES",
           "Client", "HelseId", "Persona", "jwks_url", "key_file",
           "kilde_environment", "kilde_settings"]
