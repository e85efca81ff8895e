"""Claims that hold, over real HTTP: tokens that lean on the attest for who the caller is.

Each case starts from a good demo token (signed by the issuer the e2e gateway trusts) and
removes or changes one claim HelseID would vouch for, leaving the attest as it was: the
gateway answers 401 with a reason and asks no upstream. A machine's token (no person) is a
caller of its own kind: refused at /graphql, accepted at /events with the events scope.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.demo import mint_event_token
from sandbox.world import by_tag
from tests.e2e.client import Client
from tests.e2e.conftest import Stack
from tests.e2e.test_auth_http import QUERY, _claims, _sign

pytestmark = pytest.mark.slow

HLR = by_tag("legevakt-hlr")
HPR = "helseid://claims/hpr/hpr_number"
PARENT = "helseid://claims/client/claims/orgnr_parent"
CHILD = "helseid://claims/client/claims/orgnr_child"
LEVEL = "helseid://claims/identity/security_level"


def _without(claims: dict[str, Any], *names: str, **changes: Any) -> dict[str, Any]:
    return {**{k: v for k, v in claims.items() if k not in names}, **changes}


def _trondheim_without_orgnr(stack: Stack) -> dict[str, Any]:
    """A Trondheim physician's token without `orgnr_parent`, carrying an Oslo attest."""
    oslo = _claims(stack)  # the Oslo legevakt-lege's token, attest and all
    return _without(oslo, PARENT, CHILD)


CASES = {
    "no-hpr-number-but-attest-says-LE": (
        lambda s: _without(_claims(s), HPR), "HPR number"),
    "legal-entity-only-in-attest": (_trondheim_without_orgnr, "orgnr_parent"),
    "other-legal-entity-than-attest": (
        lambda s: _without(_claims(s), **{PARENT: "930000000"}), "another legal entity"),
    "security-level-3": (lambda s: _without(_claims(s), **{LEVEL: "3"}), "security level 3"),
    "no-security-level": (lambda s: _without(_claims(s), LEVEL), "security level"),
    "dpop-bound-token-as-bearer": (
        lambda s: _without(_claims(s), cnf={"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
        "bound to a DPoP key"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_claims_the_token_does_not_hold_are_401_and_reach_no_upstream(
        gw: Client, stack: Stack, case: str) -> None:
    make, reason = CASES[case]
    r = gw.post(QUERY, f"Bearer {_sign(make(stack))}", {"nin": HLR.nin})
    assert r.status_code == 401, r.text[:300]
    error = r.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert reason in error["message"]
    assert sum(gw.requests().values()) == 0
    assert HLR.nin not in r.text


def test_the_legevakt_token_with_every_claim_in_place_still_sees_hlr_minus(gw: Client,
                                                                           stack: Stack) -> None:
    body = gw.query(QUERY, _sign(_claims(stack)), {"nin": HLR.nin})
    assert body["data"]["patient"]["treatmentLimitations"]


def test_a_machine_token_is_refused_at_graphql(gw: Client, stack: Stack) -> None:
    token = mint_event_token(issuer=stack.settings.auth.issuer,
                             audience=stack.settings.auth.audience)
    r = gw.post(QUERY, f"Bearer {token}", {"nin": HLR.nin})
    assert r.status_code == 403, r.text[:300]
    assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert sum(gw.requests().values()) == 0


def test_a_machine_token_posts_events_only_with_the_events_scope(stack: Stack) -> None:
    url = f"{stack.gateway.url}/events"
    event = {"source": "municipal", "patient": HLR.nin}
    good = mint_event_token(issuer=stack.settings.auth.issuer,
                            audience=stack.settings.auth.audience)
    r = httpx.post(url, json=event, headers={"authorization": f"Bearer {good}"})
    assert r.status_code == 202, r.text
    other = mint_event_token(issuer=stack.settings.auth.issuer,
                             audience=stack.settings.auth.audience, scope="kilde/patient.read")
    r = httpx.post(url, json=event, headers={"authorization": f"Bearer {other}"})
    assert r.status_code == 403
    assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
