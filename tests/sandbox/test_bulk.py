"""The `items` knob: N extra synthetic records for the multi-service patient, per source."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from connectors.base import AccessBasis
from connectors.medication.sfm import build_parameters
from sandbox.app import create_app
from sandbox.world import by_tag
from tests.sandbox_auth import sandbox_auth

MULTI = by_tag("multi-service").nin
OTHER = by_tag("legevakt-hlr").nin
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"


def _client(environ: Mapping[str, str] | None = None) -> httpx.AsyncClient:
    app = create_app(environ or {})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox",
                             auth=sandbox_auth(app))


@pytest.fixture
async def sandbox() -> AsyncIterator[httpx.AsyncClient]:
    async with _client() as client:
        yield client


def _matches(bundle: dict[str, Any], resource_type: str) -> int:
    return sum(1 for e in bundle.get("entry", [])
               if e.get("resource", {}).get("resourceType") == resource_type)


async def count(client: httpx.AsyncClient, source: str, nin: str = MULTI) -> int:
    """How many records of its own kind `source` answers for `nin`."""
    if source == "municipal":
        batch = {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {
            "method": "GET", "url": f"EpisodeOfCare?patient.identifier={FNR}|{nin}"}}]}
        body = (await client.post("/municipal/0301", json=batch)).json()
        return _matches(body["entry"][0]["resource"], "EpisodeOfCare")
    if source == "kjernejournal":
        response = await client.get("/kjernejournal/AllergyIntolerance", headers={
            "nhn-patient-nin": nin, "nhn-access-basis": "AKUTT"})
        return _matches(response.json(), "AllergyIntolerance")
    if source in ("pll", "eresept"):
        response = await client.post(f"/{source}/Patient/$getMedication",
                                     json=build_parameters(nin, AccessBasis.AKUTT))
        bundle = response.json()["parameter"][0]["resource"]
        return _matches(bundle, "MedicationStatement")
    response = await client.post("/proevesvar/DiagnosticReport/_search",
                                 data={"_count": "100"}, headers={"person-id": nin})
    return int(response.json()["total"])


SOURCES = ("municipal", "kjernejournal", "pll", "eresept", "proevesvar")


@pytest.mark.parametrize("source", SOURCES)
async def test_items_set_at_run_time_add_that_many_records_to_the_multi_service_patient(
    sandbox: httpx.AsyncClient, source: str
) -> None:
    before = {s: await count(sandbox, s) for s in SOURCES}
    response = await sandbox.put(f"/_sandbox/faults/{source}", json={"items": 40})
    assert response.json()["items"] == 40
    after = {s: await count(sandbox, s) for s in SOURCES}
    # PLL and e-resept render statements for both sections from one medication list.
    factor = 2 if source in ("pll", "eresept") else 1
    assert after[source] == before[source] + factor * 40
    assert {s: n for s, n in after.items() if s != source} == {
        s: n for s, n in before.items() if s != source}


async def test_items_from_the_environment_leave_other_patients_as_they_are() -> None:
    async with _client({"KILDE_SANDBOX__MUNICIPAL__ITEMS": "25"}) as client:
        async with _client() as plain:
            assert await count(client, "municipal") == await count(plain, "municipal") + 25
            assert await count(client, "municipal", OTHER) == await count(plain, "municipal",
                                                                          OTHER)


@pytest.mark.parametrize("value", [-1, 1.5, "many"])
async def test_items_must_be_a_whole_number_not_below_zero(
    sandbox: httpx.AsyncClient, value: object
) -> None:
    response = await sandbox.put("/_sandbox/faults/pll", json={"items": value})
    assert response.status_code == 400
    assert (await sandbox.get("/_sandbox/faults/pll")).json()["items"] == 0
