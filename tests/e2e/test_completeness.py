"""Completeness travels with every answer, over real HTTP: `extensions.completeness`.

A client that selects only `alerts` (no `sources`) still learns which sources and categories
did not answer completely and why: a hanging source, a restriction, a reservation, a block, a
stale cache entry with its age, fresh data refused by its rate limit. Withheld and stale data
are no GraphQL errors (the data that is there is right); failures keep their UPSTREAM_* error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from sandbox.world import by_tag
from tests.e2e.client import Client
from tests.e2e.conftest import Stack
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

ALERTS = """query($nin: String!, $fresh: Boolean) { patient(nin: $nin, fresh: $fresh) {
  alerts { kind title } } }"""
TWO = """query($a: String!) { first: patient(nin: $a) { alerts { kind } }
  again: patient(nin: $a) { conditions { id } } }"""


def summary(body: dict[str, Any]) -> dict[str, Any]:
    return body["extensions"]["completeness"]  # type: ignore[no-any-return]


def gaps(body: dict[str, Any]) -> set[tuple[str, str, str, str | None]]:
    [patient] = summary(body)["patients"]
    return {(g["source"], g["category"], g["status"], g["reason"]) for g in patient["incomplete"]}


def test_only_alerts_selected_and_one_source_hanging_the_summary_says_so(e2e: Stack) -> None:
    e2e.fault("kjernejournal", mode="hang")
    nin = by_tag("legevakt-hlr").nin
    r = e2e.query(ALERTS, e2e.token("legevakt-lege", nin), {"nin": nin})
    body = r.json()
    assert body["data"]["patient"]["alerts"][0]["kind"] == "TREATMENT_LIMITATION"
    assert summary(body)["complete"] is False
    assert gaps(body) == {
        ("kjernejournal", "TREATMENT_LIMITATIONS", "TIMEOUT", "UPSTREAM_TIMEOUT"),
        ("kjernejournal", "CRITICAL_INFORMATION", "TIMEOUT", "UPSTREAM_TIMEOUT")}
    [patient] = summary(body)["patients"]
    assert patient["path"] == ["patient"]
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UPSTREAM_TIMEOUT"]


def test_a_complete_answer_says_complete(gw: Client) -> None:
    nin = by_tag("multi-service").nin
    body = gw.query(ALERTS, gw.token("legevakt-lege", nin), {"nin": nin})
    assert summary(body) == {"complete": True, "patients": [
        {"path": ["patient"], "complete": True, "freshRefused": False, "incomplete": []}]}


@pytest.mark.parametrize(("tag", "persona", "expected"), [
    ("restricted-kj", "legevakt-lege", {
        ("kjernejournal", c, "RESTRICTED", "RESTRICTED_NEEDS_EMERGENCY")
        for c in ("TREATMENT_LIMITATIONS", "CRITICAL_INFORMATION")}),
    ("reserved-kj", "legevakt-lege", {
        ("kjernejournal", c, "RESERVED", "PATIENT_RESERVED")
        for c in ("TREATMENT_LIMITATIONS", "CRITICAL_INFORMATION")}),
    ("blocked-kj", "hjemmesykepleier", {
        ("kjernejournal", c, "BLOCKED", "SOURCE_SHARES_NOTHING_WHEN_BLOCKED")
        for c in ("TREATMENT_LIMITATIONS", "CRITICAL_INFORMATION")}),
], ids=["restricted", "reserved", "blocked"])
def test_withheld_answers_are_in_the_summary_without_an_error(
    gw: Client, tag: str, persona: str, expected: set[Any]
) -> None:
    nin = by_tag(tag).nin
    body = gw.query(ALERTS, gw.token(persona, nin), {"nin": nin})
    assert gaps(body) == expected
    assert "errors" not in body


def test_two_patient_fields_each_have_their_own_summary_under_their_path(gw: Client) -> None:
    nin = by_tag("restricted-kj").nin
    body = gw.query(TWO, gw.token("legevakt-lege", nin), {"a": nin})
    patients = {tuple(p["path"]): p for p in summary(body)["patients"]}
    assert set(patients) == {("first",), ("again",)}
    assert patients[("first",)]["complete"] is False  # Kjernejournal is restricted
    assert patients[("again",)] == {"path": ["again"], "complete": True, "freshRefused": False,
                                    "incomplete": []}  # conditions come from the store only
    assert summary(body)["complete"] is False


def test_a_request_that_reads_no_patient_carries_no_summary(gw: Client) -> None:
    nin = by_tag("multi-service").nin
    body = gw.query("{ me { kind } }", gw.token("legevakt-lege", nin))
    assert "extensions" not in body


@pytest.fixture(scope="module")
def cached(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A gateway with an in-memory cache and one fresh request per principal per minute."""
    audit = tmp_path_factory.mktemp("completeness-audit") / "audit.sqlite3"
    sock = listening_socket()
    settings = e2e_settings(port_of(sock), stack.sandbox.url, f"sqlite:///{audit}")
    settings = replace(settings, cache=replace(settings.cache, enabled=True, url="memory://",
                                               fresh_per_minute=1, max_stale_seconds=300))
    with running(demo_app(settings), sock) as gateway:
        client = Client(gateway.url, stack.sandbox.url, settings)
        yield client
        client.close()


def test_fresh_data_refused_by_its_limit_is_said_not_served_silently(
    cached: Client, e2e: Stack
) -> None:
    nin = by_tag("multi-service").nin
    token = cached.token("hjemmesykepleier", nin)
    cached.query(ALERTS, token, {"nin": nin})  # fills the cache
    allowed = cached.query(ALERTS, token, {"nin": nin, "fresh": True})  # the minute's one
    assert summary(allowed)["complete"] is True
    refused = cached.query(ALERTS, token, {"nin": nin, "fresh": True})
    [patient] = summary(refused)["patients"]
    assert patient["freshRefused"] is True
    assert patient["complete"] is False
    assert {(g["source"], g["category"], g["status"], g["reason"])
            for g in patient["incomplete"]} == {
        ("kjernejournal", "CRITICAL_INFORMATION", "OK", "FRESH_REFUSED"),
        ("kjernejournal", "TREATMENT_LIMITATIONS", "EMPTY", "FRESH_REFUSED"),
        ("municipal", "CRITICAL_INFORMATION", "EMPTY", "FRESH_REFUSED"),  # CAVE, Flags
        ("municipal", "TREATMENT_LIMITATIONS", "EMPTY", "FRESH_REFUSED")}
    assert all(g["ageSeconds"] is not None and g["ageSeconds"] >= 0
               for g in patient["incomplete"])


def test_a_stale_answer_is_in_the_summary_with_its_age(cached: Client, e2e: Stack) -> None:
    nin = by_tag("legevakt-hlr").nin
    token = cached.token("legevakt-lege", nin)
    cached.query(ALERTS, token, {"nin": nin})  # fills the cache
    e2e.fault("kjernejournal", mode="error")
    body = cached.query(ALERTS, token, {"nin": nin, "fresh": True})
    [patient] = summary(body)["patients"]
    stale = [g for g in patient["incomplete"] if g["status"] == "STALE"]
    assert {(g["source"], g["category"], g["reason"]) for g in stale} == {
        ("kjernejournal", "TREATMENT_LIMITATIONS", "STALE"),
        ("kjernejournal", "CRITICAL_INFORMATION", "STALE")}
    assert all(g["ageSeconds"] >= 0 and "s old" in g["detail"] for g in stale)
