"""Never "no data" when Kilde does not know, over real HTTP against the demo stack (issue #13).

Conflicting decisions are shown, not resolved; an HLR-minus kept only in Kjernejournal (in its
own code system) still comes first; an HLR-minus hidden by its label says RESTRICTED until an
emergency opens it; a block of a named professional holds in every source; each source's own
medication values can be read next to the linked view.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.world import by_tag
from tests.e2e.client import Client

pytestmark = pytest.mark.slow

REASON = "Bevisstløs ved ankomst, trenger behandlingsavklaring"
QUERY = """query($nin: String!, $reason: String) { patient(nin: $nin, emergencyReason: $reason) {
  alerts { kind title detail itemId itemIds meaning
           provenance { source recordId municipality } provenances { source recordId }
           conflictsWith { source recordId } }
  treatmentLimitations { id meaning decidedAt provenance { source recordId }
                         conflictsWith { source recordId } }
  conditions { id }
  medications { name dosage { text } conflicts provenances { source }
                records { provenance { source } dosage { text } status started } }
  sources { source category status reason } } }"""
ACCESS_LOG = """{ myAccessLog(first: 1) { edges { node {
  outcome reason emergency emergencyReason deliveries { category source status count } } } } }"""


def ask(gw: Client, persona: str, tag: str, **variables: Any) -> dict[str, Any]:
    nin = by_tag(tag).nin
    return gw.query(QUERY, gw.token(persona, nin), {"nin": nin, **variables})


def last_access(gw: Client, tag: str) -> dict[str, Any]:
    nin = by_tag(tag).nin
    body = gw.query(ACCESS_LOG, gw.token("innbygger", nin))
    return body["data"]["myAccessLog"]["edges"][0]["node"]  # type: ignore[no-any-return]


def test_disagreeing_decisions_raise_a_conflict_alert_first_naming_both(gw: Client) -> None:
    patient = ask(gw, "legevakt-lege", "conflicting-limitations")["data"]["patient"]
    first, *rest = patient["alerts"]
    assert first["kind"] == "CONFLICT"
    # both sources, both dates, the newest decision (Kjernejournal, 2026-10-01) first
    assert [p["source"] for p in first["provenances"]] == ["kjernejournal", "municipal"]
    assert first["itemIds"] == ["kj-full-p1", "hlr-p1"]
    assert "2026-10-01" in first["detail"]
    assert "2025-01-10" in first["detail"]
    assert first["detail"].index("2026-10-01") < first["detail"].index("2025-01-10")
    # then the decisions themselves, newest first, each marked with what it contradicts
    assert [(a["kind"], a["meaning"], a["itemId"]) for a in rest[:2]] == [
        ("TREATMENT_LIMITATION", "FULL_TREATMENT", "kj-full-p1"),
        ("TREATMENT_LIMITATION", "HLR_MINUS", "hlr-p1")]
    assert rest[0]["conflictsWith"] == [{"source": "municipal", "recordId": "hlr-p1"}]
    marked = {t["id"]: (t["meaning"], [c["source"] for c in t["conflictsWith"]])
              for t in patient["treatmentLimitations"]}
    assert marked == {"kj-full-p1": ("FULL_TREATMENT", ["municipal"]),
                      "hlr-p1": ("HLR_MINUS", ["kjernejournal"])}


def test_no_conflict_is_raised_where_decisions_agree(gw: Client) -> None:
    patient = ask(gw, "legevakt-lege", "legevakt-hlr")["data"]["patient"]
    assert "CONFLICT" not in {a["kind"] for a in patient["alerts"]}
    assert all(t["conflictsWith"] == [] for t in patient["treatmentLimitations"])


def test_an_hlr_minus_only_in_kjernejournal_in_its_own_codes_comes_first(gw: Client) -> None:
    patient = ask(gw, "legevakt-lege", "kj-only-hlr")["data"]["patient"]
    first = patient["alerts"][0]
    assert (first["kind"], first["meaning"], first["provenance"]["source"]) == (
        "TREATMENT_LIMITATION", "HLR_MINUS", "kjernejournal")
    assert first["itemId"] == "kj-hlr-a1"


def test_a_labelled_hlr_minus_is_restricted_without_emergency_and_shown_with_it(
    gw: Client,
) -> None:
    closed = ask(gw, "legevakt-lege", "labelled-hlr")["data"]["patient"]
    assert closed["treatmentLimitations"] == []
    assert {(r["source"], r["status"], r["reason"]) for r in closed["sources"]
            if r["category"] == "TREATMENT_LIMITATIONS"} >= {
        ("municipal", "RESTRICTED", "SECURITY_LABEL_RESTRICTED")}
    assert last_access(gw, "labelled-hlr")["emergency"] is False

    opened = ask(gw, "legevakt-lege", "labelled-hlr", reason=REASON)["data"]["patient"]
    assert [(a["kind"], a["meaning"]) for a in opened["alerts"]][:1] == [
        ("TREATMENT_LIMITATION", "HLR_MINUS")]
    assert [t["id"] for t in opened["treatmentLimitations"]] == ["hlr-l1"]
    entry = last_access(gw, "labelled-hlr")
    assert (entry["reason"], entry["emergency"], entry["emergencyReason"]) == (
        "EMERGENCY_OPENING", True, REASON)


def test_a_block_holds_in_every_source_and_the_access_is_audited_as_denied(gw: Client) -> None:
    body = ask(gw, "legevakt-lege", "blocked-everywhere")
    patient = body["data"]["patient"]
    assert patient["conditions"] == []
    assert patient["alerts"] == []
    assert {r["status"] for r in patient["sources"]} == {"BLOCKED"}
    assert {r["reason"] for r in patient["sources"]} == {"PATIENT_BLOCKED_REQUESTER"}
    entry = last_access(gw, "blocked-everywhere")
    assert (entry["outcome"], entry["reason"]) == ("DENIED", "PATIENT_BLOCKED_REQUESTER")
    assert all(d["count"] == 0 and d["status"] == "BLOCKED" for d in entry["deliveries"])
    # somebody the patient has not blocked sees the municipal data
    nurse = ask(gw, "hjemmesykepleier", "blocked-everywhere")["data"]["patient"]
    assert sorted(c["id"] for c in nurse["conditions"]) == ["cond-t1", "cond-t2"]


def test_a_block_reported_by_kjernejournal_holds_when_only_municipal_data_is_asked(
    gw: Client,
) -> None:
    """Kjernejournal is asked for the patient's blocks (its /status) even when no selected
    category needs it."""
    nin = by_tag("blocked-kj").nin
    body = gw.query("query($nin: String!) { patient(nin: $nin) { conditions { id } "
                    "sources { source status reason } } }",
                    gw.token("legevakt-lege", nin), {"nin": nin})
    patient = body["data"]["patient"]
    assert patient["conditions"] == []
    assert patient["sources"] == [{"source": "municipal", "status": "BLOCKED",
                                   "reason": "PATIENT_BLOCKED_REQUESTER"}]
    assert gw.requests_below("kjernejournal") == {"status": 1}


def test_each_sources_own_dose_is_readable_next_to_the_linked_medication(gw: Client) -> None:
    patient = ask(gw, "legevakt-lege", "multi-service")["data"]["patient"]
    metformin = next(m for m in patient["medications"] if m["name"].startswith("Metformin"))
    assert "dosage" in metformin["conflicts"]
    doses = {r["provenance"]["source"]: r["dosage"]["text"] for r in metformin["records"]}
    assert doses["pll"] == "1 tablett x 2"
    assert doses["eresept"] == "1 tablett x 3"
    assert [r["provenance"]["source"] for r in metformin["records"]] == [
        p["source"] for p in metformin["provenances"]]


def test_a_municipal_cave_shows_and_the_same_cave_from_two_sources_is_one_item(
    gw: Client,
) -> None:
    nin = by_tag("municipal-cave").nin
    body = gw.query("""query($nin: String!) { patient(nin: $nin) {
      criticalInformation { id description severity conflicts provenances { source recordId } }
      alerts { kind title provenances { source } } } }""",
                    gw.token("legevakt-lege", nin), {"nin": nin})
    patient = body["data"]["patient"]
    found = {c["description"]: c for c in patient["criticalInformation"]}
    assert [p["source"] for p in found["Lateks"]["provenances"]] == ["municipal"]
    penicillin = found["Penicilliner"]
    assert [p["source"] for p in penicillin["provenances"]] == ["kjernejournal", "municipal"]
    assert (penicillin["severity"], "severity" in penicillin["conflicts"]) == ("severe", True)
    assert len(patient["criticalInformation"]) == 2
    cave = {a["title"]: [p["source"] for p in a["provenances"]] for a in patient["alerts"]}
    assert cave == {"CAVE Lateks": ["municipal"],
                    "CAVE Penicilliner": ["kjernejournal", "municipal"]}
