"""The simulated Kjernejournal critical-information API, in-process over httpx.ASGITransport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from sandbox import world
from sandbox.kjernejournal import create_app

MULTI = world.by_tag("multi-service").nin
HLR = world.by_tag("legevakt-hlr").nin
RESERVED = world.by_tag("reserved-kj").nin
RESTRICTED = world.by_tag("restricted-kj").nin
BLOCKED = world.by_tag("blocked-kj").nin
UNKNOWN = "12057900499"  # a valid number the world does not know (NHN test person)
PROFILE = "http://nhn.no/kj/fhir/StructureDefinition/"
ROLE = quote(json.dumps({"system": "urn:oid:2.16.578.1.12.4.1.1.9060", "code": "LE"}))


@pytest.fixture
async def kj() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://kj") as client:
        yield client


def headers(nin: str, basis: str = "SAMTYKKE", hpr: str = "9144902") -> dict[str, str]:
    return {"nhn-patient-nin": nin, "nhn-access-basis": basis, "nhn-user-hpr": hpr,
            "nhn-user-role": ROLE, "nhn-source-system": "tests", "nhn-event-id": "e-1"}


def gibberish(body: dict[str, Any]) -> list[str]:
    return [k for k in body if k.startswith("x-kj-gibberish-")]


def resources(bundle: dict[str, Any], mode: str = "match") -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == mode]


def outcome_code(body: dict[str, Any]) -> str:
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["details"]["coding"][0]["code"])


async def test_status_reports_critical_information_and_privacy(kj: httpx.AsyncClient) -> None:
    answer = await kj.post("/status", json={"nin": MULTI})
    assert answer.status_code == 200
    body = answer.json()
    assert body["patientNIN"] == MULTI
    assert body["hasCriticalInformation"] is True
    assert body["dateChanged"]["allergyIntoleranceDate"] == "2010-06-01T10:00:00+02:00"
    assert body["dateChanged"]["conditionCriticalMedicalConditionDate"] == (
        "2016-08-20T10:00:00+02:00")
    assert body["lastChangedDateTime"] == "2016-08-20T10:00:00+02:00"
    assert body["privacySettings"] == {"reserved": False, "restricted": False,
                                       "blockedHealthPersonnelExists": False}
    assert body["requesterBlocked"] is False


@pytest.mark.parametrize(("hpr", "requester_blocked"), [("9144901", True), ("9144902", False),
                                                        (None, False)])
async def test_status_says_whether_the_requester_is_blocked(
    kj: httpx.AsyncClient, hpr: str | None, requester_blocked: bool
) -> None:
    answer = await kj.post("/status", json={"nin": BLOCKED},
                           headers={"nhn-user-hpr": hpr} if hpr else {})
    body = answer.json()
    assert body["requesterBlocked"] is requester_blocked
    assert body["privacySettings"]["blockedHealthPersonnelExists"] is True


@pytest.mark.parametrize(("nin", "reserved", "restricted", "has_info"), [
    (RESERVED, True, False, False),
    (RESTRICTED, False, True, True),
    (UNKNOWN, False, False, False),
])
async def test_status_privacy_settings_per_scenario(
    kj: httpx.AsyncClient, nin: str, reserved: bool, restricted: bool, has_info: bool
) -> None:
    body = (await kj.post("/status", json={"nin": nin})).json()
    assert body["privacySettings"]["reserved"] is reserved
    assert body["privacySettings"]["restricted"] is restricted
    assert body["hasCriticalInformation"] is has_info


@pytest.mark.parametrize("payload", [{"nin": "09014412758"}, {"nin": 9014412759}, {}, [MULTI]])
async def test_status_rejects_an_invalid_number_with_an_operation_outcome(
    kj: httpx.AsyncClient, payload: Any
) -> None:
    answer = await kj.post("/status", json=payload)
    assert answer.status_code == 400
    assert outcome_code(answer.json()) == "invalid-nin"


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("POST", "/status", {"json": {"nin": MULTI}}),
    ("POST", "/status", {"json": {"nin": "123"}}),
    ("GET", "/AllergyIntolerance", {"headers": headers(MULTI)}),
    ("GET", "/Condition", {"headers": headers(RESERVED)}),
    ("GET", "/Flag", {"headers": headers(BLOCKED, "AKUTT")}),
    ("GET", "/Consent", {"headers": headers(RESTRICTED)}),
    ("GET", "/Consent", {"headers": {"nhn-patient-nin": MULTI}}),
])
async def test_every_json_response_carries_exactly_one_gibberish_field(
    kj: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    answer = await kj.request(method, path, **kwargs)
    assert len(gibberish(answer.json())) == 1


async def test_allergies_are_kj_allergy_intolerance_with_a_contained_recorder(
    kj: httpx.AsyncClient,
) -> None:
    answer = await kj.get("/AllergyIntolerance", headers=headers(MULTI))
    assert answer.status_code == 200
    bundle = answer.json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset")
    (allergy,) = resources(bundle)
    assert allergy["meta"]["profile"] == [PROFILE + "KjAllergyIntolerance"]
    assert allergy["code"]["coding"][0]["code"] == "256349002"
    assert allergy["criticality"] == "high"
    assert allergy["reaction"][0]["severity"] == "severe"
    assert allergy["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert allergy["recorder"] == {"reference": "#recorderRef"}
    (role,) = allergy["contained"]
    assert (role["resourceType"], role["id"]) == ("PractitionerRole", "recorderRef")
    assert role["practitioner"]["identifier"]["system"] == "urn:oid:2.16.578.1.12.4.1.4.4"
    assert role["code"][0]["coding"][0]["code"] == "LE"


@pytest.mark.parametrize(("kind", "ids"), [
    (None, ["cave-d1"]),
    ("OtherAllergen", ["cave-d1"]),
    ("DrugReaction", []),
])
async def test_critical_info_type_filters_allergies(
    kj: httpx.AsyncClient, kind: str | None, ids: list[str]
) -> None:
    params = {"criticalInfoType": kind} if kind else {}
    bundle = (await kj.get("/AllergyIntolerance", params=params, headers=headers(MULTI))).json()
    assert [r["id"] for r in resources(bundle)] == ids


async def test_an_unknown_critical_info_type_is_a_bad_request(kj: httpx.AsyncClient) -> None:
    answer = await kj.get("/AllergyIntolerance", params={"criticalInfoType": "Smitte"},
                          headers=headers(MULTI))
    assert answer.status_code == 400


async def test_conditions_are_critical_medical_conditions_in_icd10(kj: httpx.AsyncClient) -> None:
    bundle = (await kj.get("/Condition", headers=headers(MULTI))).json()
    (condition,) = resources(bundle)
    assert condition["meta"]["profile"] == [PROFILE + "KjConditionCriticalMedicalCondition"]
    assert condition["category"][0]["coding"][0]["code"] == "5"
    assert condition["code"]["coding"][0] == {
        "system": world.ICD10, "code": "I48", "display": "Atrieflimmer med antikoagulasjon",
        "userSelected": True}


async def test_legevakt_hlr_patients_hlr_minus_is_not_in_kjernejournal(
    kj: httpx.AsyncClient,
) -> None:
    consents = (await kj.get("/Consent", headers=headers(HLR))).json()
    allergies = (await kj.get("/AllergyIntolerance", headers=headers(HLR))).json()
    assert resources(consents) == []
    assert [r["id"] for r in resources(allergies)] == ["cave-1"]


async def test_reserved_patient_gets_an_empty_bundle_with_a_reservation_outcome(
    kj: httpx.AsyncClient,
) -> None:
    answer = await kj.get("/AllergyIntolerance", headers=headers(RESERVED, "AKUTT"))
    assert answer.status_code == 200
    bundle = answer.json()
    assert resources(bundle) == []
    (outcome,) = resources(bundle, "outcome")
    assert outcome_code(outcome) == "Reservation"


@pytest.mark.parametrize(("hpr", "basis"), [
    ("9144901", "AKUTT"),
    ("9144901", "FORHOYET_AKUTT"),
    ("9144901", "FORHOYET_SAMTYKKE"),
    ("9144902", "AKUTT"),  # someone else is blocked: Kjernejournal shares nothing at all
])
async def test_blocked_patient_blocks_every_search_even_in_an_emergency(
    kj: httpx.AsyncClient, hpr: str, basis: str
) -> None:
    for path in ("/AllergyIntolerance", "/Condition", "/Flag", "/Consent"):
        answer = await kj.get(path, headers=headers(BLOCKED, basis, hpr))
        assert answer.status_code == 403
        assert outcome_code(answer.json()) == "blocked"


@pytest.mark.parametrize(("basis", "opened"), [
    ("UNNTAK", False),
    ("SAMTYKKE", False),
    ("AKUTT", True),
    ("FORHOYET_SAMTYKKE", True),
    ("FORHOYET_AKUTT", True),
])
async def test_restriction_opens_only_for_emergency_or_elevated_consent(
    kj: httpx.AsyncClient, basis: str, opened: bool
) -> None:
    answer = await kj.get("/AllergyIntolerance", headers=headers(RESTRICTED, basis))
    if opened:
        assert answer.status_code == 200
        assert answer.headers["nhn-restriction-opened"] == "true"
        assert [r["id"] for r in resources(answer.json())] == ["cave-c1"]
    else:
        assert answer.status_code == 403
        assert outcome_code(answer.json()) == "restricted"
        assert "nhn-restriction-opened" not in answer.headers


async def test_unrestricted_answers_do_not_claim_an_opened_restriction(
    kj: httpx.AsyncClient,
) -> None:
    answer = await kj.get("/AllergyIntolerance", headers=headers(MULTI, "AKUTT"))
    assert "nhn-restriction-opened" not in answer.headers


@pytest.mark.parametrize("bad", [
    {"nhn-access-basis": "SAMTYKKE"},  # no patient header
    {"nhn-patient-nin": "09014412758", "nhn-access-basis": "SAMTYKKE"},  # bad mod-11
    {"nhn-patient-nin": MULTI},  # no access basis
    {"nhn-patient-nin": MULTI, "nhn-access-basis": "HPAKUTT"},  # the legacy vocabulary
    {"nhn-patient-nin": MULTI, "nhn-access-basis": "AKUTT", "nhn-user-role": "LE"},
    {"nhn-patient-nin": MULTI, "nhn-access-basis": "AKUTT", "nhn-event-id": "e" * 129},
])
async def test_searches_reject_bad_headers(kj: httpx.AsyncClient, bad: dict[str, str]) -> None:
    answer = await kj.get("/Condition", headers=bad)
    assert answer.status_code == 400
    assert answer.json()["resourceType"] == "OperationOutcome"


async def test_unknown_patient_gets_an_empty_searchset(kj: httpx.AsyncClient) -> None:
    answer = await kj.get("/AllergyIntolerance", headers=headers(UNKNOWN))
    assert answer.status_code == 200
    assert answer.json()["entry"] == []


async def test_the_fake_is_mounted_in_the_sandbox_at_kjernejournal() -> None:
    from sandbox.app import create_app as create_sandbox
    from tests.sandbox_auth import sandbox_auth

    app = create_sandbox({})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox",
                                 auth=sandbox_auth(app)) as client:
        answer = await client.get("/kjernejournal/Condition", headers=headers(MULTI))
    assert answer.status_code == 200
    assert [r["id"] for r in resources(answer.json())] == ["crit-d1"]
