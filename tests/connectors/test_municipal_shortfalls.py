"""A store that holds data never reads EMPTY: unreadable records, refused or impossible searches,
failed batch entries and failed privacy searches each have their own status and reason.

Stores are the sandbox's FHIR engine over chosen resources (tests/connectors/municipal_stores.py);
`Rewrite` changes what a store answered, request by request, the way a real store might.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from connectors.errors import (
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from connectors.model import Category, Status
from connectors.municipal import MunicipalConnector
from tests.connectors.municipal_stores import (
    FNR,
    NIN,
    condition,
    consent,
    fetch_request,
    patient,
    stores,
)

MINE = patient("p1", (FNR, NIN))
CONDITIONS = frozenset({Category.CONDITIONS})
SOME = frozenset({Category.CONDITIONS, Category.DOCUMENTS, Category.TREATMENT_LIMITATIONS})
PROFILES = ("full", "batch", "plain", "paged")
Answer = Callable[[httpx.Request, Any], Any]


def document(rid: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "id": rid, "status": "current",
            "subject": {"reference": "Patient/p1"},
            "type": {"coding": [{"system": "t", "code": "A03", "display": "Epikrise"}]}, **extra}


class Rewrite(httpx.AsyncBaseTransport):
    """The store's answers, each passed through `change(request, body)`, which returns the body
    to send (a dict), an `httpx.Response`, or None for the store's own answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport, change: Answer) -> None:
        self.inner, self.change = inner, change

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        changed = self.change(request, body)
        if changed is None:
            return httpx.Response(response.status_code, content=response.content,
                                  headers=response.headers)
        if isinstance(changed, httpx.Response):
            return changed
        return httpx.Response(200, json=changed, headers={"content-type": "application/fhir+json"})


def rewritten(conn: MunicipalConnector, recorder: Any, change: Answer) -> MunicipalConnector:
    conn._http = httpx.AsyncClient(transport=Rewrite(recorder, change))
    conn._capabilities._http = conn._http
    return conn


def searched(request: httpx.Request, resource_type: str, scope: str | None = None) -> bool:
    """A GET search (or a form _search) of `resource_type`, optionally of one Consent scope."""
    path = request.url.path.rstrip("/")
    if not (path.endswith(f"/{resource_type}") or path.endswith(f"/{resource_type}/_search")):
        return False
    return scope is None or f"scope={scope}" in str(request.url)


def batch_entry(request: httpx.Request, body: Any, resource_type: str, scope: str | None,
                new: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    """A batch-response with the entry answering `resource_type` (and scope) replaced."""
    if request.method != "POST" or not isinstance(body, dict) or body.get("type") != (
            "batch-response"):
        return None
    asked = [e["request"]["url"] for e in json.loads(request.content)["entry"]]
    for i, url in enumerate(asked):
        if url.startswith(f"{resource_type}?") and (scope is None or f"scope={scope}" in url):
            body["entry"][i] = new(body["entry"][i])
            return body
    return None


# -- 1. records that cannot be read ----------------------------------------------------------

UNREADABLE = {
    "no code": condition("c-x", "Patient/p1") | {"code": {"text": None}},
    "code of the wrong type": condition("c-x", "Patient/p1") | {"code": {"coding": 7}},
    "date of the wrong type": condition("c-x", "Patient/p1") | {"code": 5},
}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("kind", sorted(UNREADABLE))
async def test_a_store_holding_only_unreadable_records_is_invalid_never_empty(
        profile: str, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    conn, _ = stores({"0301": [MINE, UNREADABLE[kind]]}, profile)
    with caplog.at_level(logging.WARNING):
        result = await conn.fetch(fetch_request(categories=CONDITIONS))
    assert result.items[Category.CONDITIONS] == ()
    assert result.status_for(Category.CONDITIONS) is Status.INVALID
    reason = result.reason_for(Category.CONDITIONS)
    assert reason is not None
    assert reason.code == "UNREADABLE_RECORDS"
    assert "1 Condition record Kilde could not read" in reason.detail
    assert "'0301'" in reason.detail
    # counted in the log by store and type, never with personal data or the store's ids
    logged = [r.getMessage() for r in caplog.records]
    assert any("0301 sent 1 Condition record(s)" in line for line in logged)
    assert not any(NIN in line or "c-x" in line or "p1" in line for line in logged)


@pytest.mark.parametrize("profile", PROFILES)
async def test_an_unreadable_record_beside_readable_ones_is_partial(profile: str) -> None:
    held = [MINE, condition("c1", "Patient/p1"), condition("c2", "Patient/p1"),
            UNREADABLE["no code"], document("doc-1")]
    conn, _ = stores({"0301": held}, profile)
    result = await conn.fetch(fetch_request(categories=SOME))
    assert sorted(c.id for c in result.items[Category.CONDITIONS]) == ["c1", "c2"]
    assert result.status_for(Category.CONDITIONS) is Status.PARTIAL
    assert result.reason_for(Category.CONDITIONS).code == "UNREADABLE_RECORDS"  # type: ignore[union-attr]
    # the other categories are not touched
    assert result.status_for(Category.DOCUMENTS) is Status.OK
    assert result.reason_for(Category.DOCUMENTS) is None
    assert result.status_for(Category.TREATMENT_LIMITATIONS) is Status.EMPTY


async def test_a_match_of_another_type_is_an_unreadable_record_not_nothing() -> None:
    conn, recorder = stores({"0301": [MINE]}, "plain")

    def another_type(request: httpx.Request, body: Any) -> Any:
        if searched(request, "Condition") and request.method == "GET":
            body["entry"] = [{"resource": document("doc-9"), "search": {"mode": "match"}}]
            body["total"] = 1
            return body
        return None

    result = await rewritten(conn, recorder, another_type).fetch(
        fetch_request(categories=CONDITIONS))
    assert result.status_for(Category.CONDITIONS) is Status.INVALID
    assert result.items[Category.CONDITIONS] == ()


async def test_a_treatment_consent_of_another_scope_is_not_read_silently() -> None:
    """The store was asked `scope=treatment` and answered another scope: not a decision Kilde
    may show, and not nothing either."""
    odd = consent("hlr", "Patient/p1", scope="research")
    conn, recorder = stores({"0301": [MINE]}, "plain")

    def wrong_scope(request: httpx.Request, body: Any) -> Any:
        if searched(request, "Consent", "treatment"):
            body["entry"] = [{"resource": odd, "search": {"mode": "match"}}]
            body["total"] = 1
            return body
        return None

    result = await rewritten(conn, recorder, wrong_scope).fetch(fetch_request(
        categories=frozenset({Category.TREATMENT_LIMITATIONS})))
    assert result.status_for(Category.TREATMENT_LIMITATIONS) is Status.INVALID


async def test_unreadable_in_one_store_and_readable_in_another_is_partial() -> None:
    held = {"0301": [MINE, UNREADABLE["no code"]],
            "4601": [patient("b1", (FNR, NIN)), condition("b-c1", "Patient/b1")]}
    conn, _ = stores(held)
    result = await conn.fetch(fetch_request(categories=CONDITIONS,
                                            municipalities=frozenset({"0301", "4601"})))
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["b-c1"]
    assert result.status_for(Category.CONDITIONS) is Status.PARTIAL
    reason = result.reason_for(Category.CONDITIONS)
    assert reason is not None
    assert "'0301'" in reason.detail
    assert "'4601'" not in reason.detail


# -- 2. a store that refuses or cannot do what is needed -----------------------------------------

def _metadata(change: Callable[[dict[str, Any]], Any]) -> Answer:
    def answer(request: httpx.Request, body: Any) -> Any:
        return change(body) if request.url.path.endswith("/metadata") else None
    return answer


@pytest.mark.parametrize("garbage", [
    httpx.Response(200, content=b"<html>Welcome to nginx</html>"),
    httpx.Response(200, json={"resourceType": "OperationOutcome", "issue": []}),
    httpx.Response(200, json={"resourceType": "CapabilityStatement", "rest": "x"}),
    httpx.Response(200, json={"resourceType": "CapabilityStatement", "rest": [
        {"mode": "client"}]}),
    httpx.Response(200, json=[1, 2, 3]),
], ids=["html", "another-resource", "rest-not-a-list", "no-server-rest", "not-an-object"])
async def test_a_capability_statement_that_is_garbage_makes_the_store_invalid(
        garbage: httpx.Response) -> None:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, "plain")
    conn = rewritten(conn, recorder, _metadata(lambda body: garbage))
    with pytest.raises(UpstreamInvalidError, match="CapabilityStatement"):
        await conn.fetch(fetch_request(categories=CONDITIONS))
    assert recorder.searches() == []  # nothing asked of a store that serves garbage


@pytest.mark.parametrize("status", [404, 401, 500])
async def test_a_missing_capability_statement_assumes_standard_r4_and_answers(status: int
                                                                              ) -> None:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, "plain")
    conn = rewritten(conn, recorder, _metadata(
        lambda body: httpx.Response(status, json={"resourceType": "OperationOutcome"})))
    result = await conn.fetch(fetch_request(categories=CONDITIONS))
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["c1"]


def _without(resource_type: str, parameter: str | None = None) -> Answer:
    """A CapabilityStatement without `resource_type` (or without one of its parameters)."""
    def change(body: dict[str, Any]) -> dict[str, Any]:
        rest = body["rest"][0]
        if parameter is None:
            rest["resource"] = [r for r in rest["resource"] if r["type"] != resource_type]
        for r in rest["resource"]:
            if r["type"] == resource_type:
                r["searchParam"] = [p for p in r["searchParam"] if p["name"] != parameter]
        return body
    return _metadata(change)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("parameter", [None, "patient"], ids=["type-missing", "no-patient-param"])
async def test_a_type_the_store_cannot_search_by_patient_is_unavailable_not_empty(
        profile: str, parameter: str | None) -> None:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1"), document("d1")]},
                            profile)
    conn = rewritten(conn, recorder, _without("Condition", parameter))
    result = await conn.fetch(fetch_request(categories=SOME))
    assert result.status_for(Category.CONDITIONS) is Status.UNAVAILABLE
    reason = result.reason_for(Category.CONDITIONS)
    assert reason is not None
    assert reason.code == "UPSTREAM_REJECTED"
    assert "Condition search by patient" in reason.detail
    assert [d.id for d in result.items[Category.DOCUMENTS]] == ["d1"]
    assert result.status_for(Category.DOCUMENTS) is Status.OK
    sent = [r.url.path for r in recorder.searches()] + [
        e["request"]["url"] for r in recorder.searches() if r.method == "POST"
        and r.headers.get("content-type", "").startswith("application/fhir+json")
        for e in json.loads(r.content)["entry"]]
    assert not any("Condition" in s for s in sent)  # not asked what it cannot answer


@pytest.mark.parametrize(("resource_type", "parameter"), [
    ("Consent", None), ("Consent", "patient"), ("Patient", "identifier")])
async def test_a_store_that_cannot_resolve_the_patient_or_check_privacy_is_refused(
        resource_type: str, parameter: str | None) -> None:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, "batch")
    conn = rewritten(conn, recorder, _without(resource_type, parameter))
    with pytest.raises(UpstreamRejectedError):
        await conn.fetch(fetch_request(categories=CONDITIONS))


NOT_A_SEARCHSET = {
    "outcome-with-200": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "not-supported", "diagnostics": "chained search"}]},
    "collection": {"resourceType": "Bundle", "type": "collection", "entry": []},
    "history": {"resourceType": "Bundle", "type": "history", "entry": []},
    "no-type": {"resourceType": "Bundle", "entry": []},
    "error-outcome-entry": {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "fatal", "code": "exception"}]}, "search": {"mode": "outcome"}}]},
}


@pytest.mark.parametrize("profile", ["batch", "plain"])
@pytest.mark.parametrize("kind", sorted(NOT_A_SEARCHSET))
async def test_a_search_answered_with_no_searchset_is_invalid_for_its_category(
        profile: str, kind: str) -> None:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1"), document("d1")]},
                            profile)

    def answer(request: httpx.Request, body: Any) -> Any:
        if profile == "plain":
            return NOT_A_SEARCHSET[kind] if searched(request, "Condition") else None
        return batch_entry(request, body, "Condition", None,
                           lambda e: {**e, "resource": NOT_A_SEARCHSET[kind]})

    result = await rewritten(conn, recorder, answer).fetch(fetch_request(categories=SOME))
    assert result.status_for(Category.CONDITIONS) is Status.INVALID
    assert result.reason_for(Category.CONDITIONS).code == "UPSTREAM_INVALID"  # type: ignore[union-attr]
    assert [d.id for d in result.items[Category.DOCUMENTS]] == ["d1"]


@pytest.mark.parametrize("profile", ["batch", "plain"])
async def test_a_total_above_what_the_bundle_holds_without_a_next_link_is_partial(
        profile: str) -> None:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, profile)

    def more(request: httpx.Request, body: Any) -> Any:
        if profile == "plain":
            return body | {"total": 5} if searched(request, "Condition") else None
        return batch_entry(request, body, "Condition", None,
                           lambda e: {**e, "resource": e["resource"] | {"total": 5}})

    result = await rewritten(conn, recorder, more).fetch(fetch_request(categories=CONDITIONS))
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["c1"]
    assert result.status_for(Category.CONDITIONS) is Status.PARTIAL


async def test_a_patient_search_whose_total_says_more_patients_is_invalid() -> None:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, "plain")
    conn = rewritten(conn, recorder, lambda r, body: body | {"total": 2}
                     if searched(r, "Patient") else None)
    with pytest.raises(UpstreamInvalidError, match="several patient records"):
        await conn.fetch(fetch_request(categories=CONDITIONS))


# -- 3. a failed entry fails only its categories; a failed privacy search the whole store -------

@pytest.mark.parametrize("profile", ["full", "batch", "plain"])
@pytest.mark.parametrize(("status", "expected"), [
    ("500 Internal Server Error", Status.UNAVAILABLE), ("400 Bad Request", Status.UNAVAILABLE),
    ("404 Not Found", Status.UNAVAILABLE)])
async def test_a_failed_search_fails_only_its_categories(profile: str, status: str,
                                                         expected: Status) -> None:
    held = [MINE, condition("c1", "Patient/p1"), document("d1"), consent("hlr", "Patient/p1")]
    conn, recorder = stores({"0301": held}, profile)
    code = int(status[:3])

    def fail(request: httpx.Request, body: Any) -> Any:
        if profile == "plain":
            return (httpx.Response(code, json={"resourceType": "OperationOutcome"})
                    if searched(request, "Condition") else None)
        return batch_entry(request, body, "Condition", None, lambda e: {
            "response": {"status": status}, "resource": {"resourceType": "OperationOutcome"}})

    result = await rewritten(conn, recorder, fail).fetch(fetch_request(categories=SOME))
    assert result.status_for(Category.CONDITIONS) is expected
    assert result.items[Category.CONDITIONS] == ()
    assert [d.id for d in result.items[Category.DOCUMENTS]] == ["d1"]
    assert [t.id for t in result.items[Category.TREATMENT_LIMITATIONS]] == ["hlr"]
    assert result.status_for(Category.DOCUMENTS) is Status.OK


PRIVACY_FAILURES = {
    "http-500": lambda e: {"response": {"status": "500"}},
    "outcome": lambda e: {**e, "resource": NOT_A_SEARCHSET["outcome-with-200"]},
    "truncated": lambda e: {**e, "resource": e["resource"] | {"total": 3}},
    "unreadable-consent": lambda e: {**e, "resource": e["resource"] | {"entry": [
        {"resource": consent("s", "Patient/p1", scope="patient-privacy")
         | {"provision": "deny everything"}, "search": {"mode": "match"}}], "total": 1}},
    "unreadable-actor": lambda e: {**e, "resource": e["resource"] | {"entry": [
        {"resource": consent("s", "Patient/p1", scope="patient-privacy")
         | {"provision": {"type": "deny", "actor": [{"reference": "HPR 9144901"}]}},
         "search": {"mode": "match"}}], "total": 1}},
    "no-scope": lambda e: {**e, "resource": e["resource"] | {"entry": [
        {"resource": consent("s", "Patient/p1") | {"scope": "privacy"},
         "search": {"mode": "match"}}], "total": 1}},
}


@pytest.mark.parametrize("kind", sorted(PRIVACY_FAILURES))
async def test_a_failed_privacy_search_withholds_every_category_of_that_store(
        kind: str) -> None:
    held = {"0301": [MINE, condition("c1", "Patient/p1"), document("d1")],
            "4601": [patient("b1", (FNR, NIN)), condition("b-c1", "Patient/b1")]}
    conn, recorder = stores(held, "batch")

    def fail(request: httpx.Request, body: Any) -> Any:
        if "/0301" not in request.url.path:
            return None
        return batch_entry(request, body, "Consent", "patient-privacy", PRIVACY_FAILURES[kind])

    conn = rewritten(conn, recorder, fail)
    # the store alone: nothing of it is shown, and the status says why
    with pytest.raises((UpstreamInvalidError, UpstreamUnavailableError)) as info:
        await conn.fetch(fetch_request(categories=SOME))
    assert "restrictions and blocks" in info.value.message
    # beside another store: only that store's records, PARTIAL with the reason
    result = await conn.fetch(fetch_request(categories=SOME,
                                            municipalities=frozenset({"0301", "4601"})))
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["b-c1"]
    assert result.items[Category.DOCUMENTS] == ()
    assert result.status_for(Category.CONDITIONS) is Status.PARTIAL
    assert result.status_for(Category.DOCUMENTS) is Status.PARTIAL
    assert result.detail is not None
    assert "'0301' did not answer" in result.detail


async def test_a_privacy_search_failing_in_plain_reads_withholds_the_store() -> None:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, "plain")
    conn = rewritten(conn, recorder, lambda r, body: httpx.Response(503)
                     if searched(r, "Consent", "patient-privacy") else None)
    with pytest.raises(UpstreamUnavailableError, match="restrictions and blocks"):
        await conn.fetch(fetch_request(categories=CONDITIONS))


async def test_a_later_page_that_fails_keeps_the_pages_that_came_as_partial() -> None:
    held = [MINE, *(condition(f"c{i}", "Patient/p1") for i in range(5))]
    conn, recorder = stores({"0301": held}, "paged")
    conn = rewritten(conn, recorder, lambda r, body: httpx.Response(500)
                     if "_offset=2" in str(r.url) else None)
    result = await conn.fetch(fetch_request(categories=CONDITIONS))
    assert sorted(c.id for c in result.items[Category.CONDITIONS]) == ["c0", "c1"]
    assert result.status_for(Category.CONDITIONS) is Status.PARTIAL


@pytest.mark.parametrize("labels", [
    [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": 5}],
    [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"}],
    ["R"], "R",
], ids=["code-a-number", "no-code", "a-string-label", "labels-a-string"])
async def test_a_record_whose_security_label_cannot_be_read_is_never_shown_unlabelled(
        labels: Any) -> None:
    """Read leniently, the label would vanish and a restricted (R) record would look
    unlabelled; it is an unreadable record instead."""
    garbled = document("doc-r", meta={"security": labels})
    conn, _ = stores({"0301": [MINE, garbled, document("doc-1")]}, "plain")
    result = await conn.fetch(fetch_request(categories=frozenset({Category.DOCUMENTS})))
    assert [d.id for d in result.items[Category.DOCUMENTS]] == ["doc-1"]
    assert result.status_for(Category.DOCUMENTS) is Status.PARTIAL
    assert result.reason_for(Category.DOCUMENTS).code == "UNREADABLE_RECORDS"  # type: ignore[union-attr]
