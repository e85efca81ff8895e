"""The simulated SFM `$getMedication` (sandbox.medication), over ASGITransport."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.medication import create_app
from sandbox.world import ATC, ICPC2, by_tag

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
MULTI = by_tag("multi-service")
NO_DATA = by_tag("no-data")
UNKNOWN_NIN = "12057900499"  # valid mod-11, not in the world


def body(nin: str, system: str = FNR, consent: str = "HPAKUTT") -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "resource": {
                "resourceType": "Patient", "identifier": [{"system": system, "value": nin}]}},
            {"name": "SamtykkeKjernejournal", "valueCode": consent},
            {"name": "SamtykkeSperretLegemidler", "valueBoolean": False},
            {"name": "SamtykkeLasteResepter", "valueBoolean": False},
            {"name": "IncludeOriginal", "valueBoolean": False},
        ],
    }


async def post(payload: Any, *, kind: str = "pll", rf_lookup: bool = True,
               raw: bytes | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(kind, rf_lookup=rf_lookup))
    async with httpx.AsyncClient(transport=transport, base_url="http://sfm") as client:
        if raw is not None:
            return await client.post("/Patient/$getMedication", content=raw)
        return await client.post("/Patient/$getMedication", json=payload)


def parameter(answer: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((p for p in answer["parameter"] if p["name"] == name), None)


def split(bundle: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    composition = bundle["entry"][0]["resource"]
    return composition, {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def section(composition: dict[str, Any], title: str) -> list[str]:
    found = next(s for s in composition["section"] if s["title"] == title)
    return [r["reference"] for r in found.get("entry", [])]


def ident(statement: dict[str, Any], type_text: str) -> str | None:
    return next((i["value"] for i in statement["identifier"] if i["type"]["text"] == type_text),
                None)


@pytest.mark.parametrize("kind", ["pll", "eresept"])
async def test_fake_answers_parameters_with_a_document_bundle_and_lookup_times(kind: str) -> None:
    response = await post(body(MULTI.nin), kind=kind)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    answer = response.json()
    assert answer["resourceType"] == "Parameters"
    bundle = parameter(answer, "medication")["resource"]
    assert bundle["type"] == "document"
    assert bundle["entry"][0]["resource"]["resourceType"] == "Composition"
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in bundle["entry"])
    assert parameter(answer, "KJHentetTidspunkt")["valueDateTime"]
    assert parameter(answer, "RFHentetTidspunkt")["valueDateTime"]


async def test_fake_lists_pll_and_prescription_statements_from_the_world() -> None:
    answer = (await post(body(MULTI.nin))).json()
    composition, resources = split(parameter(answer, "medication")["resource"])
    pll = [resources[r] for r in section(composition, "PLL info")]
    rx = [resources[r] for r in section(composition, "Resepter")]
    assert sorted(ident(s, "PLL") for s in pll) == ["pll-d1", "pll-d2", "pll-d3"]
    assert sorted(ident(s, "prescriptionID") for s in rx) == ["rx-d1", "rx-d2", "rx-d3", "rx-d4"]
    assert {ident(s, "treatmentID") for s in pll} <= {ident(s, "treatmentID") for s in rx}
    assert all(s["resourceType"] == "MedicationStatement" for s in pll + rx)


async def test_fake_renders_the_metformin_dosage_conflict_and_codes() -> None:
    answer = (await post(body(MULTI.nin))).json()
    composition, resources = split(parameter(answer, "medication")["resource"])
    by_treatment: dict[str, list[dict[str, Any]]] = {}
    for ref in section(composition, "PLL info") + section(composition, "Resepter"):
        statement = resources[ref]
        by_treatment.setdefault(ident(statement, "treatmentID"), []).append(statement)
    pll, rx = by_treatment["tr-d3"]
    assert pll["dosage"][0]["text"] == "1 tablett x 2"
    assert rx["dosage"][0]["text"] == "1 tablett x 3"
    assert pll["effectivePeriod"]["start"] == "2011-05-10"
    assert pll["reasonCode"][0]["coding"][0] == {"system": ICPC2, "code": "T90",
                                                 "display": "Diabetes type 2"}
    medication = resources[pll["medicationReference"]["reference"]]
    assert medication["code"] == {"coding": [{"system": ATC, "code": "A10BA02"}],
                                  "text": "Metformin 500 mg tablett"}


async def test_fake_gives_an_unknown_patient_an_empty_composition() -> None:
    answer = (await post(body(UNKNOWN_NIN))).json()
    bundle = parameter(answer, "medication")["resource"]
    composition, resources = split(bundle)
    assert section(composition, "PLL info") == []
    assert section(composition, "Resepter") == []
    assert "emptyReason" in composition["section"][0]
    assert not [r for r in resources.values() if r["resourceType"] == "MedicationStatement"]


async def test_fake_accepts_a_d_number_patient_without_medications() -> None:
    response = await post(body(NO_DATA.nin, system=DNR, consent="HPUNNTAK"))
    assert response.status_code == 200
    composition, _ = split(parameter(response.json(), "medication")["resource"])
    assert section(composition, "PLL info") == []


async def test_fake_without_rf_lookup_omits_prescriptions_and_the_rf_time() -> None:
    answer = (await post(body(MULTI.nin), kind="eresept", rf_lookup=False)).json()
    assert parameter(answer, "RFHentetTidspunkt") is None
    composition, _ = split(parameter(answer, "medication")["resource"])
    assert section(composition, "Resepter") == []
    assert len(section(composition, "PLL info")) == 3


def _without(name: str) -> dict[str, Any]:
    payload = body(MULTI.nin)
    payload["parameter"] = [p for p in payload["parameter"] if p["name"] != name]
    return payload


def _with(name: str, **value: Any) -> dict[str, Any]:
    payload = body(MULTI.nin)
    for p in payload["parameter"]:
        if p["name"] == name:
            p.clear()
            p.update({"name": name, **value})
    return payload


@pytest.mark.parametrize(("payload", "raw"), [
    (None, b"not json"),
    ({"resourceType": "Bundle"}, None),
    ({"resourceType": "Parameters", "parameter": "x"}, None),
    (_without("patient"), None),
    (_with("patient", resource={"resourceType": "Practitioner"}), None),
    (body(MULTI.nin, system="urn:oid:1.2.3"), None),
    (body("0901441275"), None),
    (_without("SamtykkeKjernejournal"), None),
    (body(MULTI.nin, consent="AKUTT"), None),
    (_with("IncludeOriginal", valueString="yes"), None),
], ids=["not-json", "not-parameters", "bad-parameter-list", "no-patient", "not-a-patient",
        "unknown-id-system", "ten-digits", "no-consent", "wrong-consent-code",
        "non-boolean-flag"])
async def test_fake_rejects_an_invalid_body_with_a_400_operation_outcome(
    payload: Any, raw: bytes | None
) -> None:
    response = await post(payload, raw=raw)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert MULTI.nin not in response.text


async def test_fake_only_serves_post() -> None:
    transport = httpx.ASGITransport(app=create_app("pll"))
    async with httpx.AsyncClient(transport=transport, base_url="http://sfm") as client:
        response = await client.get("/Patient/$getMedication")
    assert response.status_code == 405


def test_fake_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="Unknown medication source"):
        create_app("kjernejournal")
