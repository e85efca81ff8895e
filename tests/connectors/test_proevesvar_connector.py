"""The proevesvar connector against a scripted upstream (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.base import (
    AccessBasis,
    ConnectorSettings,
    FetchRequest,
    Requester,
    SourceResult,
)
from connectors.errors import (
    ConnectorConfigError,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from connectors.model import Category, LabReport, Status
from connectors.proevesvar import ProevesvarConnector, create

NIN = "14033841389"
BASE = "https://pps.test/api/v2"
NLK = "urn:oid:2.16.578.1.12.4.1.1.7280"
PVK = "http://nhn.no/fhir/nilar/CodeSystem/PvkOutcome"
LAB = frozenset({Category.LAB_RESULTS})

Handler = Callable[[httpx.Request], httpx.Response]


def lab_reports(result: SourceResult) -> list[LabReport]:
    reports = list(result.items[Category.LAB_RESULTS])
    assert all(isinstance(r, LabReport) for r in reports)
    return reports  # type: ignore[return-value]


def fetch_request(**kwargs: Any) -> FetchRequest:
    return FetchRequest(**{"patient_nin": NIN, "categories": LAB, "request_id": "req-1",
                           "timeout": 1.0, **kwargs})


def connector(handler: Any, **kwargs: Any) -> ProevesvarConnector:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ProevesvarConnector(http, BASE, **kwargs)


def form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode())


def report_entry(report_id: str, effective: str) -> dict[str, Any]:
    return {"resource": {
        "resourceType": "DiagnosticReport", "id": report_id, "status": "final",
        "code": {"coding": [{"system": NLK, "code": "NOR09000"}]},
        "effectiveDateTime": effective, "issued": effective,
        "result": [{"reference": f"Observation/{report_id}-1"}],
    }, "search": {"mode": "match"}}


def crp_entry(report_id: str) -> dict[str, Any]:
    return {"resource": {
        "resourceType": "Observation", "id": f"{report_id}-1", "status": "final",
        "code": {"coding": [{"system": NLK, "code": "NPU19748", "display": "P-CRP"}]},
        "valueQuantity": {"value": 87, "unit": "mg/L"},
        "interpretation": [{"coding": [{"system": "urn:oid:2.16.578.1.12.4.1.1.8244",
                                        "code": "H"}]}],
    }, "search": {"mode": "include"}}


def outcome_entry(*codes: str) -> dict[str, Any]:
    return {"resource": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "suppressed",
         "details": {"coding": [{"system": PVK, "code": c}]}} for c in codes]},
        "search": {"mode": "outcome"}}


def bundle(entries: list[dict[str, Any]], total: int | None = None,
           next_skip: int | None = None) -> dict[str, Any]:
    links = []
    if next_skip is not None:
        links.append({"relation": "next",
                      "url": f"{BASE}/DiagnosticReport/_search?_count=1&_skip={next_skip}"})
    return {"resourceType": "Bundle", "type": "searchset",
            "total": len(entries) if total is None else total, "link": links, "entry": entries}


def paged(reports: list[tuple[str, str]], seen: list[httpx.Request]) -> Handler:
    """An upstream serving one report per page, with `next` links by `_skip`."""
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        skip = int(form(request).get("_skip", ["0"])[0])
        report_id, effective = reports[skip]
        more = skip + 1 if skip + 1 < len(reports) else None
        return httpx.Response(200, json=bundle(
            [report_entry(report_id, effective), crp_entry(report_id)], len(reports), more))
    return handler


async def test_fetch_posts_the_search_form_with_the_patient_only_in_a_header() -> None:
    seen: list[httpx.Request] = []
    c = connector(paged([("r1", "2026-11-20T07:45:00+01:00")], seen))
    await c.fetch(fetch_request(
        since=date(2026, 11, 1), access_basis=AccessBasis.SAMTYKKE,
        requester=Requester(hpr_number="9144901", role_code="LE"),
    ))
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/DiagnosticReport/_search"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(request) == {
        "_include": ["DiagnosticReport:result"],
        "_include:iterate": ["Observation:has-member"],
        "_count": ["50"],
        "date": ["gt2026-10-31"],  # the day before: `since` is inclusive
    }
    assert request.headers["person-id"] == NIN
    assert request.headers["access-basis"] == "SAMTYKKE"
    assert request.headers["requester-hpr-role"] == "LE"
    assert request.headers["correlation-id"] == "req-1"
    assert NIN not in str(request.url)
    assert NIN.encode() not in request.content


async def test_fetch_without_since_or_role_sends_neither() -> None:
    seen: list[httpx.Request] = []
    await connector(paged([("r1", "2026-11-20")], seen)).fetch(fetch_request(request_id=""))
    assert "date" not in form(seen[0])
    assert "requester-hpr-role" not in seen[0].headers
    assert seen[0].headers["access-basis"] == "UNNTAK"
    assert len(seen[0].headers["correlation-id"]) == 32  # generated when the caller has none


async def test_fetch_maps_reports_and_flags_abnormal_results() -> None:
    result = await connector(paged([("r1", "2026-11-20T07:45:00+01:00")], [])).fetch(
        fetch_request())
    assert result.status is Status.OK
    [report] = lab_reports(result)
    assert report.provenance.record_id == "r1"
    [crp] = report.results
    assert (crp.code.code, crp.value, crp.unit, crp.abnormal) == ("NPU19748", "87", "mg/L", True)


async def test_fetch_follows_skip_pagination_and_sorts_newest_first() -> None:
    seen: list[httpx.Request] = []
    reports = [("a", "2026-09-01"), ("c", "2026-11-01"), ("b", "2026-10-01")]
    result = await connector(paged(reports, seen), page_size=1).fetch(fetch_request())
    assert [form(r).get("_skip") for r in seen] == [None, ["1"], ["2"]]
    assert all(form(r)["_count"] == ["1"] for r in seen)
    assert [r.id for r in lab_reports(result)] == ["c", "b", "a"]
    assert result.status is Status.OK


async def test_fetch_stops_at_max_pages_and_says_partial() -> None:
    seen: list[httpx.Request] = []
    reports = [(f"r{i}", f"2026-10-0{i + 1}") for i in range(4)]
    result = await connector(paged(reports, seen), page_size=1, max_pages=2).fetch(
        fetch_request())
    assert len(seen) == 2
    assert result.status is Status.PARTIAL
    assert [r.id for r in lab_reports(result)] == ["r1", "r0"]
    assert result.detail == "Only the first 2 pages of lab reports were fetched."


async def test_fetch_keeps_earlier_pages_when_a_later_page_fails() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "_skip" in form(request):
            return httpx.Response(503)
        return httpx.Response(200, json=bundle(
            [report_entry("r1", "2026-11-01"), crp_entry("r1")], 2, 1))
    result = await connector(handler, page_size=1).fetch(fetch_request())
    assert result.status is Status.PARTIAL
    assert [r.id for r in lab_reports(result)] == ["r1"]
    assert result.detail == "Later pages of lab reports could not be fetched."


async def test_next_link_that_does_not_advance_is_not_followed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=bundle(
            [report_entry("r1", "2026-11-01"), crp_entry("r1")], 5, 0))
    result = await connector(handler).fetch(fetch_request())
    assert len(seen) == 1
    assert result.status is Status.PARTIAL
    assert [r.id for r in lab_reports(result)] == ["r1"]


async def test_specific_outcome_is_restricted_without_items() -> None:
    result = await connector(
        lambda r: httpx.Response(200, json=bundle([outcome_entry("Specific")], 0))
    ).fetch(fetch_request())
    assert result.status is Status.RESTRICTED
    assert result.items == {Category.LAB_RESULTS: ()}
    assert result.privacy.restricted is True
    assert result.privacy.restriction_opened is False
    assert result.status_for(Category.LAB_RESULTS) is Status.RESTRICTED


async def test_restriction_opened_with_akutt_serves_items_and_says_so() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["access-basis"] not in ("AKUTT", "FORHOYET_AKUTT"):
            return httpx.Response(200, json=bundle([outcome_entry("Specific")], 0))
        return httpx.Response(200, json=bundle([
            report_entry("r1", "2026-11-01"), crp_entry("r1"),
            outcome_entry("Specific", "Opened"),
        ], 1))
    result = await connector(handler).fetch(fetch_request(access_basis=AccessBasis.AKUTT))
    assert result.status is Status.OK
    assert [r.id for r in lab_reports(result)] == ["r1"]
    assert result.privacy.restricted is True
    assert result.privacy.restriction_opened is True


async def test_reservation_outcome_is_reserved() -> None:
    result = await connector(
        lambda r: httpx.Response(200, json=bundle([outcome_entry("Reservation")], 0))
    ).fetch(fetch_request(access_basis=AccessBasis.FORHOYET_AKUTT))
    assert result.status is Status.RESERVED
    assert result.items == {Category.LAB_RESULTS: ()}
    assert result.privacy.reserved is True


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(400, text="Missing required header: person-id"), UpstreamRejectedError),
        (httpx.Response(401, json={"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "login", "diagnostics": "Invalid token"}]}),
         UpstreamRejectedError),
        (httpx.Response(503, text="down"), UpstreamUnavailableError),
        (httpx.Response(200, text='{"resourceType": "Bundle", <<<'), UpstreamInvalidError),
        (httpx.Response(200, json={"resourceType": "OperationOutcome"}), UpstreamInvalidError),
    ],
)
async def test_upstream_failures_become_connector_errors_without_personal_data(
    response: httpx.Response, error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        await connector(lambda r: response).fetch(fetch_request())
    assert NIN not in str(caught.value)
    assert "/DiagnosticReport" not in str(caught.value)
    if isinstance(caught.value, UpstreamRejectedError):
        assert caught.value.status_code == response.status_code


async def test_transport_timeout_is_upstream_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)
    with pytest.raises(UpstreamTimeoutError):
        await connector(handler).fetch(fetch_request())


async def test_slow_upstream_is_cut_at_the_request_timeout() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=bundle([]))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeoutError):
        await connector(handler).fetch(fetch_request(timeout=0.05))
    assert loop.time() - started < 1.0


async def test_other_categories_make_no_request() -> None:
    seen: list[httpx.Request] = []
    result = await connector(paged([("r1", "2026-11-01")], seen)).fetch(
        fetch_request(categories=frozenset({Category.MEDICATIONS})))
    assert seen == []
    assert result.status is Status.EMPTY


async def test_create_reads_settings_and_rejects_bad_ones() -> None:
    async with httpx.AsyncClient() as http:
        built = create(ConnectorSettings("proevesvar", BASE + "/",
                                         options={"page_size": "10", "max_pages": 3}), http)
        assert (built.search_url, built.page_size, built.max_pages) == (
            f"{BASE}/DiagnosticReport/_search", 10, 3)
        assert built.name == "proevesvar"
        assert built.categories == LAB
        with pytest.raises(ConnectorConfigError, match="BASE_URL"):
            create(ConnectorSettings("proevesvar"), http)
        with pytest.raises(ConnectorConfigError, match="PAGE_SIZE"):
            create(ConnectorSettings("proevesvar", BASE, options={"page_size": "many"}), http)


def test_entry_point_is_registered() -> None:
    [ep] = [e for e in importlib.metadata.entry_points(group="kilde.connectors")
            if e.name == "proevesvar"]
    assert ep.load() is create


def _answer(body: dict[str, Any]) -> Any:
    return lambda request: httpx.Response(200, json=body)


@pytest.mark.parametrize("which", ["DiagnosticReport", "Observation"])
async def test_a_report_naming_another_patient_makes_the_answer_invalid(which: str) -> None:
    report, result = report_entry("r1", "2026-11-20T07:45:00+01:00"), crp_entry("r1")
    entry = report if which == "DiagnosticReport" else result
    entry["resource"]["subject"] = {"identifier": {"value": "09014412759"}}
    with pytest.raises(UpstreamInvalidError, match="another patient"):
        await connector(_answer(bundle([report, result], total=1))).fetch(fetch_request())


async def test_only_unreadable_reports_are_invalid_never_empty() -> None:
    broken = report_entry("r1", "2026-11-20T07:45:00+01:00")
    broken["resource"]["resourceType"] = "DiagnosticReprot"
    result = await connector(_answer(bundle([broken], total=1))).fetch(fetch_request())
    assert result.status_for(Category.LAB_RESULTS) is Status.INVALID
    reason = result.reason_for(Category.LAB_RESULTS)
    assert reason is not None
    assert reason.code == "UNREADABLE_RECORDS"


async def test_a_total_above_the_reports_sent_is_partial() -> None:
    entries = [report_entry("r1", "2026-11-20T07:45:00+01:00"), crp_entry("r1")]
    result = await connector(_answer(bundle(entries, total=4))).fetch(fetch_request())
    assert [r.id for r in lab_reports(result)] == ["r1"]
    assert result.status_for(Category.LAB_RESULTS) is Status.PARTIAL


async def test_an_answer_that_is_no_searchset_is_invalid() -> None:
    body = {**bundle([]), "type": "collection"}
    with pytest.raises(UpstreamInvalidError):
        await connector(_answer(body)).fetch(fetch_request())


async def test_a_source_that_ignores_include_is_partial_not_complete() -> None:
    """The results of a report come by `_include`; a source that does not honour it sends the
    reports alone: they are shown, and the answer says results are missing."""
    entries = [report_entry("r1", "2026-11-20T07:45:00+01:00")]
    result = await connector(_answer(bundle(entries, total=1))).fetch(fetch_request())
    assert [r.id for r in lab_reports(result)] == ["r1"]
    assert result.status_for(Category.LAB_RESULTS) is Status.PARTIAL
    assert result.detail is not None
    assert "missing" in result.detail
