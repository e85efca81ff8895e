"""Innsyn end to end: the legevakt physician opens a restricted (sperret) record in an emergency,
and the citizen sees exactly that in `myAccessLog`; the privacy officer reads `accessLog`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.world import by_tag
from tests.e2e.auditing import AuditedGateway, audited_gateway
from tests.e2e.conftest import Stack

SPERRET = by_tag("restricted-kj")
WHY = "Bevisstløs ved ankomst legevakt; trenger kritisk informasjon"
CRITICAL = """query($nin: String!, $why: String) { patient(nin: $nin, emergencyReason: $why) {
  criticalInformation { type } sources { source category status } } }"""
ENTRY = """totalCount pageInfo { endCursor hasNextPage } edges { node {
  time outcome reason who profession organisation pointOfCare purposeOfUse emergency
  emergencyReason categories } }"""
MY_LOG = "query($first: Int, $after: String) { myAccessLog(first: $first, after: $after) { %s } }"
LOG = """query($nin: String!, $from: DateTime, $to: DateTime) {
  accessLog(nin: $nin, from: $from, to: $to) { %s } }"""


@pytest.fixture
def gateway(stack: Stack, tmp_path: Path) -> Iterator[AuditedGateway]:
    stack.reset()
    with audited_gateway(stack.sandbox.url, f"sqlite:///{tmp_path / 'audit.sqlite3'}") as gw:
        yield gw


def _data(gw: AuditedGateway, query: str, token: str, **variables: Any) -> dict[str, Any]:
    r = gw.query(query, token, variables)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "errors" not in body, body["errors"]
    return body["data"]  # type: ignore[no-any-return]


def _my_log_pages(gw: AuditedGateway, token: str) -> tuple[list[dict[str, Any]], int, int]:
    """Page through myAccessLog one entry at a time: (entries, totalCount, pages)."""
    entries: list[dict[str, Any]] = []
    after, pages = None, 0
    while True:
        log = _data(gw, MY_LOG % ENTRY, token, first=1, after=after)["myAccessLog"]
        pages += 1
        entries += [edge["node"] for edge in log["edges"]]
        if not log["pageInfo"]["hasNextPage"]:
            return entries, log["totalCount"], pages
        after = log["pageInfo"]["endCursor"]


def test_the_citizen_sees_the_emergency_opening_of_their_restricted_record(
    gateway: AuditedGateway,
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    lege = gateway.token("legevakt-lege", SPERRET.nin)
    opened = _data(gateway, CRITICAL, lege, nin=SPERRET.nin, why=WHY)["patient"]
    assert opened["criticalInformation"], "the emergency opening showed nothing"
    nurse = _data(gateway, CRITICAL, gateway.token("hjemmesykepleier", SPERRET.nin),
                  nin=SPERRET.nin)["patient"]
    assert {s["status"] for s in nurse["sources"] if s["source"] == "kjernejournal"} == {
        "RESTRICTED"}
    ended = datetime.now(UTC) + timedelta(seconds=1)

    # the privacy officer: the log for the period, and nothing after it
    officer = gateway.token("personvernombud")
    period = _data(gateway, LOG % ENTRY, officer, nin=SPERRET.nin, **{
        "from": started.isoformat(), "to": ended.isoformat()})["accessLog"]
    assert [e["node"]["who"] for e in period["edges"]] == ["Jonas Hjemdal", "Ingrid Vaktmo"]
    later = _data(gateway, LOG % "totalCount", officer, nin=SPERRET.nin,
                  **{"from": ended.isoformat()})["accessLog"]
    assert later["totalCount"] == 0
    # a clinician may not read it; the attempt is itself recorded
    refused = gateway.query(LOG % "totalCount", lege, {"nin": SPERRET.nin})
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert refused.json()["data"] is None

    citizen = gateway.token("innbygger", SPERRET.nin)
    entries, total, pages = _my_log_pages(gateway, citizen)
    assert (total, pages, len(entries)) == (5, 5, 5)
    assert [(e["who"], e["outcome"], e["reason"]) for e in entries] == [
        ("Ingrid Vaktmo", "DENIED", "ACCESS_LOG_NOT_PERMITTED"),
        ("Vigdis Vernvik", "DELIVERED", "PRIVACY_OFFICER"),
        ("Vigdis Vernvik", "DELIVERED", "PRIVACY_OFFICER"),
        ("Jonas Hjemdal", "DELIVERED", "CARE_RELATIONSHIP"),
        ("Ingrid Vaktmo", "DELIVERED", "EMERGENCY_OPENING"),
    ]
    emergency = entries[-1]
    assert emergency == {**emergency, "profession": "Lege", "organisation": "Oslo kommune",
                         "pointOfCare": "Oslo kommune legevakt", "purposeOfUse": "ETREAT",
                         "emergency": True, "emergencyReason": WHY}
    assert "critical_information" in emergency["categories"]
    assert not any(e["emergency"] for e in entries[:-1])
    # reading one's own log is not an access to record: the log did not grow
    again = _data(gateway, MY_LOG % "totalCount", citizen, first=1)["myAccessLog"]
    assert again["totalCount"] == total


def test_my_access_log_is_only_for_citizens(gateway: AuditedGateway) -> None:
    r = gateway.query(MY_LOG % "totalCount", gateway.token("legevakt-lege", SPERRET.nin),
                      {"first": 1})
    assert r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
