"""One persona table: the HelseID simulator's (sandbox/helseid/personas.py) is the source, and
the demo's typed view (gateway/demo/tokens.py) is derived from it, so a token the demo mints
and one the simulator issues say the same about the same persona."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from gateway.demo import PERSONAS, PRIVACY_OFFICER_PID, mint_token
from sandbox.helseid import personas as helseid

NIN = "14033841389"
NOW = 1_700_000_000
# what only the issuer adds: who issued it, for whom, when, and the token's own id
ENVELOPE = {"iss", "aud", "iat", "nbf", "exp", "jti", "client_id"}


def _claims(token: str) -> dict[str, Any]:
    claims = jwt.decode(token, options={"verify_signature": False})
    return {k: v for k, v in claims.items() if k not in ENVELOPE}


def test_the_demo_has_exactly_the_simulators_personas() -> None:
    assert list(PERSONAS) == list(helseid.PERSONAS)
    assert PRIVACY_OFFICER_PID == helseid.PRIVACY_OFFICER_PID
    for key, persona in PERSONAS.items():
        source = helseid.PERSONAS[key]
        assert (persona.kind, persona.name, persona.pid, persona.hpr, persona.description) == (
            source.kind, source.name, source.pid, source.hpr, source.description)


# every persona as issued, and every clinician under every purpose of use
CASES = [(key, None) for key in helseid.PERSONAS] + [
    (key, purpose) for key, p in helseid.PERSONAS.items() if p.kind == "clinician"
    for purpose in helseid.PURPOSES]


@pytest.mark.parametrize(("key", "purpose"), CASES)
def test_a_demo_token_carries_the_claims_the_simulator_gives_the_persona(
        key: str, purpose: str | None) -> None:
    patient = None if helseid.PERSONAS[key].kind == "privacy_officer" else NIN
    minted = mint_token(key, patient, issuer="http://x/_demo", audience="kilde", now=NOW,
                        purpose=purpose)
    assert _claims(minted) == helseid.persona_claims(key, patient, now=NOW, purpose=purpose)
