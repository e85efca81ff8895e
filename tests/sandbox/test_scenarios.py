"""Vendors' scenario patients: a folder of FHIR transaction Bundles, loaded at sandbox start.

Every built-in patient survives export and load unchanged (so the export is a faithful
example); a folder's patients are listed and served by every fake like the built-in ones, and
only by the sandbox that loaded them; a bad folder stops the start naming each problem.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connectors.identifiers import make_nin
from sandbox import world
from sandbox.app import create_app
from sandbox.municipal_records import patient_id
from sandbox.scenario_format import Problems, ScenarioError
from sandbox.scenario_read import read_patient
from sandbox.scenarios import export_patient, load_folder, main
from tests.sandbox_auth import sandbox_auth

NEW_NIN = next(n for i in range(410, 500) if (n := make_nin(date(1950, 7, 7), i)))


@pytest.mark.parametrize("patient", world.PATIENTS, ids=[p.tags[-1] for p in world.PATIENTS])
def test_every_built_in_patient_survives_export_and_load(patient: world.Patient) -> None:
    problems = Problems()
    assert read_patient(export_patient(patient), problems.at("x.json")) == patient
    assert problems.found == []


def vendor_bundle(tags: tuple[str, ...] = ("vendor-hlr",)) -> dict[str, Any]:
    """A vendor's patient: the kj-only-hlr patient under a new number, name and tag."""
    base = world.by_tag("kj-only-hlr")
    made = world.Patient(**{**{f: getattr(base, f) for f in base.__dataclass_fields__},
                            "nin": NEW_NIN, "name": "Vera Leverandør", "tags": tags})
    return export_patient(made)


def write(folder: Path, name: str, body: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    (folder / name).write_bytes(raw)


@pytest.fixture
async def vendor(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    write(tmp_path, "vera.json", vendor_bundle())
    app = create_app({"KILDE_SANDBOX__SCENARIOS": str(tmp_path)})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox",
                                 auth=sandbox_auth(app)) as client:  # a fake's HelseID token
        yield client


async def test_a_folders_patient_is_listed_and_served_by_the_fakes(
    vendor: httpx.AsyncClient,
) -> None:
    listed = (await vendor.get("/_sandbox/patients")).json()
    assert {"nin": NEW_NIN, "name": "Vera Leverandør", "municipality": "0301",
            "tags": ["vendor-hlr"]} in listed
    assert len(listed) == len(world.PATIENTS) + 1
    consents = await vendor.get("/kjernejournal/Consent", headers={
        "nhn-patient-nin": NEW_NIN, "nhn-access-basis": "SAMTYKKE"})
    ids = [e["resource"]["id"] for e in consents.json()["entry"]
           if e["resource"]["resourceType"] == "Consent"]
    assert ids == ["kj-hlr-a1"]
    store = f"/municipal/0301/Condition?patient=Patient/{patient_id('0301', NEW_NIN)}"
    conditions = (await vendor.get(store)).json()
    assert [e["resource"]["id"] for e in conditions.get("entry", [])
            if e["resource"]["resourceType"] == "Condition"] == ["cond-n1"]


async def test_another_sandbox_in_the_same_process_does_not_see_them(
    vendor: httpx.AsyncClient,
) -> None:
    plain = create_app({})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain),
                                 base_url="http://sandbox") as client:
        listed = (await client.get("/_sandbox/patients")).json()
    assert NEW_NIN not in {p["nin"] for p in listed}
    assert NEW_NIN in {p["nin"] for p in (await vendor.get("/_sandbox/patients")).json()}


def broken(change: Any) -> dict[str, Any]:
    bundle = copy.deepcopy(vendor_bundle())
    change(bundle)
    return bundle


def _entry(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == rtype)


BROKEN = [
    pytest.param(b"{not json", "is not valid JSON", id="not-json"),
    pytest.param({"resourceType": "Bundle", "type": "batch", "entry": []},
                 "is not a FHIR transaction Bundle", id="not-a-transaction"),
    pytest.param(broken(lambda b: b["entry"].reverse()), "must start with the Patient entry",
                 id="patient-not-first"),
    pytest.param(broken(lambda b: b["entry"][0]["resource"]["identifier"][0].update(
        value="12345678901")), "valid national identity number", id="bad-nin"),
    pytest.param(broken(lambda b: _entry(b, "Consent")["meta"].update(tag=[])),
                 "needs one source tag", id="no-source"),
    pytest.param(broken(lambda b: _entry(b, "Condition")["meta"]["tag"].pop(1)),
                 "needs the store's kommunenummer tag", id="municipal-without-store"),
    pytest.param(broken(lambda b: _entry(b, "Consent").update(dateTime="yesterday")),
                 "invalid 'dateTime'", id="bad-date"),
    pytest.param(broken(lambda b: _entry(b, "Consent").update(
        patient={"reference": "Patient/someone-else"})), "must refer to the Bundle's Patient",
        id="other-patient"),
    pytest.param(broken(lambda b: b["entry"].append({"resource": {
        "resourceType": "Encounter", "id": "e1"}})), "resource type the sandbox does not serve",
        id="unknown-type"),
]


@pytest.mark.parametrize(("body", "message"), BROKEN)
def test_a_bad_file_stops_the_start_naming_the_file_the_entry_and_the_problem(
    tmp_path: Path, body: Any, message: str
) -> None:
    write(tmp_path, "bad.json", body)
    with pytest.raises(ScenarioError) as failure:
        create_app({"KILDE_SANDBOX__SCENARIOS": str(tmp_path)})
    text = str(failure.value)
    assert "bad.json" in text
    assert message in text
    assert NEW_NIN not in text


def test_a_patient_already_in_the_world_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "twice.json", export_patient(world.by_tag("legevakt-hlr")))
    with pytest.raises(ScenarioError, match="already defined in the built-in world"):
        load_folder(str(tmp_path))


@pytest.mark.parametrize("setup", ["missing", "empty"])
def test_a_folder_that_is_not_there_or_empty_says_so(tmp_path: Path, setup: str) -> None:
    folder = tmp_path / "scenarios"
    if setup == "empty":
        folder.mkdir()
    with pytest.raises(ScenarioError, match="KILDE_SANDBOX__SCENARIOS"):
        load_folder(str(folder))


def test_the_export_command_writes_one_loadable_file_per_built_in_patient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 0
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted(
        p.tags[-1] for p in world.PATIENTS)
    with pytest.raises(ScenarioError, match="already defined in the built-in world"):
        load_folder(str(tmp_path))  # they are the built-in patients themselves
    assert "wrote" in capsys.readouterr().out


def test_record_ids_are_unique_across_the_world() -> None:
    # one FHIR server may hold every scenario patient (tests/interop): ids must not collide
    ids = [r.id for p in world.PATIENTS for r in (
        *p.treatment_limitations, *p.allergies, *p.critical_conditions, *p.services,
        *p.conditions, *p.medications, *p.lab_reports, *p.documents)]
    assert sorted({i for i in ids if ids.count(i) > 1}) == []
