"""Demographics over real HTTP: who the patient is, from the population registry fake, under
the same policy and audit as every other category."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.world import by_tag
from tests.e2e.client import Client
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.slow

HOLIDAY = by_tag("holiday")
DECEASED = by_tag("deceased")
UNKNOWN = by_tag("not-in-registry")
PROTECTED = by_tag("address-protected")
QUERY = """query($nin: String!) { patient(nin: $nin) {
  demographics { name birthDate age gender homeMunicipality homeMunicipalityName deceased
                 deceasedDate registryStatus addressProtection provenance { source } }
  sources { source category status reason detail } } }"""
ACCESS_LOG = """{ myAccessLog(first: 1) { edges { node {
  outcome deliveries { category source status count } } } } }"""


def ask(gw: Client, persona: str, nin: str) -> dict[str, Any]:
    return gw.query(QUERY, gw.token(persona, nin), {"nin": nin})


def test_a_clinician_sees_who_the_patient_is_and_where_they_live(gw: Client) -> None:
    body = ask(gw, "legevakt-lege", HOLIDAY.nin)
    assert "errors" not in body, body.get("errors")
    person = body["data"]["patient"]["demographics"]
    assert person["name"] == HOLIDAY.name
    assert person["birthDate"] == HOLIDAY.born.isoformat()
    assert (person["homeMunicipality"], person["homeMunicipalityName"]) == ("0301", "Oslo")
    assert person["deceased"] is False
    assert person["age"] >= 85
    assert person["provenance"]["source"] == "persontjenesten"
    assert gw.requests()["persontjenesten"] >= 1


def test_a_deceased_patient_is_shown_as_deceased_with_the_date_and_age_at_death(
        gw: Client) -> None:
    person = ask(gw, "legevakt-lege", DECEASED.nin)["data"]["patient"]["demographics"]
    assert (person["deceased"], person["deceasedDate"], person["registryStatus"]) == (
        True, "2026-11-20", "Deceased")
    assert person["age"] == 92


def test_a_patient_unknown_to_the_registry_has_no_demographics_and_it_says_why(
        gw: Client) -> None:
    patient = ask(gw, "legevakt-lege", UNKNOWN.nin)["data"]["patient"]
    assert patient["demographics"] is None
    rows = [r for r in patient["sources"] if r["category"] == "DEMOGRAPHICS"]
    assert [(r["source"], r["status"]) for r in rows] == [("persontjenesten", "EMPTY")]
    assert "no person" in rows[0]["detail"]


def test_the_citizen_sees_their_own_and_the_delivery_is_in_their_access_log(gw: Client) -> None:
    person = ask(gw, "innbygger", HOLIDAY.nin)["data"]["patient"]["demographics"]
    assert person["name"] == HOLIDAY.name
    clinician = ask(gw, "legevakt-lege", HOLIDAY.nin)["data"]["patient"]["demographics"]
    assert clinician["name"] == HOLIDAY.name
    log = gw.query(ACCESS_LOG, gw.token("innbygger", HOLIDAY.nin))
    node = log["data"]["myAccessLog"]["edges"][0]["node"]
    assert {"category": "demographics", "source": "persontjenesten", "status": "OK",
            "count": 1} in node["deliveries"]


def test_the_privacy_officer_gets_no_demographics(gw: Client) -> None:
    body = ask(gw, "personvernombud", HOLIDAY.nin)
    assert body["data"]["patient"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert HOLIDAY.name not in str(body)


def test_a_hanging_registry_is_a_timeout_not_an_unknown_person(e2e: Stack) -> None:
    e2e.fault("persontjenesten", mode="hang")
    gw = Client(e2e.gateway.url, e2e.sandbox.url, e2e.settings)
    try:
        patient = gw.query(QUERY, gw.token("legevakt-lege", DECEASED.nin),
                           {"nin": DECEASED.nin}, )
    finally:
        gw.close()
    assert patient["data"]["patient"]["demographics"] is None
    rows = [r for r in patient["data"]["patient"]["sources"] if r["category"] == "DEMOGRAPHICS"]
    assert [r["status"] for r in rows] == ["TIMEOUT"]
    assert patient["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"


@pytest.mark.parametrize("persona", ["legevakt-lege", "lege-annen-kommune", "hjemmesykepleier",
                                     "innbygger"])
def test_a_protected_address_is_withheld_from_every_caller_and_labelled(
        gw: Client, persona: str) -> None:
    body = ask(gw, persona, PROTECTED.nin)
    assert "errors" not in body, body.get("errors")
    person = body["data"]["patient"]["demographics"]
    assert (person["name"], person["birthDate"]) == (PROTECTED.name, PROTECTED.born.isoformat())
    assert (person["homeMunicipality"], person["homeMunicipalityName"],
            person["addressProtection"]) == (None, None, "ADDRESS_PROTECTED")


def test_an_ungraded_address_has_no_protection_label(gw: Client) -> None:
    person = ask(gw, "legevakt-lege", HOLIDAY.nin)["data"]["patient"]["demographics"]
    assert (person["homeMunicipality"], person["addressProtection"]) == ("0301", None)
