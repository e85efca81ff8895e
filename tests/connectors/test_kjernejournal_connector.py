"""The Kjernejournal connector over a mocked upstream, and a round trip against the sandbox."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from connectors.base import (
    AccessBasis,
    Connector,
    ConnectorSettings,
    FetchRequest,
    Requester,
    SourceResult,
)
from connectors.errors import (
    ConnectorConfigError,
    ConnectorError,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from connectors.kjernejournal import KjernejournalConnector, create
from connectors.model import (
    Category,
    CriticalInformation,
    CriticalType,
    Status,
    TreatmentLimitation,
)
from sandbox.app import create_app as create_sandbox
from sandbox.helseid import RESOURCES
from tests.sandbox_auth import caller_credentials

NIN = "09014412759"  # the multi-service patient
BASE = "http://kj.test/api/critical-information/v1"
ALL = frozenset({Category.CRITICAL_INFORMATION, Category.TREATMENT_LIMITATIONS})
Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]

ALLERGY = {"resourceType": "AllergyIntolerance", "id": "cave-d1", "meta": {"versionId": "1"},
           "verificationStatus": {"coding": [{"code": "confirmed"}]},
           "code": {"coding": [{"system": "http://snomed.info/sct", "code": "256349002",
                                "display": "Peanøtter"}]}}
CONSENT = {"resourceType": "Consent", "id": "hlr-1", "status": "active",
           "category": [{"coding": [{"code": "11"}]}],
           "provision": {"code": [{"coding": [{"system": "http://snomed.info/sct",
                                               "code": "304253006"}]}]}}


def status_body(*, reserved: bool = False, restricted: bool = False, any_blocked: bool = False,
                requester_blocked: bool = False) -> dict[str, Any]:
    return {"patientNIN": NIN, "hasCriticalInformation": True,
            "privacySettings": {"reserved": reserved, "restricted": restricted,
                                "blockedHealthPersonnelExists": any_blocked},
            "requesterBlocked": requester_blocked, "x-kj-gibberish-1a2b": {"z": 1}}


def bundle(*resources: dict[str, Any], outcome: dict[str, Any] | None = None) -> dict[str, Any]:
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    if outcome:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries,
            "x-kj-gibberish-9c9c": "?"}


def outcome(code: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "forbidden",
                       "details": {"coding": [{"code": code}]}}]}


class Upstream:
    """A mocked Kjernejournal: answers per path, records every request."""

    def __init__(self, status: dict[str, Any] | None = None,
                 searches: dict[str, httpx.Response] | None = None) -> None:
        self.status = status or status_body()
        self.searches = searches or {}
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.rsplit("/", 1)[-1]
        if path == "status":
            return httpx.Response(200, json=self.status)
        return self.searches.get(path, httpx.Response(200, json=bundle()))

    def paths(self) -> set[str]:
        return {r.url.path.rsplit("/", 1)[-1] for r in self.requests}


def connector_for(handler: Handler) -> KjernejournalConnector:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return create(ConnectorSettings("kjernejournal", base_url=BASE + "/"), http)


def fetch_request(categories: frozenset[Category] = ALL,
                  basis: AccessBasis = AccessBasis.SAMTYKKE,
                  timeout: float = 2.0) -> FetchRequest:
    return FetchRequest(
        patient_nin=NIN, categories=categories, access_basis=basis, timeout=timeout,
        requester=Requester(hpr_number="9144902", role_code="SP"), request_id="req-42",
    )


def test_connector_satisfies_the_protocol_and_serves_two_categories() -> None:
    connector = connector_for(Upstream())
    assert isinstance(connector, Connector)
    assert connector.name == "kjernejournal"
    assert connector.categories == ALL


def test_missing_base_url_fails_at_start() -> None:
    with pytest.raises(ConnectorConfigError, match="KILDE_CONNECTORS__KJERNEJOURNAL__BASE_URL"):
        create(ConnectorSettings("kjernejournal"), httpx.AsyncClient())


async def test_status_and_searches_are_sent_concurrently() -> None:
    # Each side waits for the other: a connector that sent them one after the other would hang.
    status_seen, search_seen = asyncio.Event(), asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status"):
            status_seen.set()
            await asyncio.wait_for(search_seen.wait(), 1)
            return httpx.Response(200, json=status_body())
        search_seen.set()
        await asyncio.wait_for(status_seen.wait(), 1)
        return httpx.Response(200, json=bundle(ALLERGY))

    result = await connector_for(handler).fetch(fetch_request())
    assert result.status is Status.OK
    assert [i.id for i in result.items[Category.CRITICAL_INFORMATION]] == ["cave-d1"]


@pytest.mark.parametrize(("categories", "paths"), [
    (ALL, {"status", "AllergyIntolerance", "Condition", "Flag", "Consent"}),
    (frozenset({Category.CRITICAL_INFORMATION}),
     {"status", "AllergyIntolerance", "Condition", "Flag"}),
    (frozenset({Category.TREATMENT_LIMITATIONS, Category.MEDICATIONS}), {"status", "Consent"}),
    (frozenset({Category.MEDICATIONS}), set()),
])
async def test_only_the_searches_for_requested_categories_are_sent(
    categories: frozenset[Category], paths: set[str]
) -> None:
    upstream = Upstream()
    result = await connector_for(upstream).fetch(fetch_request(categories))
    assert upstream.paths() == paths
    assert set(result.items) == categories & ALL


async def test_patient_number_travels_in_body_and_header_never_in_a_url() -> None:
    upstream = Upstream()
    await connector_for(upstream).fetch(fetch_request())
    assert len(upstream.requests) == 5
    for request in upstream.requests:
        assert NIN not in str(request.url)
        assert str(request.url).startswith(BASE + "/")
    status = next(r for r in upstream.requests if r.url.path.endswith("/status"))
    assert status.method == "POST"
    assert json.loads(status.content) == {"nin": NIN}
    searches = [r for r in upstream.requests if r is not status]
    assert {r.method for r in searches} == {"GET"}
    assert {r.headers["nhn-patient-nin"] for r in searches} == {NIN}


async def test_requester_and_access_basis_travel_in_nhn_headers() -> None:
    upstream = Upstream()
    await connector_for(upstream).fetch(fetch_request(basis=AccessBasis.FORHOYET_AKUTT))
    for request in upstream.requests:
        assert request.headers["nhn-access-basis"] == "FORHOYET_AKUTT"
        assert request.headers["nhn-user-hpr"] == "9144902"
        assert request.headers["nhn-event-id"] == "req-42"
        assert request.headers["nhn-source-system"] == "kilde"
        assert json.loads(unquote(request.headers["nhn-user-role"])) == {
            "system": "urn:oid:2.16.578.1.12.4.1.1.9060", "code": "SP"}


async def test_items_are_mapped_per_category() -> None:
    upstream = Upstream(searches={
        "AllergyIntolerance": httpx.Response(200, json=bundle(ALLERGY)),
        "Consent": httpx.Response(200, json=bundle(CONSENT)),
    })
    result = await connector_for(upstream).fetch(fetch_request())
    assert result.status is Status.OK
    assert result.privacy.reserved is False
    (allergy,) = result.items[Category.CRITICAL_INFORMATION]
    (limitation,) = result.items[Category.TREATMENT_LIMITATIONS]
    assert isinstance(allergy, CriticalInformation)
    assert isinstance(limitation, TreatmentLimitation)
    assert allergy.type is CriticalType.ALLERGY
    assert limitation.code.code == "304253006"
    assert limitation.provenance.fetched_at == allergy.provenance.fetched_at == result.fetched_at


async def test_reserved_patient_gives_reserved_without_items() -> None:
    upstream = Upstream(status_body(reserved=True), {
        "AllergyIntolerance": httpx.Response(200, json=bundle(outcome=outcome("Reservation")))})
    result = await connector_for(upstream).fetch(fetch_request())
    assert result.status is Status.RESERVED
    assert result.privacy.reserved is True
    assert result.items == {Category.CRITICAL_INFORMATION: (), Category.TREATMENT_LIMITATIONS: ()}
    assert result.status_for(Category.TREATMENT_LIMITATIONS) is Status.RESERVED


async def test_reservation_outcome_in_a_bundle_alone_means_reserved() -> None:
    upstream = Upstream(searches={
        "AllergyIntolerance": httpx.Response(200, json=bundle(ALLERGY, outcome=outcome(
            "Reservation")))})
    result = await connector_for(upstream).fetch(fetch_request())
    assert result.status is Status.RESERVED
    assert not any(result.items.values())


@pytest.mark.parametrize("requester_blocked", [True, False])
async def test_blocked_403_is_a_blocked_result_not_an_error(requester_blocked: bool) -> None:
    forbidden = httpx.Response(403, json=outcome("blocked"))
    upstream = Upstream(
        status_body(any_blocked=True, requester_blocked=requester_blocked),
        {p: forbidden for p in ("AllergyIntolerance", "Condition", "Flag", "Consent")},
    )
    result = await connector_for(upstream).fetch(fetch_request(basis=AccessBasis.FORHOYET_AKUTT))
    assert result.status is Status.BLOCKED
    assert result.privacy.any_blocked is True
    assert result.privacy.blocked_requester is requester_blocked
    assert not any(result.items.values())


async def test_status_saying_anyone_is_blocked_withholds_data_the_searches_returned() -> None:
    upstream = Upstream(status_body(any_blocked=True),
                        {"AllergyIntolerance": httpx.Response(200, json=bundle(ALLERGY))})
    result = await connector_for(upstream).fetch(fetch_request())
    assert result.status is Status.BLOCKED
    assert not any(result.items.values())


async def test_restricted_403_is_a_restricted_result() -> None:
    forbidden = httpx.Response(403, json=outcome("restricted"))
    upstream = Upstream(status_body(restricted=True),
                        {p: forbidden for p in ("AllergyIntolerance", "Condition", "Flag",
                                                "Consent")})
    result = await connector_for(upstream).fetch(fetch_request())
    assert result.status is Status.RESTRICTED
    assert (result.privacy.restricted, result.privacy.restriction_opened) == (True, False)
    assert result.detail is not None
    assert not any(result.items.values())


async def test_restriction_opened_with_akutt_returns_data_and_says_so() -> None:
    opened = {"nhn-restriction-opened": "true"}
    upstream = Upstream(status_body(restricted=True), {
        "AllergyIntolerance": httpx.Response(200, json=bundle(ALLERGY), headers=opened),
        "Condition": httpx.Response(200, json=bundle(), headers=opened),
        "Flag": httpx.Response(200, json=bundle(), headers=opened),
    })
    result = await connector_for(upstream).fetch(fetch_request(
        frozenset({Category.CRITICAL_INFORMATION}), basis=AccessBasis.AKUTT))
    assert {r.headers["nhn-access-basis"] for r in upstream.requests} == {"AKUTT"}
    assert result.status is Status.OK
    assert (result.privacy.restricted, result.privacy.restriction_opened) == (True, True)
    assert [i.id for i in result.items[Category.CRITICAL_INFORMATION]] == ["cave-d1"]


@pytest.mark.parametrize(("status", "body"), [
    (403, outcome("forbidden-scope")),
    (400, outcome("bad-request")),
    (401, {"error": "invalid_token"}),
])
async def test_other_4xx_is_rejected(status: int, body: dict[str, Any]) -> None:
    upstream = Upstream(searches={"Flag": httpx.Response(status, json=body)})
    with pytest.raises(UpstreamRejectedError) as caught:
        await connector_for(upstream).fetch(fetch_request())
    assert caught.value.status_code == status
    assert caught.value.source == "kjernejournal"


async def _raise_for(response: httpx.Response) -> ConnectorError:
    upstream = Upstream(searches={"Condition": response})
    with pytest.raises(ConnectorError) as caught:
        await connector_for(upstream).fetch(fetch_request())
    assert NIN not in str(caught.value)
    assert "/Condition" not in str(caught.value)
    return caught.value


async def test_500_is_upstream_unavailable() -> None:
    error = await _raise_for(httpx.Response(500, json=outcome("exception")))
    assert type(error) is UpstreamUnavailableError


@pytest.mark.parametrize("content", [
    b'{"resourceType": "Bundle", "entry": [ {"resource": <<<not json',
    b'{"resourceType": "Patient"}',
    b'{"resourceType": "Bundle", "entry": {"resource": {}}}',
    b'{"resourceType": "Bundle", "entry": ["no resource"]}',
])
async def test_garbage_is_upstream_invalid(content: bytes) -> None:
    error = await _raise_for(httpx.Response(200, content=content))
    assert type(error) is UpstreamInvalidError


async def test_a_failing_status_call_ends_the_searches_and_is_the_error() -> None:
    """/status runs in the fetch's own task, the searches beside it: its failure cancels them
    (none is left running after fetch() returns) and is the error raised."""
    cancelled: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.rsplit("/", 1)[-1]
        if path == "status":
            await asyncio.sleep(0.01)
            return httpx.Response(500, json=outcome("exception"))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(path)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    with pytest.raises(UpstreamUnavailableError, match="HTTP 500"):
        await connector_for(handler).fetch(fetch_request())
    assert sorted(cancelled) == ["AllergyIntolerance", "Condition", "Consent", "Flag"]


async def test_a_failing_search_ends_a_status_call_still_waiting_and_is_the_error() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status"):
            await asyncio.sleep(30)
        return httpx.Response(400, json=outcome("bad-request"))

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamRejectedError, match="HTTP 400"):
        await connector_for(handler).fetch(fetch_request())
    assert loop.time() - started < 1.0


async def test_a_status_body_that_is_not_an_object_is_upstream_invalid() -> None:
    with pytest.raises(UpstreamInvalidError):
        await connector_for(Upstream(status=[1, 2])).fetch(fetch_request())  # type: ignore[arg-type]


async def test_httpx_timeout_is_upstream_timeout() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(UpstreamTimeoutError):
        await connector_for(handler).fetch(fetch_request())


async def test_a_hanging_search_times_out_within_the_budget() -> None:
    upstream = Upstream()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Consent"):
            await asyncio.sleep(30)
        return await upstream(request)

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeoutError):
        await connector_for(handler).fetch(fetch_request(timeout=0.1))
    assert loop.time() - started < 1.0


async def test_an_unreadable_record_gives_partial_and_keeps_the_rest() -> None:
    broken = {"resourceType": "AllergyIntolerance", "id": "cave-x", "reaction": 7}
    upstream = Upstream(searches={
        "AllergyIntolerance": httpx.Response(200, json=bundle(ALLERGY, broken))})
    result = await connector_for(upstream).fetch(fetch_request())
    assert result.status_for(Category.CRITICAL_INFORMATION) is Status.PARTIAL
    reason = result.reason_for(Category.CRITICAL_INFORMATION)
    assert reason is not None
    assert reason.code == "UNREADABLE_RECORDS"
    assert reason.detail == "Source 'kjernejournal' sent 1 record Kilde could not read; not shown."
    assert [i.id for i in result.items[Category.CRITICAL_INFORMATION]] == ["cave-d1"]
    # the other category is not touched by it
    assert result.status_for(Category.TREATMENT_LIMITATIONS) is not Status.PARTIAL
    assert result.reason_for(Category.TREATMENT_LIMITATIONS) is None


@pytest.mark.parametrize("unreadable", [
    {"resourceType": "AllergyIntolerance", "id": "cave-x", "reaction": 7},
    {"resourceType": "AllergyIntolerance", "code": {"text": "no id"}},
    {"resourceType": "Observation", "id": "o-1"},  # a match of a type not asked for
], ids=["wrong-type-field", "no-id", "other-type"])
async def test_only_unreadable_records_give_invalid_never_empty(unreadable: dict[str, Any]
                                                                 ) -> None:
    upstream = Upstream(searches={
        "AllergyIntolerance": httpx.Response(200, json=bundle(unreadable))})
    result = await connector_for(upstream).fetch(fetch_request(
        categories=frozenset({Category.CRITICAL_INFORMATION})))
    assert result.status_for(Category.CRITICAL_INFORMATION) is Status.INVALID
    assert not result.items[Category.CRITICAL_INFORMATION]


async def test_a_total_above_what_the_bundle_holds_is_partial() -> None:
    short = {**bundle(ALLERGY), "total": 3}
    upstream = Upstream(searches={"AllergyIntolerance": httpx.Response(200, json=short)})
    result = await connector_for(upstream).fetch(fetch_request())
    assert result.status_for(Category.CRITICAL_INFORMATION) is Status.PARTIAL
    assert [i.id for i in result.items[Category.CRITICAL_INFORMATION]] == ["cave-d1"]


@pytest.mark.parametrize("body", [
    {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]},
    {"resourceType": "Bundle", "type": "collection", "entry": []},
    {"resourceType": "Bundle", "entry": []},
], ids=["outcome-200", "collection", "no-type"])
async def test_a_search_answered_with_no_searchset_is_invalid(body: dict[str, Any]) -> None:
    upstream = Upstream(searches={"AllergyIntolerance": httpx.Response(200, json=body)})
    with pytest.raises(UpstreamInvalidError):
        await connector_for(upstream).fetch(fetch_request())


async def test_entered_in_error_records_are_dropped() -> None:
    deleted = {**ALLERGY, "id": "cave-old",
               "verificationStatus": {"coding": [{"code": "entered-in-error"}]}}
    upstream = Upstream(searches={
        "AllergyIntolerance": httpx.Response(200, json=bundle(ALLERGY, deleted))})
    result = await connector_for(upstream).fetch(fetch_request())
    assert result.status is Status.OK
    assert [i.id for i in result.items[Category.CRITICAL_INFORMATION]] == ["cave-d1"]


# -- round trip: connector -> sandbox fake ------------------------------------------------------


async def _sandbox_fetch(request: FetchRequest,
                         faults: dict[str, Any] | None = None) -> SourceResult:
    app = create_sandbox({})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sandbox") as http:
        if faults:
            answer = await http.put("/_sandbox/faults/kjernejournal", json=faults)
            assert answer.status_code == 200
        resource, scope = RESOURCES["kjernejournal"]
        connector = create(ConnectorSettings("kjernejournal",
                                             base_url="http://sandbox/kjernejournal",
                                             audience=resource, scope=scope), http)
        credentials = caller_credentials(app, http, "http://sandbox", patient=request.patient_nin)
        return await connector.fetch(dataclasses.replace(request, credentials=credentials))


async def test_round_trip_multi_service_patient_has_peanut_allergy_and_atrial_fibrillation() -> None:
    result = await _sandbox_fetch(FetchRequest(
        patient_nin=NIN, categories=ALL, access_basis=AccessBasis.SAMTYKKE,
        requester=Requester(hpr_number="9144901", role_code="LE"), request_id="rt-1"))
    assert result.status is Status.OK
    assert result.privacy.any_blocked is False
    items = {i.id: i for i in result.items[Category.CRITICAL_INFORMATION]}
    assert set(items) == {"cave-d1", "crit-d1"}
    peanut, fibrillation = items["cave-d1"], items["crit-d1"]
    assert isinstance(peanut, CriticalInformation)
    assert isinstance(fibrillation, CriticalInformation)
    assert peanut.type is CriticalType.ALLERGY
    assert (peanut.code.code, peanut.code.display) == ("256349002", "Peanøtter")
    assert (peanut.severity, peanut.reaction) == ("severe", "Angioødem")
    assert fibrillation.type is CriticalType.CRITICAL_CONDITION
    assert fibrillation.code.code == "I48"
    assert fibrillation.provenance.record_id == "crit-d1/1"
    assert result.items[Category.TREATMENT_LIMITATIONS] == []


async def test_round_trip_blocked_patient_is_blocked_even_in_an_emergency() -> None:
    result = await _sandbox_fetch(FetchRequest(
        patient_nin="24086642650", categories=ALL, access_basis=AccessBasis.FORHOYET_AKUTT,
        requester=Requester(hpr_number="9144901", role_code="LE")))
    assert result.status is Status.BLOCKED
    assert (result.privacy.blocked_requester, result.privacy.any_blocked) == (True, True)


async def test_round_trip_garbage_fault_is_upstream_invalid() -> None:
    with pytest.raises(UpstreamInvalidError):
        await _sandbox_fetch(fetch_request(), faults={"mode": "garbage"})


@pytest.mark.parametrize("subject", [
    {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": "14033841389"}},
    {"identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": 7}},
    {"identifier": "someone"},
], ids=["another-number", "unreadable-value", "unreadable-identifier"])
async def test_a_record_naming_another_patient_makes_the_answer_invalid(
        subject: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    theirs = {**ALLERGY, "id": "cave-x", "patient": subject}
    upstream = Upstream(searches={
        "AllergyIntolerance": httpx.Response(200, json=bundle(ALLERGY, theirs))})
    with pytest.raises(UpstreamInvalidError, match="another patient"):
        await connector_for(upstream).fetch(fetch_request())
    assert not any("14033841389" in r.getMessage() or NIN in r.getMessage()
                   for r in caplog.records)


async def test_a_record_naming_the_patient_with_whitespace_is_theirs() -> None:
    mine = {**ALLERGY, "patient": {"identifier": {"value": f" {NIN} "}}}
    upstream = Upstream(searches={"AllergyIntolerance": httpx.Response(200, json=bundle(mine))})
    result = await connector_for(upstream).fetch(fetch_request())
    assert [i.id for i in result.items[Category.CRITICAL_INFORMATION]] == ["cave-d1"]
