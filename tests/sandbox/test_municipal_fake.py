"""The simulated municipal stores, driven in-process through `httpx.ASGITransport`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.municipal import KOMMUNENUMMER, create_app
from sandbox.world import by_tag

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
TYPES = ("EpisodeOfCare", "Consent", "Condition", "MedicationAdministration",
         "DocumentReference")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as c:
        yield c


def batch(nin: str, *urls: str, system: str = FNR) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"{u}{'&' if '?' in u else '?'}"
                                             f"patient.identifier={system}|{nin}"}}
        for u in urls
    ]}


async def search_all(client: httpx.AsyncClient, store: str, nin: str, system: str = FNR
                     ) -> dict[str, list[dict[str, Any]]]:
    response = await client.post(f"/{store}", json=batch(nin, *TYPES, system=system))
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "batch-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["200 OK"] * len(TYPES)
    return {t: [x["resource"] for x in e["resource"].get("entry", [])]
            for t, e in zip(TYPES, body["entry"], strict=True)}


async def test_hlr_minus_consent_is_in_the_nursing_home_store(client: httpx.AsyncClient) -> None:
    patient = by_tag("legevakt-hlr")
    response = await client.post("/0301", json=batch(patient.nin, "Consent?scope=treatment"))
    (entry,) = response.json()["entry"]
    (consent,) = [e["resource"] for e in entry["resource"]["entry"]]
    assert consent["resourceType"] == "Consent"
    assert consent["id"] == "hlr-1"
    assert consent["scope"]["coding"][0]["code"] == "treatment"
    assert consent["category"][0]["coding"][0] == {
        "system": "http://snomed.info/sct", "code": "304253006",
        "display": "Ikke-gjenoppliving (HLR-minus)"}
    assert consent["provision"]["code"][0]["coding"][0]["code"] == "304253006"
    assert consent["dateTime"] == "2026-09-02T10:15:00+02:00"
    assert consent["performer"] == [{"display": "Sykehjemslege, Lindeberg sykehjem"}]
    assert consent["meta"]["tag"] == [{"system": KOMMUNENUMMER, "code": "0301"}]
    assert consent["meta"]["lastUpdated"]


async def test_every_resource_has_id_last_updated_and_store_tag(client: httpx.AsyncClient
                                                                ) -> None:
    found = await search_all(client, "0301", by_tag("legevakt-hlr").nin)
    assert {t: len(rs) for t, rs in found.items()} == {
        "EpisodeOfCare": 1, "Consent": 1, "Condition": 2, "MedicationAdministration": 3,
        "DocumentReference": 2}
    for resources in found.values():
        for r in resources:
            assert r["id"]
            assert r["meta"]["lastUpdated"]
            assert r["meta"]["tag"] == [{"system": KOMMUNENUMMER, "code": "0301"}]


async def test_confidential_document_is_labelled_restricted(client: httpx.AsyncClient) -> None:
    docs = (await search_all(client, "0301", by_tag("legevakt-hlr").nin))["DocumentReference"]
    labels = {d["id"]: d["meta"].get("security", []) for d in docs}
    assert labels["doc-a1"] == []
    assert labels["doc-a2"] == [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R",
        "display": "restricted"}]


async def test_service_has_volven_type_unit_and_phone(client: httpx.AsyncClient) -> None:
    services = (await search_all(client, "0301", by_tag("multi-service").nin))["EpisodeOfCare"]
    by_id = {s["id"]: s for s in services}
    assert sorted(by_id) == ["svc-d1", "svc-d2", "svc-d3", "svc-d4"]
    home = by_id["svc-d1"]
    assert home["type"][0]["coding"][0]["system"] == "urn:oid:2.16.578.1.12.4.1.1.9151"
    assert home["type"][0]["coding"][0]["code"] == "15"
    assert home["managingOrganization"]["identifier"]["value"] == "960000005"
    assert home["contained"][0]["telecom"][0]["value"] == "+47 21 80 33 00"
    assert by_id["svc-d4"]["status"] == "finished"
    assert by_id["svc-d4"]["period"] == {"start": "2026-10-01", "end": "2026-10-21"}


async def test_other_municipality_patient_is_only_in_bergen(client: httpx.AsyncClient) -> None:
    nin = by_tag("other-municipality").nin
    bergen = await search_all(client, "4601", nin)
    assert [r["id"] for r in bergen["EpisodeOfCare"]] == ["svc-e1"]
    assert [r["id"] for r in bergen["Consent"]] == ["tl-e1"]
    assert len(bergen["Condition"]) == 2
    for store in ("0301", "5001"):
        assert all(rs == [] for rs in (await search_all(client, store, nin)).values())


async def test_no_data_patient_gets_empty_searchsets(client: httpx.AsyncClient) -> None:
    found = await search_all(client, "0301", by_tag("no-data").nin, system=DNR)
    assert all(rs == [] for rs in found.values())


async def test_unknown_patient_is_empty_not_an_error(client: httpx.AsyncClient) -> None:
    found = await search_all(client, "0301", "12057900499")
    assert all(rs == [] for rs in found.values())


async def test_unknown_municipality_is_404_operation_outcome(client: httpx.AsyncClient) -> None:
    response = await client.post("/9999", json=batch(by_tag("no-data").nin, "Condition"))
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"patient.identifier": "14033841389"},
        {"patient.identifier": f"{FNR}|14033841388"},
        {"patient.identifier": f"http://example.org/ids|{by_tag('legevakt-hlr').nin}"},
    ],
    ids=["missing", "no-system", "bad-control-digits", "unknown-system"],
)
async def test_form_search_with_bad_identifier_is_400(
    client: httpx.AsyncClient, form: dict[str, str]
) -> None:
    response = await client.post("/0301/Condition/_search", data=form)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_form_search_answers_a_searchset(client: httpx.AsyncClient) -> None:
    nin = by_tag("legevakt-hlr").nin
    response = await client.post("/0301/Condition/_search",
                                 data={"patient.identifier": f"{FNR}|{nin}"},
                                 headers={"nhn-event-id": "e1", "nhn-source-system": "test"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    body = response.json()
    assert body["type"] == "searchset"
    assert sorted(e["resource"]["code"]["coding"][0]["code"] for e in body["entry"]) == [
        "K77", "P70"]


async def test_batch_entry_with_bad_identifier_fails_only_that_entry(
    client: httpx.AsyncClient
) -> None:
    nin = by_tag("legevakt-hlr").nin
    body = batch(nin, "Condition")
    body["entry"].append({"request": {"method": "GET", "url": "Condition?patient.identifier=x"}})
    response = await client.post("/0301", json=body)
    assert response.status_code == 200
    first, second = response.json()["entry"]
    assert first["response"]["status"] == "200 OK"
    assert second["response"]["status"] == "400 Bad Request"
    assert second["response"]["outcome"]["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "content",
    [b"not json", b'{"resourceType": "Bundle", "type": "transaction"}', b"[]"],
)
async def test_batch_that_is_not_a_batch_bundle_is_400(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post("/0301", content=content)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
