"""The Persontjenesten connector against the sandbox's registry fake (real wire format over an
in-process transport): who the patient is, where they live now (never a historic address),
death with its date, a number the registry does not know (said, not guessed), and the
identity number never in a URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest

from connectors import Category, ConnectorSettings, FetchRequest, Status
from connectors.errors import UpstreamInvalidError, UpstreamRejectedError
from connectors.fhir import now
from connectors.persontjenesten import PersontjenestenConnector
from connectors.persontjenesten.mapping import demographics
from sandbox.app import create_app as create_sandbox
from sandbox.world import PATIENTS, by_tag

BASE = "http://sandbox.test"
DEMOGRAPHICS = frozenset({Category.DEMOGRAPHICS})


@pytest.fixture
async def seen() -> AsyncIterator[tuple[PersontjenestenConnector, list[httpx.Request]]]:
    requests: list[httpx.Request] = []
    sandbox = httpx.ASGITransport(create_sandbox({"KILDE_SANDBOX__REQUIRE_TOKENS": "false"}))

    async def record(request: httpx.Request) -> None:
        requests.append(request)

    async with httpx.AsyncClient(transport=sandbox, event_hooks={"request": [record]}) as http:
        settings = ConnectorSettings("persontjenesten", base_url=f"{BASE}/persontjenesten")
        yield PersontjenestenConnector(settings, http), requests


async def ask(connector: PersontjenestenConnector, nin: str) -> object:
    return await connector.fetch(FetchRequest(patient_nin=nin, categories=DEMOGRAPHICS))


@pytest.mark.parametrize("patient", [p for p in PATIENTS if p.in_registry],
                         ids=lambda p: p.tags[-1])
async def test_every_registered_patient_comes_back_as_the_world_has_them(
        seen: tuple[PersontjenestenConnector, list[httpx.Request]], patient: object) -> None:
    connector, requests = seen
    result = await ask(connector, patient.nin)  # type: ignore[attr-defined]
    assert result.status is Status.OK  # type: ignore[attr-defined]
    (person,) = result.items[Category.DEMOGRAPHICS]  # type: ignore[attr-defined]
    assert person.name == patient.name  # type: ignore[attr-defined]
    assert person.birth_date == patient.born  # type: ignore[attr-defined]
    assert person.gender == patient.gender  # type: ignore[attr-defined]
    # the fake sends an earlier address in another municipality first: only the current counts;
    # a graded address is never read (the fake sends it anyway)
    protected = patient.address_protection is not None  # type: ignore[attr-defined]
    assert person.home_municipality == (  # type: ignore[attr-defined]
        None if protected else patient.municipality)  # type: ignore[attr-defined]
    assert person.address_protection == (  # type: ignore[attr-defined]
        "ADDRESS_PROTECTED" if protected else None)
    assert person.deceased is (patient.deceased is not None)  # type: ignore[attr-defined]
    assert person.deceased_date == patient.deceased  # type: ignore[attr-defined]
    assert person.provenance.source == "persontjenesten"
    (request,) = requests
    assert request.method == "POST"
    assert patient.nin not in str(request.url)  # type: ignore[attr-defined]
    assert request.url.params["api-version"] == "3"
    assert {"ResidentialAddress", "AddressProtection"} <= set(
        request.url.params.get_list("informationParts"))


async def test_a_deceased_patient_says_so_with_the_date(
        seen: tuple[PersontjenestenConnector, list[httpx.Request]]) -> None:
    result = await ask(seen[0], by_tag("deceased").nin)
    (person,) = result.items[Category.DEMOGRAPHICS]  # type: ignore[attr-defined]
    assert (person.deceased, person.deceased_date, person.registry_status) == (
        True, date(2026, 11, 20), "Deceased")


async def test_a_number_the_registry_does_not_know_is_empty_and_says_so(
        seen: tuple[PersontjenestenConnector, list[httpx.Request]]) -> None:
    result = await ask(seen[0], by_tag("not-in-registry").nin)
    assert result.status is Status.EMPTY  # type: ignore[attr-defined]
    assert result.items[Category.DEMOGRAPHICS] == ()  # type: ignore[attr-defined]
    assert "no person" in result.detail  # type: ignore[attr-defined]


async def test_without_the_demographics_category_nothing_is_asked(
        seen: tuple[PersontjenestenConnector, list[httpx.Request]]) -> None:
    connector, requests = seen
    result = await connector.fetch(FetchRequest(patient_nin=by_tag("holiday").nin,
                                                categories=frozenset()))
    assert result.status is Status.EMPTY
    assert requests == []


async def test_a_refused_request_is_rejected_not_empty() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"title": "Forbidden"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        connector = PersontjenestenConnector(
            ConnectorSettings("persontjenesten", base_url=BASE), http)
        with pytest.raises(UpstreamRejectedError):
            await ask(connector, by_tag("holiday").nin)


@pytest.mark.parametrize("body", [
    [], {"id": 5}, {"id": "p", "name": {"isValid": True}},
    {"id": "p", "residentialAddress": [{"isValid": True, "streetAddress": {
        "municipalityNumber": "Oslo"}}]},
    {"id": "p", "birth": [{"isValid": True, "birthDate": "12.05.1941"}]},
])
async def test_a_person_document_that_cannot_be_read_is_invalid(body: object) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        connector = PersontjenestenConnector(
            ConnectorSettings("persontjenesten", base_url=BASE), http)
        with pytest.raises(UpstreamInvalidError) as raised:
            await ask(connector, by_tag("holiday").nin)
    assert by_tag("holiday").nin not in str(raised.value)


def test_only_the_current_registration_counts_never_a_historic_one() -> None:
    person = demographics({"id": "p", "residentialAddress": [
        {"isValid": False, "streetAddress": {"municipalityNumber": "4601"}}]}, now())
    assert person.home_municipality is None  # no current address: unknown, not Bergen
    person = demographics({"id": "p", "residentialAddress": [
        {"isValid": True, "unknownResidence": {"municipalityNumber": "5001"}}]}, now())
    assert person.home_municipality == "5001"


def _graded(*registrations: dict[str, object]) -> dict[str, object]:
    return {"id": "p", "addressProtection": list(registrations), "residentialAddress": [
        {"isValid": True, "streetAddress": {"municipalityNumber": "0301",
                                            "municipalityName": "Oslo"}}]}


@pytest.mark.parametrize("grade", [
    "fortrolig", "strengtFortrolig", "strengtFortroligUtland",  # Folkeregisteret's code list
    "STRENGT_FORTROLIG", "StrictlyConfidential", "Confidential",  # other spellings of it
    "hemmelig",  # a grade this reader has never seen: protected, not ignored
])
def test_a_graded_address_is_never_read(grade: str) -> None:
    person = demographics(_graded({"isValid": True, "classification": grade}), now())
    assert (person.home_municipality, person.home_municipality_name,
            person.address_protection) == (None, None, "ADDRESS_PROTECTED")
    assert "0301" not in repr(person)
    assert "Oslo" not in repr(person)


def test_a_current_protection_without_a_grade_is_a_protection() -> None:
    person = demographics(_graded({"isValid": True}), now())
    assert (person.home_municipality, person.address_protection) == (None, "ADDRESS_PROTECTED")


@pytest.mark.parametrize("registrations", [
    (),  # no addressProtection registration at all
    ({"isValid": True, "classification": "ugradert"},),
    ({"isValid": True, "classification": "Unclassified"},),
    # a protection that has ended is history (the current registration is ugradert)
    ({"isValid": False, "classification": "strengtFortrolig"},
     {"isValid": True, "classification": "ugradert"}),
    ({"isValid": False, "classification": "fortrolig"},),
])
def test_an_ungraded_or_ended_protection_leaves_the_home_readable(
        registrations: tuple[dict[str, object], ...]) -> None:
    person = demographics(_graded(*registrations), now())
    assert (person.home_municipality, person.home_municipality_name,
            person.address_protection) == ("0301", "Oslo", None)


@pytest.mark.parametrize("protection", [
    {"isValid": True},  # an object, not a list of registrations
    [{"isValid": True, "classification": 6}],  # kode 6 as a number: not the wire format
    ["strengtFortrolig"],
])
async def test_an_address_protection_that_cannot_be_read_is_invalid(protection: object) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "p", "addressProtection": protection})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        connector = PersontjenestenConnector(
            ConnectorSettings("persontjenesten", base_url=BASE), http)
        with pytest.raises(UpstreamInvalidError):
            await ask(connector, by_tag("address-protected").nin)


async def test_the_protected_patient_comes_back_without_a_home_over_the_wire(
        seen: tuple[PersontjenestenConnector, list[httpx.Request]]) -> None:
    patient = by_tag("address-protected")
    result = await ask(seen[0], patient.nin)
    (person,) = result.items[Category.DEMOGRAPHICS]  # type: ignore[attr-defined]
    assert (person.name, person.home_municipality, person.address_protection) == (
        patient.name, None, "ADDRESS_PROTECTED")
