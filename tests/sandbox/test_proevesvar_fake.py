"""The simulated Pasientens prøvesvar, in-process (ASGITransport), and the connector against it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.base import AccessBasis, FetchRequest, Requester, SourceResult
from connectors.identifiers import make_nin
from connectors.model import Category, LabReport, Status
from connectors.proevesvar import ProevesvarConnector
from sandbox.proevesvar import PVK_OUTCOME_SYSTEM, Query, create_app, search_bundle
from sandbox.world import by_tag

BASE = "http://sandbox/proevesvar"
URL = "/proevesvar/DiagnosticReport/_search"
INCLUDES = {"_include": "DiagnosticReport:result", "_include:iterate": "Observation:has-member"}
HLR = by_tag("legevakt-hlr")
RESTRICTED = by_tag("restricted-lab")
MULTI = by_tag("multi-service")
LAB = frozenset({Category.LAB_RESULTS})


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Mount("/proevesvar", app=create_app())])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sandbox") as http:
        yield http


async def search(client: httpx.AsyncClient, nin: str, body: dict[str, str] | None = None,
                 **headers: str) -> httpx.Response:
    return await client.post(URL, data=body or {}, headers={"person-id": nin, **{
        k.replace("_", "-"): v for k, v in headers.items()}})


def resources(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == mode]


async def test_search_answers_a_nilar_searchset_for_the_legevakt_patient(
    client: httpx.AsyncClient,
) -> None:
    response = await search(client, HLR.nin, INCLUDES)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 1)
    [report] = resources(bundle, "match")
    assert report["resourceType"] == "DiagnosticReport"
    assert report["category"][0]["coding"][0]["system"] == "urn:oid:2.16.578.1.12.4.1.1.8202"
    assert report["category"][0]["coding"][0]["code"] == "LAB"
    assert report["subject"]["identifier"] == {"system": "urn:oid:2.16.578.1.12.4.1.4.1",
                                               "value": HLR.nin}
    assert report["performer"] == [{"display": "Fürst Medisinsk Laboratorium"}]
    observations = {o["id"]: o for o in resources(bundle, "include")}
    assert [r["reference"] for r in report["result"]] == [
        f"Observation/lab-a1-{n}" for n in (1, 2, 3, 4)]
    crp = observations["lab-a1-2"]
    assert crp["code"]["coding"][0] == {"system": "urn:oid:2.16.578.1.12.4.1.1.7280",
                                        "code": "NPU19748", "display": "P-CRP"}
    assert crp["valueQuantity"] == {"value": 87, "unit": "mg/L",
                                    "system": "http://unitsofmeasure.org", "code": "mg/L"}
    assert crp["referenceRange"] == [{"high": {"value": 5, "unit": "mg/L",
                                               "system": "http://unitsofmeasure.org",
                                               "code": "mg/L"}}]
    assert crp["interpretation"][0]["coding"][0]["code"] == "H"
    assert crp["interpretation"][0]["coding"][0]["system"] == "urn:oid:2.16.578.1.12.4.1.1.8244"
    panel = observations["lab-a1-4"]
    assert "valueQuantity" not in panel
    assert panel["hasMember"] == [{"reference": "Observation/lab-a1-4-1"},
                                  {"reference": "Observation/lab-a1-4-2"}]
    assert {"lab-a1-4-1", "lab-a1-4-2"} <= observations.keys()
    assert "interpretation" not in observations["lab-a1-4-1"]  # P-Natrium 138 is normal


@pytest.mark.parametrize(
    ("body", "observation_ids"),
    [
        ({}, []),
        ({"_include": "DiagnosticReport:result"},
         ["lab-a1-1", "lab-a1-2", "lab-a1-3", "lab-a1-4"]),
        (INCLUDES, ["lab-a1-1", "lab-a1-2", "lab-a1-3", "lab-a1-4", "lab-a1-4-1", "lab-a1-4-2"]),
    ],
)
async def test_includes_decide_which_observations_come_along(
    client: httpx.AsyncClient, body: dict[str, str], observation_ids: list[str]
) -> None:
    bundle = (await search(client, HLR.nin, body)).json()
    assert [o["id"] for o in resources(bundle, "include")] == observation_ids


@pytest.mark.parametrize(
    ("date_filter", "report_ids"),
    [
        ("gt2026-11-01", ["lab-d1"]),
        ("lt2026-11-01", ["lab-d2"]),
        ("eq2026-10-10", ["lab-d2"]),
        ("2026-11-18", ["lab-d1"]),
        ("gt2026-11-18", []),
        ("ge2026-10-10T07:30:00+02:00", ["lab-d1", "lab-d2"]),
    ],
)
async def test_date_filter_applies_to_the_effective_time(
    client: httpx.AsyncClient, date_filter: str, report_ids: list[str]
) -> None:
    bundle = (await search(client, MULTI.nin, {"date": date_filter})).json()
    assert [r["id"] for r in resources(bundle, "match")] == report_ids
    assert bundle["total"] == len(report_ids)


async def test_count_and_skip_paginate_with_total_and_links(client: httpx.AsyncClient) -> None:
    first = (await search(client, MULTI.nin, {"_count": "1"})).json()
    assert first["total"] == 2
    assert [r["id"] for r in resources(first, "match")] == ["lab-d1"]
    [next_link] = [link["url"] for link in first["link"] if link["relation"] == "next"]
    assert next_link.startswith(f"{BASE}/DiagnosticReport/_search?")
    assert "_skip=1" in next_link
    second = (await search(client, MULTI.nin, {"_count": "1", "_skip": "1"})).json()
    assert [r["id"] for r in resources(second, "match")] == ["lab-d2"]
    assert [link["relation"] for link in second["link"]] == ["self", "previous"]


async def test_restricted_patient_gets_a_specific_outcome_and_no_reports(
    client: httpx.AsyncClient,
) -> None:
    bundle = (await search(client, RESTRICTED.nin, INCLUDES, access_basis="UNNTAK")).json()
    assert bundle["total"] == 0
    assert resources(bundle, "match") == []
    assert resources(bundle, "include") == []
    [outcome] = resources(bundle, "outcome")
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["details"]["coding"][0]["system"] == PVK_OUTCOME_SYSTEM
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "Specific"


@pytest.mark.parametrize(
    ("access_basis", "opened"),
    [("UNNTAK", False), ("SAMTYKKE", False), ("FORHOYET_SAMTYKKE", True), ("AKUTT", True),
     ("FORHOYET_AKUTT", True)],
)
async def test_elevated_or_emergency_access_basis_opens_the_restriction(
    client: httpx.AsyncClient, access_basis: str, opened: bool
) -> None:
    bundle = (await search(client, RESTRICTED.nin, INCLUDES, access_basis=access_basis)).json()
    assert bool(resources(bundle, "match")) is opened
    [outcome] = resources(bundle, "outcome")
    codes = [i["details"]["coding"][0]["code"] for i in outcome["issue"]]
    assert codes == (["Specific", "Opened"] if opened else ["Specific"])


def test_reservation_is_never_opened() -> None:
    reserved = dataclasses.replace(HLR, pps_outcome="Reservation")
    bundle = search_bundle(reserved, Query(include_results=True), "FORHOYET_AKUTT", BASE, [])
    assert bundle["total"] == 0
    assert [e["search"]["mode"] for e in bundle["entry"]] == ["outcome"]
    assert bundle["entry"][0]["resource"]["issue"][0]["details"]["coding"][0]["code"] == (
        "Reservation")


async def test_unknown_patient_gets_an_empty_searchset(client: httpx.AsyncClient) -> None:
    stranger = make_nin(date(1980, 1, 1), 123) or make_nin(date(1980, 1, 1), 124)
    assert stranger is not None
    bundle = (await search(client, stranger, INCLUDES)).json()
    assert (bundle["total"], bundle["entry"]) == (0, [])


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"person-id": "14033841388"}, {}),  # mod-11 fails
        ({"person-id": "1403384138"}, {}),
        ({"person-id": HLR.nin, "access-basis": "NODRETT"}, {}),
        ({"person-id": HLR.nin}, {"_count": "-1"}),
        ({"person-id": HLR.nin}, {"date": "xx2026-01-01"}),
        ({"person-id": HLR.nin}, {"date": "gt2026-13-01"}),
    ],
)
async def test_bad_searches_get_400_operation_outcome_without_the_nin(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, str]
) -> None:
    response = await client.post(URL, data=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert headers["person-id"] not in response.text


async def test_missing_person_id_is_a_plaintext_400(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, data={})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


# -- round trip: the connector against the fake ------------------------------------------------


def lab_reports(result: SourceResult) -> list[LabReport]:
    reports = list(result.items[Category.LAB_RESULTS])
    assert all(isinstance(r, LabReport) for r in reports)
    return reports  # type: ignore[return-value]


def connector(client: httpx.AsyncClient, **kwargs: Any) -> ProevesvarConnector:
    return ProevesvarConnector(client, BASE, **kwargs)


def lab_request(nin: str, **kwargs: Any) -> FetchRequest:
    return FetchRequest(nin, LAB, requester=Requester(role_code="LE"), request_id="rt-1",
                        **kwargs)


async def test_round_trip_legevakt_patient_has_crp_87_flagged_abnormal(
    client: httpx.AsyncClient,
) -> None:
    result = await connector(client).fetch(lab_request(HLR.nin))
    assert result.status is Status.OK
    [report] = lab_reports(result)
    assert (report.id, report.code.code, report.performer) == (
        "lab-a1", "NOR09000", "Fürst Medisinsk Laboratorium")
    rows = [(r.code.code, r.value, r.unit, r.reference_range, r.abnormal, r.level)
            for r in report.results]
    assert rows == [
        ("NPU02319", "10.9", "g/dL", "13.4\u201317.0 g/dL", True, 0),
        ("NPU19748", "87", "mg/L", "≤ 5 mg/L", True, 0),
        ("NPU18016", "142", "umol/L", "60\u2013105 umol/L", True, 0),
        ("NOR05300", None, None, None, False, 0),
        ("NPU03230", "138", "mmol/L", "137\u2013145 mmol/L", False, 1),
        ("NPU03429", "4.1", "mmol/L", "3.5\u20135.0 mmol/L", False, 1),
    ]
    assert report.results[1].interpretation is not None
    assert report.results[1].interpretation.code == "H"


async def test_round_trip_restricted_lab_patient_is_restricted(
    client: httpx.AsyncClient,
) -> None:
    result = await connector(client).fetch(lab_request(RESTRICTED.nin))
    assert result.status is Status.RESTRICTED
    assert result.items[Category.LAB_RESULTS] == ()
    assert result.privacy.restricted is True
    assert result.privacy.restriction_opened is False


async def test_round_trip_emergency_opens_the_restricted_lab_patient(
    client: httpx.AsyncClient,
) -> None:
    result = await connector(client).fetch(
        lab_request(RESTRICTED.nin, access_basis=AccessBasis.AKUTT))
    assert result.status is Status.OK
    assert [r.id for r in lab_reports(result)] == ["lab-c1"]
    assert result.privacy.restriction_opened is True


async def test_round_trip_pages_through_and_since_is_inclusive(
    client: httpx.AsyncClient,
) -> None:
    paged = await connector(client, page_size=1).fetch(lab_request(MULTI.nin))
    assert [r.id for r in lab_reports(paged)] == ["lab-d1", "lab-d2"]
    assert paged.status is Status.OK
    since = await connector(client).fetch(lab_request(MULTI.nin, since=date(2026, 11, 18)))
    assert [r.id for r in lab_reports(since)] == ["lab-d1"]


async def test_round_trip_patient_without_lab_reports_is_empty(
    client: httpx.AsyncClient,
) -> None:
    result = await connector(client).fetch(lab_request(by_tag("no-data").nin))
    assert result.status is Status.EMPTY
    assert result.items[Category.LAB_RESULTS] == ()
