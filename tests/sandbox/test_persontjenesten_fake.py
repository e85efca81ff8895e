"""The registry fake: every scenario patient has an entry built from the world (home, death),
a number it does not know is 404, and a malformed request is 400 without the number in it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox.app import create_app
from sandbox.world import PATIENTS, by_tag

URL = "/persontjenesten/api/legal-basis/person/get-by-nin"
PARTS = [("informationParts", p) for p in ("Name", "Birth", "Status", "Death",
                                            "ResidentialAddress")]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app({"KILDE_SANDBOX__REQUIRE_TOKENS": "false"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sandbox") as client:
        yield client


async def lookup(http: httpx.AsyncClient, nin: str, params: list[tuple[str, str]] | None = None,
                 **kw: object) -> httpx.Response:
    query = params if params is not None else [*PARTS, ("api-version", "3")]
    return await http.post(URL, params=query, data={"nin": nin}, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("patient", PATIENTS, ids=lambda p: p.tags[-1])
async def test_every_scenario_patient_has_a_registry_entry_unless_marked_otherwise(
        http: httpx.AsyncClient, patient: object) -> None:
    r = await lookup(http, patient.nin)  # type: ignore[attr-defined]
    if not patient.in_registry:  # type: ignore[attr-defined]
        assert r.status_code == 404
        return
    assert r.status_code == 200
    doc = r.json()
    current = [a for a in doc["residentialAddress"] if a["isValid"]]
    assert [a["streetAddress"]["municipalityNumber"] for a in current] == [
        patient.municipality]  # type: ignore[attr-defined]
    assert ("death" in doc) is (patient.deceased is not None)  # type: ignore[attr-defined]
    assert "norwegianIdentificationNumber" not in doc  # not asked for, not sent


async def test_a_deceased_patient_has_a_death_and_the_status_deceased(
        http: httpx.AsyncClient) -> None:
    doc = (await lookup(http, by_tag("deceased").nin)).json()
    assert doc["death"]["deceasedDate"].startswith("2026-11-20")
    assert [s["status"] for s in doc["status"] if s["isValid"]] == ["Deceased"]


@pytest.mark.parametrize(("params", "nin", "problem"), [
    ([*PARTS], "12054130021", "api-version"),
    ([("api-version", "9"), *PARTS], "12054130021", "api-version"),
    ([("api-version", "3")], "12054130021", "informationParts"),
    ([("api-version", "3"), ("informationParts", "Secrets")], "12054130021", "unknown"),
    ([("api-version", "3"), *PARTS], "12054130020", "not a valid"),
])
async def test_a_malformed_request_is_400_and_names_the_problem_not_the_number(
        http: httpx.AsyncClient, params: list[tuple[str, str]], nin: str, problem: str) -> None:
    r = await lookup(http, nin, params)
    assert r.status_code == 400
    assert problem in r.json()["detail"]
    assert nin not in r.text


async def test_the_number_must_come_in_a_form_body(http: httpx.AsyncClient) -> None:
    r = await http.post(URL, params=[*PARTS, ("api-version", "3")],
                        json={"nin": by_tag("holiday").nin})
    assert r.status_code == 400
