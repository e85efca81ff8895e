"""Colliding identifiers on an independent FHIR server: never another person's item, never merged.

The interop host (Medplum's fhir-router, tests/interop/fhir/server.mjs) is loaded with pairs of
people whose identifiers collide (the same digits under the D-number and fnr systems, an
H-nummer or a local MRN with the same digits, a person with both an fnr and a D-number, one
person twice, a `Patient.link`), each pair with its own synthetic numbers so the cases share
the one repository without meeting. The municipal connector reads the host as Oslo's store over
real HTTP, with Medplum's own search (token search by system, batch, no chaining) deciding what
comes back. The same collisions against the sandbox's store profiles are in
tests/connectors/test_municipal_collisions.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest

from connectors.base import ConnectorSettings, FetchRequest, Requester
from connectors.errors import UpstreamInvalidError
from connectors.identifiers import make_nin
from connectors.model import Category, Status
from connectors.municipal import create
from sandbox.world import PATIENTS

pytestmark = pytest.mark.slow

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
FHN = "urn:oid:2.16.578.1.12.4.1.4.3"
CONDITIONS = frozenset({Category.CONDITIONS})
_serial = itertools.count(500)
WORLD = {p.nin for p in PATIENTS}  # the host also holds the sandbox world (other modules)


class People:
    """Fresh synthetic numbers for one case: `fnr`, the `dnr` of the same birth date, `other`."""

    def __init__(self) -> None:
        while True:  # not every birth date and individual number has valid control digits
            n = next(_serial)
            born = date(1940 + n % 50, 1 + n % 12, 1 + n % 28)
            fnr, dnr, other = (make_nin(born, 900 + n % 100),
                               make_nin(born, 900 + n % 100, d_number=True),
                               make_nin(born, 900 + (n + 50) % 100))
            if fnr and dnr and other and not {fnr, dnr, other} & WORLD:
                break
        self.fnr, self.dnr, self.other, self.tag = fnr, dnr, other, f"coll{n}"


Case = Callable[[People], list[tuple[str, list[tuple[str, str]], dict[str, Any]]]]
SEPARATE: dict[str, Case] = {
    "same digits under the D-number system": lambda p: [
        ("me", [(FNR, p.fnr)], {}), ("other", [(DNR, p.fnr)], {})],
    "same digits as an H-nummer": lambda p: [
        ("me", [(FNR, p.fnr)], {}), ("other", [(FHN, p.fnr)], {})],
    "same digits as a local MRN": lambda p: [
        ("me", [(FNR, p.fnr)], {}), ("other", [("http://epj.example/mrn", p.fnr)], {})],
    "the D-number of the same birth date": lambda p: [
        ("me", [(FNR, p.fnr)], {}), ("other", [(DNR, p.dnr)], {})],
    "another person's second identifier under another system": lambda p: [
        ("me", [(FNR, p.fnr)], {}),
        ("other", [(FNR, p.other), ("http://epj.example/mrn", p.fnr)], {})],
}


def _load(host: str, people: People, case: Case) -> None:
    """PUT each Patient `{tag}-{rid}` and one Condition `{tag}-{rid}-c` referring to it."""
    for rid, identifiers, extra in case(people):
        pid = f"{people.tag}-{rid}"
        for key in ("link",):
            if key in extra:
                extra = {**extra, key: [{**link, "other": {
                    "reference": f"Patient/{people.tag}-{link['other']}"}}
                    for link in extra[key]]}
        resources = [
            {"resourceType": "Patient", "id": pid,
             "identifier": [{"system": s, "value": v} for s, v in identifiers], **extra},
            {"resourceType": "Condition", "id": f"{pid}-c",
             "code": {"coding": [{"system": "urn:oid:2.16.578.1.12.4.1.1.7170", "code": "K86"}]},
             "clinicalStatus": {"coding": [{
                 "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                 "code": "active"}]},
             "subject": {"reference": f"Patient/{pid}"}},
        ]
        for resource in resources:
            r = httpx.put(f"{host}/{resource['resourceType']}/{resource['id']}", json=resource,
                          timeout=30)
            assert r.status_code in (200, 201), r.text


async def _ask(host: str, nin: str) -> Any:
    async with httpx.AsyncClient() as http:
        conn = create(ConnectorSettings("municipal", stores={"0301": host}), http)
        return await conn.fetch(FetchRequest(
            nin, CONDITIONS, Requester(hpr_number="9144901", role_code="LE"),
            municipalities=frozenset({"0301"}), request_id="collisions", timeout=10.0))


def _shown(result: Any) -> list[str]:
    return sorted(c.id for c in result.items[Category.CONDITIONS])


@pytest.mark.parametrize("case", sorted(SEPARATE))
async def test_a_colliding_identifier_shows_only_the_asked_persons_items(fhir_host: str,
                                                                         case: str) -> None:
    people = People()
    _load(fhir_host, people, SEPARATE[case])
    result = await _ask(fhir_host, people.fnr)
    assert _shown(result) == [f"{people.tag}-me-c"]
    assert result.status_for(Category.CONDITIONS) is Status.OK


async def test_a_d_number_finds_only_its_own_patient(fhir_host: str) -> None:
    people = People()
    _load(fhir_host, people, lambda p: [("me", [(FNR, p.fnr)], {}), ("d", [(DNR, p.dnr)], {})])
    assert _shown(await _ask(fhir_host, people.dnr)) == [f"{people.tag}-d-c"]


@pytest.mark.parametrize("by", ["fnr", "dnr"])
async def test_a_patient_with_an_fnr_and_a_d_number_is_one_person(fhir_host: str, by: str
                                                                  ) -> None:
    people = People()
    _load(fhir_host, people, lambda p: [("me", [(DNR, p.dnr), (FNR, p.fnr)], {}),
                                        ("other", [(FNR, p.other)], {})])
    assert _shown(await _ask(fhir_host, getattr(people, by))) == [f"{people.tag}-me-c"]


TWICE: dict[str, Case] = {
    "two Patients with the fnr": lambda p: [("a", [(FNR, p.fnr)], {}), ("b", [(FNR, p.fnr)], {})],
    "one by fnr, one by fnr and D-number": lambda p: [
        ("a", [(FNR, p.fnr)], {}), ("b", [(DNR, p.dnr), (FNR, p.fnr)], {})],
    "one under the OID, one under the NamingSystem URI": lambda p: [
        ("a", [(FNR, p.fnr)], {}), ("b", [("http://hl7.no/fhir/NamingSystem/FNR", p.fnr)], {})],
}


@pytest.mark.parametrize("case", sorted(TWICE))
async def test_one_person_twice_is_invalid_never_merged(fhir_host: str, case: str) -> None:
    people = People()
    _load(fhir_host, people, TWICE[case])
    with pytest.raises(UpstreamInvalidError, match="several patient records"):
        await _ask(fhir_host, people.fnr)


@pytest.mark.parametrize("link", ["replaces", "seealso"])
async def test_a_linked_record_is_not_merged_and_the_answer_says_so(fhir_host: str, link: str
                                                                    ) -> None:
    people = People()
    _load(fhir_host, people, lambda p: [
        ("me", [(FNR, p.fnr)], {"link": [{"other": "old", "type": link}]}),
        ("old", [], {"active": False})])
    result = await _ask(fhir_host, people.fnr)
    assert _shown(result) == [f"{people.tag}-me-c"]
    assert result.status_for(Category.CONDITIONS) is Status.PARTIAL
    reason = result.reason_for(Category.CONDITIONS)
    assert reason is not None
    assert reason.code == "LINKED_PATIENT_RECORD"


async def test_a_record_replaced_by_another_is_invalid(fhir_host: str) -> None:
    people = People()
    _load(fhir_host, people, lambda p: [
        ("old", [(FNR, p.fnr)], {"link": [{"other": "new", "type": "replaced-by"}]}),
        ("new", [(DNR, p.dnr)], {})])
    with pytest.raises(UpstreamInvalidError, match="replaced by another"):
        await _ask(fhir_host, people.fnr)
