"""What a citizen sees of their own restricted data (docs/policies.md, "The citizen's own
restricted data"): Kilde's own policy lets them see it, but Kjernejournal and Pasientens
prøvesvar enforce a restriction at the source, through personnel APIs, and refuse it without
an emergency basis a citizen cannot have: those rows say RESTRICTED, never "no data"."""

from __future__ import annotations

from typing import Any

from sandbox.world import by_tag
from tests.gateway.inprocess import gateway

QUERY = """query($nin: String!, $reason: String) {
  patient(nin: $nin, emergencyReason: $reason) {
    alerts { kind title provenance { source } }
    treatmentLimitations { meaning provenance { source } }
    labResults { code { display } provenance { source } }
    sources { source category status reason } } }"""
SPERRET = by_tag("restricted-kj")  # restricted in Kjernejournal and in prøvesvar
LABELLED = by_tag("labelled-hlr")  # an HLR-minus labelled R in the municipal store


def rows(body: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str | None]]:
    return {(s["source"], s["category"]): (s["status"], s["reason"])
            for s in body["data"]["patient"]["sources"]}


async def test_the_national_sources_refuse_a_citizens_own_restricted_data_and_say_so() -> None:
    assert "restricted-lab" in SPERRET.tags
    async with gateway() as kilde:
        r = await kilde.post({"query": QUERY, "variables": {"nin": SPERRET.nin}},
                             headers=kilde.auth("innbygger", SPERRET.nin))
        assert r.status_code == 200
        body = r.json()
        seen = rows(body)
        for key in (("kjernejournal", "CRITICAL_INFORMATION"),
                    ("kjernejournal", "TREATMENT_LIMITATIONS"), ("proevesvar", "LAB_RESULTS")):
            assert seen[key] == ("RESTRICTED", "RESTRICTED_NEEDS_EMERGENCY"), key
        patient = body["data"]["patient"]
        assert all(a["provenance"]["source"] != "kjernejournal" for a in patient["alerts"])
        assert all(x["provenance"]["source"] != "proevesvar" for x in patient["labResults"])
        assert seen[("municipal", "TREATMENT_LIMITATIONS")][0] in ("OK", "EMPTY")
        completeness = body["extensions"]["completeness"]
        assert completeness["complete"] is False
        missing = {(g["source"], g["status"]) for p in completeness["patients"]
                   for g in p["incomplete"]}
        assert {("kjernejournal", "RESTRICTED"), ("proevesvar", "RESTRICTED")} <= missing
        # a citizen has no emergency basis to offer
        r = await kilde.post({"query": QUERY, "variables": {"nin": SPERRET.nin,
                                                           "reason": "Jeg vil se alt"}},
                             headers=kilde.auth("innbygger", SPERRET.nin))
        assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        # and the access is in their own log
        log = await kilde.post({"query": "{ myAccessLog(first: 5) { edges { node { outcome } } } }"},
                               headers=kilde.auth("innbygger", SPERRET.nin))
        assert log.json()["data"]["myAccessLog"]["edges"]


async def test_a_citizen_sees_their_own_restricted_municipal_item_which_personnel_do_not() -> None:
    async with gateway() as kilde:
        own = await kilde.post({"query": QUERY, "variables": {"nin": LABELLED.nin}},
                               headers=kilde.auth("innbygger", LABELLED.nin))
        limitations = own.json()["data"]["patient"]["treatmentLimitations"]
        assert any(t["meaning"] == "HLR_MINUS" and t["provenance"]["source"] == "municipal"
                   for t in limitations)
        clinician = await kilde.post({"query": QUERY, "variables": {"nin": LABELLED.nin}},
                                     headers=kilde.auth("legevakt-lege", LABELLED.nin))
        theirs = clinician.json()["data"]["patient"]
        assert not any(t["meaning"] == "HLR_MINUS" for t in theirs["treatmentLimitations"])
        assert rows(clinician.json())[("municipal", "TREATMENT_LIMITATIONS")][0] == "RESTRICTED"
