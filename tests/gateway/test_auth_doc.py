"""docs/authentication.md's example token is what Kilde accepts: signed by a trusted issuer, it
authenticates as the clinician it describes, bound to the patient its attest names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gateway.settings import DEMO_TENANTS
from policies.model import PrincipalKind, PurposeOfUse
from tests.gateway.test_auth import NOW, SETTINGS, auth, http, issuer, sign

__all__ = ["auth", "http", "issuer"]  # test_auth's fixtures: a fake HelseID key set

DOC = Path(__file__).resolve().parents[2] / "docs" / "authentication.md"


def example() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- example token[^>]*-->\s*```json\n(.*?)```\s*<!-- end of the example "
                      r"token -->", text, re.S)
    assert block, "docs/authentication.md lost its example token"
    return json.loads(block.group(1))


async def test_the_documented_token_is_accepted_as_the_clinician_it_describes(auth: Any) -> None:
    claims = example()
    attest = claims["authorization_details"][0]
    assert attest["type"] == "nhn:tillitsrammeverk:parameters"
    # the deployment's issuer and audience, and times around the test clock
    claims.update(iss=SETTINGS.issuer, aud=SETTINGS.audience, iat=int(NOW), nbf=int(NOW),
                  exp=int(NOW) + 300)
    attest["toa"] = int(NOW) - 60
    claims.pop("cnf")  # bound to a key the test does not hold; DPoP has tests of its own
    principal = await auth.authenticate("Bearer " + sign(claims))
    assert principal.kind is PrincipalKind.CLINICIAN
    assert principal.person_id == claims["helseid://claims/identity/pid"]
    assert principal.hpr_number == claims["helseid://claims/hpr/hpr_number"]
    assert principal.patients == frozenset(p["identifier"]["id"] for p in attest["patients"])
    assert principal.purpose_of_use is PurposeOfUse(attest["care_relationship"]["purpose_of_use"]["code"])
    assert principal.municipality == next(
        t.number for t in DEMO_TENANTS
        if t.orgnr == claims["helseid://claims/client/claims/orgnr_parent"])


async def test_the_documented_claims_are_the_ones_the_page_explains() -> None:
    text = DOC.read_text(encoding="utf-8")
    for claim in example():
        if claim.startswith("helseid://") or claim in ("authorization_details", "scope", "cnf"):
            assert f"`{claim}" in text, claim

