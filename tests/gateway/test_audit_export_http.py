"""The privacy officer's doors into the audit trail: `/audit/export` (FHIR, own municipality
only, itself audited) and `emergencyAccesses` (the municipality's nødtilgang for review)."""

from __future__ import annotations

from typing import Any

import jwt
import orjson
import pytest

from gateway.demo.tokens import DEMO_KID, _private_key
from sandbox.world import by_tag
from tests.gateway.fhir_profile import bundle_problems, profile_problems
from tests.gateway.inprocess import Harness, gateway

HLR = by_tag("legevakt-hlr")  # lives in Oslo (0301)
RESTRICTED = by_tag("restricted-kj")  # lives in Oslo
IN_BERGEN = by_tag("other-municipality")  # lives in Bergen (4601)
OSLO, BERGEN = "910000004", "920000002"
REASON = "Bevisstløs ved ankomst"
PATIENT_QUERY = """query($nin: String!, $reason: String) { patient(nin: $nin,
  emergencyReason: $reason) { alerts { kind } sources { source status } } }"""
EMERGENCIES = """query($first: Int, $after: String) { emergencyAccesses(first: $first,
  after: $after) { totalCount pageInfo { endCursor hasNextPage }
  edges { node { patientNin who emergency emergencyReason outcome } } } }"""


def officer_of(h: Harness, orgnr: str) -> str:
    """A privacy officer's token whose organisation is `orgnr` (the demo persona is Oslo's)."""
    claims = jwt.decode(h.token("personvernombud", None), options={"verify_signature": False})
    claims["helseid://claims/client/claims/orgnr_parent"] = orgnr
    claims["helseid://claims/client/claims/orgnr_child"] = orgnr
    return jwt.encode(claims, _private_key(), algorithm="RS256",
                      headers={"kid": DEMO_KID, "typ": "at+jwt"})


async def _ask(h: Harness, persona: str, nin: str, reason: str | None = None,
               purpose: str | None = None) -> None:
    token = h.token(persona, nin, purpose=purpose)
    r = await h.post({"query": PATIENT_QUERY, "variables": {"nin": nin, "reason": reason}},
                     headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


async def _export(h: Harness, token: str, body: dict[str, Any] | None = None) -> Any:
    return await h.client.post("/audit/export", json=body or {},
                               headers={"authorization": f"Bearer {token}"})


@pytest.fixture
async def h() -> Any:
    async with gateway() as harness:
        yield harness


async def test_the_export_is_a_conforming_bundle_of_the_officers_municipality_only(
        h: Harness) -> None:
    """Oslo's officer oversees Oslo's patients (docs/policies.md): every access to an Oslo
    resident, whoever asked, and none to a Bergen resident."""
    await _ask(h, "legevakt-lege", HLR.nin)                  # Oslo staff, Oslo patient
    await _ask(h, "hjemmesykepleier", HLR.nin)                # Oslo staff, Oslo patient
    await _ask(h, "hjemmesykepleier-bergen", HLR.nin)         # Bergen staff, Oslo patient
    await _ask(h, "hjemmesykepleier-bergen", IN_BERGEN.nin)   # Bergen staff, Bergen patient
    r = await _export(h, h.token("personvernombud", None))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    bundle = r.json()
    assert bundle_problems(bundle) == []
    *resources, export = [e["resource"] for e in bundle["entry"]]
    assert export["outcomeDesc"] == "AUDIT_EXPORT"  # this export itself, recorded first
    assert len(resources) == 3
    legal_entities = []
    for resource in resources:
        assert profile_problems(resource) == []
        assert _patient_of(resource) == HLR.nin
        legal = next(c for c in resource["contained"] if c["id"] == "legal-entity")
        legal_entities.append(legal["identifier"][0]["value"])
        care = next(x for x in resource["extension"] if x["url"].endswith("metadata-extension"))
        assert {p["url"] for p in care["extension"]} >= {"toa"}
    assert sorted(legal_entities) == sorted([OSLO, OSLO, BERGEN])


def _patient_of(resource: dict[str, Any]) -> str | None:
    """The identity number of the AuditEvent's (contained) Patient."""
    for contained in resource.get("contained", []):
        if contained.get("resourceType") == "Patient":
            for identifier in contained.get("identifier", []):
                if identifier.get("system") == "urn:oid:2.16.578.1.12.4.1.4.1":
                    return str(identifier["value"])
    return None


async def test_another_municipalitys_officer_gets_theirs_and_is_refused_oslos(
        h: Harness) -> None:
    await _ask(h, "legevakt-lege", HLR.nin)
    await _ask(h, "hjemmesykepleier-bergen", HLR.nin)          # an Oslo resident: Oslo's
    await _ask(h, "hjemmesykepleier-bergen", IN_BERGEN.nin)    # a Bergen resident: Bergen's
    bergen = officer_of(h, BERGEN)
    own = await _export(h, bergen)
    assert own.status_code == 200
    *entries, export = [e["resource"] for e in own.json()["entry"]]
    assert export["outcomeDesc"] == "AUDIT_EXPORT"
    assert [_patient_of(r) for r in entries] == [IN_BERGEN.nin]  # the Bergen nurse's, of theirs
    assert {next(c for c in r["contained"] if c["id"] == "legal-entity")["identifier"][0]
            ["value"] for r in entries} == {BERGEN}
    refused = await _export(h, bergen, {"municipality": "0301"})
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("who", ["unserved-officer", "clinician", "citizen"])
async def test_only_a_privacy_officer_of_a_served_municipality_may_export(
        h: Harness, who: str) -> None:
    token = {"unserved-officer": lambda: officer_of(h, "999999999"),
             "clinician": lambda: h.token("legevakt-lege", HLR.nin),
             "citizen": lambda: h.token("innbygger", HLR.nin)}[who]()
    r = await _export(h, token)
    assert r.status_code == 403
    assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_export_without_a_valid_token_is_401(h: Harness) -> None:
    r = await h.client.post("/audit/export", json={})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await h.client.post("/audit/export", json={}, headers={"authorization": "Bearer x.y.z"})
    assert r.status_code == 401


@pytest.mark.parametrize(("body", "message"), [
    ({"patient": "14033841388"}, "'patient' is not a valid"),
    ({"from": "yesterday"}, "'from' must be a date"),
    ({"format": "xml"}, "'format' must be one of"),
    ({"to": 5}, "'to' must be a string"),
])
async def test_bad_export_parameters_are_400_without_echoing_them(
        h: Harness, body: dict[str, Any], message: str) -> None:
    r = await _export(h, h.token("personvernombud", None), body)
    assert r.status_code == 400
    text = r.json()["errors"][0]["message"]
    assert message in text
    assert "14033841388" not in text


async def test_the_patient_never_goes_in_a_url(h: Harness) -> None:
    r = await h.client.get("/audit/export", params={"patient": HLR.nin}, headers={
        "authorization": f"Bearer {h.token('personvernombud', None)}"})
    assert r.status_code == 400
    assert HLR.nin not in r.text
    ok = await h.client.get("/audit/export", params={"from": "2020-01-01", "format": "ndjson"},
                            headers={"authorization": f"Bearer {h.token('personvernombud', None)}"})
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("application/fhir+ndjson")


async def test_the_export_is_audited_before_it_is_delivered_and_names_the_patient(
        h: Harness) -> None:
    await _ask(h, "legevakt-lege", HLR.nin)
    officer = h.token("personvernombud", None)
    first = await _export(h, officer, {"patient": HLR.nin})
    reasons = [e["resource"]["outcomeDesc"] for e in first.json()["entry"]]
    assert reasons == ["CARE_RELATIONSHIP", "AUDIT_EXPORT"]  # written before the first byte
    # the patient sees in their own log that the privacy officer read their trail
    log = await h.post({"query": "{ myAccessLog { edges { node { reason who } } } }"},
                       headers={"authorization": f"Bearer {h.token('innbygger', HLR.nin)}"})
    assert log.json()["data"]["myAccessLog"]["edges"][0]["node"] == {
        "reason": "AUDIT_EXPORT", "who": "Vigdis Vernvik"}


async def test_no_export_leaves_when_the_audit_trail_cannot_be_written() -> None:
    async with gateway(audit_url="postgresql://postgres@127.0.0.1:9/test") as h:
        r = await _export(h, h.token("personvernombud", None))
    assert r.status_code == 503
    assert r.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    assert b"AuditEvent" not in r.content


async def test_emergency_accesses_lists_the_municipalitys_openings_across_patients_paged(
        h: Harness) -> None:
    await _ask(h, "legevakt-lege", RESTRICTED.nin, REASON)        # Oslo, opens: emergency
    await _ask(h, "legevakt-lege", HLR.nin, REASON)               # nothing restricted to open
    await _ask(h, "lege-annen-kommune", RESTRICTED.nin, REASON)   # Trondheim's, of an Oslo resident
    await _ask(h, "hjemmesykepleier", RESTRICTED.nin, REASON, purpose="BTG")  # Oslo, opens
    officer = {"authorization": f"Bearer {h.token('personvernombud', None)}"}
    r = await h.post({"query": EMERGENCIES, "variables": {"first": 1}}, headers=officer)
    page = r.json()["data"]["emergencyAccesses"]
    assert page["totalCount"] == 3  # Oslo's residents' openings, whoever opened them
    assert page["pageInfo"]["hasNextPage"] is True
    (first,) = [e["node"] for e in page["edges"]]  # newest first: the nurse's
    assert (first["patientNin"], first["who"]) == (RESTRICTED.nin, "Jonas Hjemdal")
    assert (first["emergency"], first["emergencyReason"]) == (True, REASON)
    r = await h.post({"query": EMERGENCIES, "variables": {
        "first": 5, "after": page["pageInfo"]["endCursor"]}}, headers=officer)
    rest = r.json()["data"]["emergencyAccesses"]
    assert [e["node"]["who"] for e in rest["edges"]] == ["Eva Nidaros", "Ingrid Vaktmo"]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_reading_emergency_accesses_is_audited_for_each_patient_shown(h: Harness) -> None:
    await _ask(h, "legevakt-lege", RESTRICTED.nin, REASON)
    officer = {"authorization": f"Bearer {h.token('personvernombud', None)}"}
    await h.post({"query": EMERGENCIES, "variables": {"first": 5}}, headers=officer)
    log = await h.post({"query": "{ myAccessLog { edges { node { reason who } } } }"},
                       headers={"authorization": f"Bearer {h.token('innbygger', RESTRICTED.nin)}"})
    assert log.json()["data"]["myAccessLog"]["edges"][0]["node"] == {
        "reason": "PRIVACY_OFFICER", "who": "Vigdis Vernvik"}


@pytest.mark.parametrize("persona", ["legevakt-lege", "innbygger"])
async def test_only_the_privacy_officer_may_review_emergency_accesses(
        h: Harness, persona: str) -> None:
    r = await h.post({"query": EMERGENCIES}, headers={
        "authorization": f"Bearer {h.token(persona, HLR.nin)}"})
    body = orjson.loads(r.content)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_an_unserved_organisations_officer_sees_no_emergency_accesses(h: Harness) -> None:
    r = await h.post({"query": EMERGENCIES}, headers={
        "authorization": f"Bearer {officer_of(h, '999999999')}"})
    assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
