"""The legevakt story and the patient's own choices, over real HTTP.

The HLR-minus kept only in the nursing home's store reaches the legevakt; an emergency with a
stated reason opens a restriction (Kjernejournal sperring, Pasientens prøvesvar `Specific`, an
`R`-labelled document) and is audited for the patient to see; nothing opens a block; and an item
hidden by its label leaks neither through the list, nor `sources`, nor the delivered counts.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.world import by_tag
from tests.e2e.client import Client

pytestmark = pytest.mark.slow

HLR = by_tag("legevakt-hlr")
RESTRICTED = by_tag("restricted-kj")
BLOCKED = by_tag("blocked-kj")
REASON = "Bevisstløs ved ankomst, trenger kritisk informasjon"
OPENED = """query($nin: String!, $reason: String) { patient(nin: $nin, emergencyReason: $reason) {
  alerts { kind provenance { source municipality } }
  treatmentLimitations { code { code } provenance { source recordId municipality } }
  criticalInformation { provenance { source recordId } }
  labResults { provenance { source recordId } }
  documents { title provenance { source recordId } }
  sources { source category status detail reason } } }"""
ACCESS_LOG = """{ myAccessLog(first: 1) { edges { node {
  outcome reason emergency emergencyReason deliveries { category source status count } } } } }"""


def ask(gw: Client, persona: str, nin: str, query: str, **variables: Any) -> dict[str, Any]:
    return gw.query(query, gw.token(persona, nin), {"nin": nin, **variables})


def _statuses(patient: dict[str, Any], source: str) -> set[tuple[str, str | None]]:
    return {(r["status"], r["detail"]) for r in patient["sources"] if r["source"] == source}


def _last_access(gw: Client, nin: str) -> dict[str, Any]:
    """The newest entry of the patient's own access log (innsyn), read as the citizen."""
    body = gw.query(ACCESS_LOG, gw.token("innbygger", nin))
    return body["data"]["myAccessLog"]["edges"][0]["node"]  # type: ignore[no-any-return]


def test_the_legevakt_gets_the_hlr_minus_kept_only_in_the_nursing_homes_store(gw: Client) -> None:
    patient = ask(gw, "legevakt-lege", HLR.nin, OPENED)["data"]["patient"]
    assert [(t["code"]["code"], t["provenance"]["source"], t["provenance"]["municipality"])
            for t in patient["treatmentLimitations"]] == [("304253006", "municipal", "0301")]
    assert patient["alerts"][0]["kind"] == "TREATMENT_LIMITATION"
    # a physician in another municipality is outside Oslo's store without an agreement
    other = ask(gw, "lege-annen-kommune", HLR.nin, OPENED)["data"]["patient"]
    assert other["treatmentLimitations"] == []


def test_an_emergency_reason_opens_the_kj_restriction_and_pps_specific_and_is_audited(
    gw: Client,
) -> None:
    body = ask(gw, "legevakt-lege", RESTRICTED.nin, OPENED, reason=REASON)
    assert "errors" not in body, body.get("errors")
    patient = body["data"]["patient"]
    assert {c["provenance"]["recordId"].split("/")[0] for c in patient["criticalInformation"]
            } == {"cave-c1"}
    assert [r["provenance"]["recordId"] for r in patient["labResults"]] == ["lab-c1"]
    opened = _statuses(patient, "kjernejournal") | _statuses(patient, "proevesvar")
    assert {status for status, _ in opened} == {"OK", "EMPTY"}  # KJ holds no limitation
    entry = _last_access(gw, RESTRICTED.nin)
    assert (entry["reason"], entry["emergency"], entry["emergencyReason"]) == (
        "EMERGENCY_OPENING", True, REASON)


@pytest.mark.parametrize(("persona", "reason"), [
    ("legevakt-lege", None),
    ("legevakt-lege", "   "),  # a blank reason is no reason
], ids=["etreat-without-reason", "etreat-blank-reason"])
def test_without_an_emergency_and_a_reason_the_restriction_stays_closed(
    gw: Client, persona: str, reason: str | None
) -> None:
    patient = ask(gw, persona, RESTRICTED.nin, OPENED, reason=reason)["data"]["patient"]
    assert patient["criticalInformation"] == []
    assert patient["labResults"] == []
    closed = {("RESTRICTED", "RESTRICTED_NEEDS_EMERGENCY")}
    assert _statuses(patient, "kjernejournal") == closed
    assert _statuses(patient, "proevesvar") == closed


@pytest.mark.parametrize(("persona", "purpose"), [
    ("hjemmesykepleier", "TREAT"), ("saksbehandler", "COC"), ("innbygger", None)])
def test_an_emergency_reason_under_a_purpose_that_opens_nothing_is_bad_input(
    gw: Client, persona: str, purpose: str | None
) -> None:
    """An emergency reason is never silently ignored: the caller learns which purposes open
    restrictions, nothing is fetched, and the patient's data stays out of the answer."""
    body = ask(gw, persona, RESTRICTED.nin, OPENED, reason=REASON)
    assert body["data"] == {"patient": None}
    [error] = body["errors"]
    assert (error["extensions"]["code"], error["extensions"]["argument"]) == (
        "BAD_USER_INPUT", "emergencyReason")
    assert "ETREAT or BTG" in error["message"]
    assert f"{purpose or 'none'!r}" in error["message"]
    assert "extensions" not in body  # no patient was read, so there is nothing to summarise
    assert sum(gw.requests().values()) == 0


@pytest.mark.parametrize("purpose", ["ETREAT", "BTG"])
def test_no_emergency_and_no_break_the_glass_opens_a_block(gw: Client, purpose: str) -> None:
    token = gw.token("legevakt-lege", BLOCKED.nin, purpose=purpose)
    patient = gw.query(OPENED, token, {"nin": BLOCKED.nin, "reason": REASON})["data"]["patient"]
    assert patient["criticalInformation"] == []
    assert _statuses(patient, "kjernejournal") == {("BLOCKED", "PATIENT_BLOCKED_REQUESTER")}


def test_a_restricted_document_is_withheld_said_restricted_and_not_counted(
    gw: Client,
) -> None:
    """Its content leaks nowhere, but the answer says something is withheld that nødtilgang
    may open (issue #13: withheld is never empty), and the audit counts what was delivered."""
    hidden = next(d for d in HLR.documents if d.confidential)
    r = gw.post(OPENED, f"Bearer {gw.token('legevakt-lege', HLR.nin)}", {"nin": HLR.nin})
    body = r.json()
    patient = body["data"]["patient"]
    assert [d["provenance"]["recordId"] for d in patient["documents"]] == ["doc-a1"]
    assert hidden.id not in r.text
    assert hidden.title not in r.text
    rows = {(row["category"], row["status"], row["reason"]) for row in patient["sources"]
            if row["source"] == "municipal"}
    assert ("DOCUMENTS", "RESTRICTED", "SECURITY_LABEL_RESTRICTED") in rows
    assert {status for category, status, _ in rows if category != "DOCUMENTS"} <= {"OK", "EMPTY"}
    [summary] = body["extensions"]["completeness"]["patients"]
    assert {(g["source"], g["category"], g["status"], g["reason"]) for g in summary["incomplete"]
            } == {("municipal", "DOCUMENTS", "RESTRICTED", "SECURITY_LABEL_RESTRICTED")}
    entry = _last_access(gw, HLR.nin)
    assert entry["emergency"] is False
    assert {(d["source"], d["count"]) for d in entry["deliveries"]
            if d["category"] == "documents"} == {("municipal", 1)}


def test_an_emergency_opens_the_restricted_document_and_the_patient_sees_why(gw: Client) -> None:
    body = ask(gw, "legevakt-lege", HLR.nin, OPENED, reason=REASON)
    ids = sorted(d["provenance"]["recordId"] for d in body["data"]["patient"]["documents"])
    assert ids == ["doc-a1", "doc-a2"]
    entry = _last_access(gw, HLR.nin)
    assert (entry["emergency"], entry["emergencyReason"]) == (True, REASON)
    assert {(d["source"], d["count"]) for d in entry["deliveries"]
            if d["category"] == "documents"} == {("municipal", 2)}
