"""Patients whose identifiers collide never see each other's items, and are never merged.

Every case is a store holding two people (or one person twice) whose identifiers collide in a
way real registers and EPJs produce: the same digits under the D-number and the fødselsnummer
systems, a person with both (a D-number later replaced by an fnr), a `Patient.link`, the same
digits under another system (an H-nummer, a local MRN), whitespace and format variants. Each is
asked in every store profile of the sandbox's FHIR engine; the same collisions against an
independent FHIR server are in tests/interop/fhir/test_identity_collisions.py.

The rule checked is the issue's: the items shown are only those of the person asked about, or
the answer is INVALID/PARTIAL with a reason; never another person's item, never two records
merged without a word.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from connectors.errors import UpstreamInvalidError
from connectors.identifiers import make_nin
from connectors.model import Category, Status
from tests.connectors.municipal_stores import DNR, FNR, condition, fetch_request, patient, stores

HNR = "urn:oid:2.16.578.1.12.4.1.4.3"  # FHN (felles hjelpenummer)
CONDITIONS = frozenset({Category.CONDITIONS})
PROFILES = ("full", "batch", "plain", "paged")


def nin(day: int, individual: int, *, d_number: bool = False) -> str:
    number = make_nin(date(1961, 3, day), individual, d_number=d_number)
    assert number is not None
    return number


ASKED = nin(14, 413)  # the person asked about (fnr)
ASKED_D = nin(14, 413, d_number=True)  # a D-number with the same birth date and individual


def held(*people: tuple[str, list[tuple[str, str]], dict[str, Any]]) -> list[dict[str, Any]]:
    """Patients (id, identifiers, extra fields), each with one Condition `{id}-c`."""
    out = []
    for rid, identifiers, extra in people:
        out.append(patient(rid, *identifiers, **extra))
        out.append(condition(f"{rid}-c", f"Patient/{rid}"))
    return out


async def _ask(resources: list[dict[str, Any]], profile: str, number: str = ASKED) -> Any:
    conn, _ = stores({"0301": resources}, profile)
    return await conn.fetch(fetch_request(patient_nin=number, categories=CONDITIONS))


def _shown(result: Any) -> list[str]:
    return sorted(c.id for c in result.items[Category.CONDITIONS])


# (description, the store's people, items the asked person may see) - the other person's
# Condition must never appear
SEPARATE_PEOPLE = {
    "same digits under D-number and fnr systems": held(
        ("me", [(FNR, ASKED)], {}), ("other", [(DNR, ASKED)], {})),
    "same digits as an H-nummer (FHN)": held(
        ("me", [(FNR, ASKED)], {}), ("other", [(HNR, ASKED)], {})),
    "same digits as a local MRN": held(
        ("me", [(FNR, ASKED)], {}), ("other", [("http://epj.example/mrn", ASKED)], {})),
    "same digits without a system": held(
        ("me", [(FNR, ASKED)], {}), ("other", [("", ASKED)], {})),
    "the D-number of the same birth date": held(
        ("me", [(FNR, ASKED)], {}), ("other", [(DNR, ASKED_D)], {})),
    "another person with the number in a second identifier of another system": held(
        ("me", [(FNR, ASKED)], {}),
        ("other", [(FNR, nin(15, 413)), ("http://epj.example/mrn", ASKED)], {})),
}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case", sorted(SEPARATE_PEOPLE))
async def test_a_colliding_identifier_of_another_person_shows_only_the_asked_persons_items(
        profile: str, case: str) -> None:
    result = await _ask(SEPARATE_PEOPLE[case], profile)
    assert _shown(result) == ["me-c"]
    assert result.status_for(Category.CONDITIONS) is Status.OK


@pytest.mark.parametrize("case", sorted(SEPARATE_PEOPLE))
async def test_a_lenient_store_with_colliding_people_shows_no_other_persons_item(case: str
                                                                                ) -> None:
    """A store that ignores the search answers both Patients: INVALID, nothing shown."""
    with pytest.raises(UpstreamInvalidError):
        await _ask(SEPARATE_PEOPLE[case], "lenient")


@pytest.mark.parametrize("profile", PROFILES)
async def test_a_d_number_is_not_the_fnr_patient_with_other_digits(profile: str) -> None:
    resources = held(("me", [(FNR, ASKED)], {}), ("dnr", [(DNR, ASKED_D)], {}))
    result = await _ask(resources, profile, ASKED_D)
    assert _shown(result) == ["dnr-c"]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("number", [ASKED, ASKED_D], ids=["by-fnr", "by-d-number"])
async def test_a_patient_with_both_an_fnr_and_a_d_number_is_one_person(profile: str,
                                                                       number: str) -> None:
    resources = held(("me", [(DNR, ASKED_D), (FNR, ASKED)], {}),
                     ("other", [(FNR, nin(16, 413))], {}))
    result = await _ask(resources, profile, number)
    assert _shown(result) == ["me-c"]


TWICE = {
    "two Patients with the fnr": held(("a", [(FNR, ASKED)], {}), ("b", [(FNR, ASKED)], {})),
    "one by fnr, one by fnr and D-number": held(
        ("a", [(FNR, ASKED)], {}), ("b", [(DNR, ASKED_D), (FNR, ASKED)], {})),
    "one under the OID, one under the NamingSystem URI": held(
        ("a", [(FNR, ASKED)], {}), ("b", [("http://hl7.no/fhir/NamingSystem/FNR", ASKED)], {})),
    "two linked to each other": held(
        ("a", [(FNR, ASKED)], {"link": [{"other": {"reference": "Patient/b"},
                                         "type": "seealso"}]}),
        ("b", [(FNR, ASKED)], {"link": [{"other": {"reference": "Patient/a"},
                                         "type": "seealso"}]})),
}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case", sorted(TWICE))
async def test_one_person_twice_in_a_store_is_invalid_never_merged(profile: str, case: str
                                                                    ) -> None:
    with pytest.raises(UpstreamInvalidError, match="several patient records"):
        await _ask(TWICE[case], profile)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("link", ["replaces", "seealso", "refer"])
async def test_a_link_to_another_record_reads_the_patients_own_records_as_partial(
        profile: str, link: str) -> None:
    """The older record (no identifier: the store moved it) holds a Condition of its own: it
    is not read or merged, and the answer says the patient record is linked."""
    resources = held(
        ("me", [(FNR, ASKED)], {"link": [{"other": {"reference": "Patient/old"}, "type": link}]}),
        ("old", [], {"active": False}))
    result = await _ask(resources, profile)
    assert _shown(result) == ["me-c"]
    assert result.status_for(Category.CONDITIONS) is Status.PARTIAL
    reason = result.reason_for(Category.CONDITIONS)
    assert reason is not None
    assert reason.code == "LINKED_PATIENT_RECORD"
    assert "Patient.link" in reason.detail
    assert ASKED not in reason.detail


@pytest.mark.parametrize("profile", PROFILES)
async def test_a_patient_replaced_by_another_is_invalid(profile: str) -> None:
    resources = held(
        ("old", [(FNR, ASKED)], {"link": [{"other": {"reference": "Patient/new"},
                                           "type": "replaced-by"}]}),
        ("new", [(DNR, ASKED_D)], {}))
    with pytest.raises(UpstreamInvalidError, match="replaced by another"):
        await _ask(resources, profile)


@pytest.mark.parametrize("links", ["a link", [7], {"type": "seealso"}])
async def test_a_patient_whose_links_cannot_be_read_is_invalid(links: Any) -> None:
    resources = held(("me", [(FNR, ASKED)], {"link": links}))
    with pytest.raises(UpstreamInvalidError, match="links cannot be read"):
        await _ask(resources, "plain")


# Format variants the store keeps; what a search finds is the store's business, what Kilde
# accepts as this person is checked here: surrounding whitespace is the same number, any
# other variant is not (INVALID when a store answers it, never shown as this person).
SAME = [f" {ASKED}", f"{ASKED} ", f"\t{ASKED}\n"]
NOT_SAME = [f"{ASKED[:6]} {ASKED[6:]}", f"{ASKED[:6]}-{ASKED[6:]}", f"0{ASKED}", ASKED[:-1],
            ASKED[::-1]]


@pytest.mark.parametrize("value", SAME, ids=repr)
async def test_surrounding_whitespace_in_a_returned_identifier_is_the_same_number(value: str
                                                                                  ) -> None:
    resources = held(("me", [(FNR, value)], {}))
    result = await _ask_answering(resources, "me")
    assert _shown(result) == ["me-c"]


@pytest.mark.parametrize("value", NOT_SAME, ids=repr)
async def test_another_format_of_the_number_is_never_taken_for_the_person(value: str) -> None:
    resources = held(("them", [(FNR, value)], {}))
    with pytest.raises(UpstreamInvalidError, match="another person's record"):
        await _ask_answering(resources, "them")


async def _ask_answering(resources: list[dict[str, Any]], rid: str) -> Any:
    """Ask a store that answers the Patient search with Patient `rid` whatever its identifier
    says (a store that normalises identifiers its own way)."""
    import json

    import httpx

    conn, recorder = stores({"0301": resources}, "plain")
    chosen = next(r for r in resources if r["resourceType"] == "Patient" and r["id"] == rid)

    class Normalising(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/Patient/_search"):
                await request.aread()
                body = {"resourceType": "Bundle", "type": "searchset", "total": 1,
                        "entry": [{"resource": chosen, "search": {"mode": "match"}}]}
                return httpx.Response(200, content=json.dumps(body).encode(),
                                      headers={"content-type": "application/fhir+json"})
            return await recorder.handle_async_request(request)

    conn._http = httpx.AsyncClient(transport=Normalising())
    conn._capabilities._http = conn._http
    return await conn.fetch(fetch_request(patient_nin=ASKED, categories=CONDITIONS))


@pytest.mark.parametrize("profile", PROFILES)
async def test_records_naming_the_patient_by_a_colliding_identifier_make_the_store_invalid(
        profile: str) -> None:
    """A record of the asked person's Patient id whose subject identifier says another system:
    the store cannot be trusted to have filtered by person."""
    resources = [patient("me", (FNR, ASKED)),
                 condition("c1", {"reference": "Patient/me",
                                  "identifier": {"system": DNR, "value": ASKED}})]
    with pytest.raises(UpstreamInvalidError, match="another patient"):
        await _ask(resources, profile)
