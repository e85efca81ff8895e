"""The simulated municipal stores, driven in-process through `httpx.ASGITransport`: a store
that behaves like a real FHIR server (Patients, literal references, capability profiles,
strict/lenient handling, paging, _include)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
import pytest

from sandbox import world
from sandbox.fhirsearch import PROFILES, StoreProfile
from sandbox.municipal import KOMMUNENUMMER, create_app, profile_from_env
from sandbox.municipal_records import SOURCE_TAG, patient_id, patient_records
from sandbox.world import by_tag

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
TYPES = ("EpisodeOfCare", "Consent", "Condition", "MedicationAdministration",
         "DocumentReference", "AllergyIntolerance", "Flag")
STRICT = {"prefer": "handling=strict"}


def client_for(profile: StoreProfile) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(profile))
    return httpx.AsyncClient(transport=transport, base_url="http://sandbox")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(PROFILES["full"]) as c:
        yield c


def resources(bundle: dict[str, Any], mode: str = "match") -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode") == mode]


async def resolve(client: httpx.AsyncClient, store: str, nin: str, system: str = FNR
                  ) -> list[dict[str, Any]]:
    response = await client.post(f"/{store}/Patient/_search",
                                 data={"identifier": f"{system}|{nin}"}, headers=STRICT)
    assert response.status_code == 200
    return resources(response.json())


async def search_all(client: httpx.AsyncClient, store: str, nin: str, system: str = FNR
                     ) -> dict[str, list[dict[str, Any]]]:
    """Every type by the logical reference of the patient the store resolves (none: empty)."""
    patients = await resolve(client, store, nin, system)
    if not patients:
        return {t: [] for t in TYPES}
    (patient,) = patients
    found = {}
    for rtype in TYPES:
        response = await client.get(f"/{store}/{rtype}", params={
            "patient": f"Patient/{patient['id']}"}, headers=STRICT)
        assert response.status_code == 200
        found[rtype] = resources(response.json())
    return found


async def test_a_store_resolves_its_patient_by_identifier_with_an_opaque_id(
        client: httpx.AsyncClient) -> None:
    nin = by_tag("legevakt-hlr").nin
    (patient,) = await resolve(client, "0301", nin)
    assert patient["id"] == patient_id("0301", nin)
    assert nin not in patient["id"]
    assert patient["identifier"] == [{"use": "official", "system": FNR, "value": nin}]
    assert patient["birthDate"] == "1938-03-14"
    assert patient_id("4601", nin) != patient["id"]  # every store has its own ids


async def test_hlr_minus_consent_is_in_the_nursing_home_store(client: httpx.AsyncClient) -> None:
    nin = by_tag("legevakt-hlr").nin
    (consent,) = [c for c in (await search_all(client, "0301", nin))["Consent"]
                  if c["scope"]["coding"][0]["code"] == "treatment"]
    assert consent["id"] == "hlr-1"
    assert consent["patient"] == {"reference": f"Patient/{patient_id('0301', nin)}"}
    assert consent["category"][0]["coding"][0] == {
        "system": "http://snomed.info/sct", "code": "304253006",
        "display": "Ikke-gjenoppliving (HLR-minus)"}
    assert consent["provision"]["code"][0]["coding"][0]["code"] == "304253006"
    assert consent["policyRule"]["text"]  # ppc-1
    assert consent["dateTime"] == "2026-09-02T10:15:00+02:00"
    assert consent["performer"] == [{"display": "Sykehjemslege, Lindeberg sykehjem"}]
    assert consent["meta"]["tag"] == [{"system": KOMMUNENUMMER, "code": "0301"},
                                      {"system": SOURCE_TAG, "code": "municipal"}]


async def test_every_record_refers_to_its_patient_by_literal_reference(
        client: httpx.AsyncClient) -> None:
    nin = by_tag("legevakt-hlr").nin
    found = await search_all(client, "0301", nin)
    assert {t: len(rs) for t, rs in found.items()} == {
        "EpisodeOfCare": 1, "Consent": 1, "Condition": 2, "MedicationAdministration": 3,
        "DocumentReference": 2, "AllergyIntolerance": 0, "Flag": 0}
    reference = {"reference": f"Patient/{patient_id('0301', nin)}"}
    for resources_ in found.values():
        for r in resources_:
            assert r["id"]
            assert r["meta"]["lastUpdated"]
            assert r.get("patient", r.get("subject")) == reference


async def test_administration_has_a_dose_mad_1(client: httpx.AsyncClient) -> None:
    found = await search_all(client, "0301", by_tag("legevakt-hlr").nin)
    for administration in found["MedicationAdministration"]:
        assert administration["dosage"]["dose"]["value"] == 1.0
        assert administration["dosage"]["text"]


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
        assert await resolve(client, store, nin) == []


async def test_no_data_patient_is_known_to_the_home_store_with_no_records(
        client: httpx.AsyncClient) -> None:
    nin = by_tag("no-data").nin
    assert len(await resolve(client, "0301", nin, DNR)) == 1
    assert await resolve(client, "0301", nin, FNR) == []  # a D-nummer is not an FNR
    found = await search_all(client, "0301", nin, system=DNR)
    assert all(rs == [] for rs in found.values())


async def test_unknown_patient_resolves_to_no_patient(client: httpx.AsyncClient) -> None:
    assert await resolve(client, "0301", "12057900499") == []


async def test_unknown_municipality_is_404_operation_outcome(client: httpx.AsyncClient) -> None:
    for response in (await client.post("/9999/Patient/_search", data={"identifier": "x"}),
                     await client.get("/9999/metadata")):
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"


async def test_strict_handling_rejects_an_unknown_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/0301/Condition", params={"patient": "Patient/x", "colour": "b"},
                                headers=STRICT)
    assert response.status_code == 400
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert "'colour'" in body["issue"][0]["diagnostics"]


async def test_lenient_handling_ignores_an_unknown_parameter_and_says_so(
        client: httpx.AsyncClient) -> None:
    nin = by_tag("legevakt-hlr").nin
    response = await client.get("/0301/Condition", params={
        "patient": f"Patient/{patient_id('0301', nin)}", "colour": "b"})
    assert response.status_code == 200
    body = response.json()
    assert len(resources(body)) == 2
    (warning,) = resources(body, "outcome")
    assert warning["issue"][0]["severity"] == "warning"
    assert "colour" in warning["issue"][0]["diagnostics"]


async def test_chained_search_only_in_profiles_that_declare_it() -> None:
    nin = by_tag("legevakt-hlr").nin
    params = {"patient.identifier": f"{FNR}|{nin}"}
    async with client_for(PROFILES["full"]) as full, client_for(PROFILES["plain"]) as plain:
        chained = await full.get("/0301/Condition", params=params, headers=STRICT)
        assert len(resources(chained.json())) == 2
        refused = await plain.get("/0301/Condition", params=params, headers=STRICT)
        assert refused.status_code == 400
        declared = {p["name"] for r in (await full.get("/0301/metadata")).json()["rest"][0][
            "resource"] if r["type"] == "Condition" for p in r["searchParam"]}
        assert "patient.identifier" in declared
        plain_declared = {p["name"] for r in (await plain.get("/0301/metadata")).json()[
            "rest"][0]["resource"] if r["type"] == "Condition" for p in r["searchParam"]}
        assert "patient.identifier" not in plain_declared
        assert "patient" in plain_declared


async def test_include_adds_the_patient_once(client: httpx.AsyncClient) -> None:
    nin = by_tag("legevakt-hlr").nin
    response = await client.get("/0301/Condition", params={
        "patient.identifier": f"{FNR}|{nin}", "_include": "Condition:patient"}, headers=STRICT)
    (included,) = resources(response.json(), "include")
    assert included["resourceType"] == "Patient"
    assert included["id"] == patient_id("0301", nin)


async def test_paged_profile_links_to_the_next_page_until_the_end() -> None:
    nin = by_tag("multi-service").nin
    seen: list[str] = []
    async with client_for(PROFILES["paged"]) as paged:
        url: str | None = f"/0301/EpisodeOfCare?patient=Patient/{patient_id('0301', nin)}"
        pages = 0
        while url:
            body = (await paged.get(url, headers=STRICT)).json()
            assert body["total"] == 4
            seen += [r["id"] for r in resources(body)]
            url = next((link["url"] for link in body["link"] if link["relation"] == "next"),
                       None)
            pages += 1
    assert pages == 2
    assert sorted(seen) == ["svc-d1", "svc-d2", "svc-d3", "svc-d4"]


async def test_a_store_without_batch_says_so() -> None:
    async with client_for(PROFILES["plain"]) as plain:
        response = await plain.post("/0301", json={"resourceType": "Bundle", "type": "batch"})
        assert response.status_code == 405
        assert response.json()["resourceType"] == "OperationOutcome"
        assert "interaction" not in (await plain.get("/0301/metadata")).json()["rest"][0]


async def test_batch_answers_each_search_and_fails_only_the_bad_entry(
        client: httpx.AsyncClient) -> None:
    nin = by_tag("legevakt-hlr").nin
    body = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Condition?patient=Patient/{patient_id('0301', nin)}"}},
        {"request": {"method": "GET", "url": "Condition?colour=blue"}},
    ]}
    response = await client.post("/0301", json=body, headers=STRICT)
    assert response.status_code == 200
    first, second = response.json()["entry"]
    assert first["response"]["status"] == "200 OK"
    assert len(resources(first["resource"])) == 2
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


async def test_lenient_profile_returns_every_patients_records() -> None:
    nin = by_tag("legevakt-hlr").nin
    async with client_for(PROFILES["lenient"]) as lenient:
        body = (await lenient.get("/0301/Condition", params={
            "patient": f"Patient/{patient_id('0301', nin)}"}, headers=STRICT)).json()
    subjects = {r["subject"]["reference"] for r in resources(body)}
    assert len(subjects) > 1  # the broken store answers other patients' records too


async def test_read_by_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/0301/Consent/hlr-1")
    assert response.status_code == 200
    assert response.json()["id"] == "hlr-1"
    assert (await client.get("/0301/Consent/nope")).status_code == 404


def test_profile_from_env_names_the_choices() -> None:
    assert profile_from_env({}).name == "full"
    assert profile_from_env({"KILDE_SANDBOX__MUNICIPAL__PROFILE": "paged"}).page_size == 2
    with pytest.raises(ValueError, match="must be one of"):
        profile_from_env({"KILDE_SANDBOX__MUNICIPAL__PROFILE": "bogus"})


def municipal_cave_patient() -> world.Patient:
    """A person whose CAVE is kept in Oslo's EPJ only (the `municipal-cave` story)."""
    return replace(by_tag("no-data"), allergies=(
        world.AllergyFact("cave-m1", world.ATC, "N02AA01", "Morfin", "Respirasjonsdepresjon",
                          "severe", datetime.fromisoformat("2026-03-01T10:00:00+01:00"),
                          world.MUNICIPAL, municipality="0301"),
        world.AllergyFact("cave-k1", world.ATC, "J01CE", "Penicilliner", "Utslett", "mild",
                          datetime.fromisoformat("2020-01-01T10:00:00+01:00"),
                          world.KJERNEJOURNAL),
    ))


def test_a_municipal_cave_is_rendered_as_allergy_intolerance_in_its_store_only() -> None:
    person = municipal_cave_patient()
    records = patient_records(person, "0301")
    (cave,) = [r for r in records if r["resourceType"] == "AllergyIntolerance"]
    assert cave["id"] == "cave-m1"
    assert cave["patient"] == {"reference": f"Patient/{patient_id('0301', person.nin)}"}
    assert cave["criticality"] == "high"
    assert cave["category"] == ["medication"]
    assert cave["reaction"][0]["severity"] == "severe"
    assert not [r for r in patient_records(person, "4601")
                if r["resourceType"] == "AllergyIntolerance"]
