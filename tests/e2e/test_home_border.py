"""The holiday case over real HTTP (#13 item 1): the patient's home store, from the population
registry, is listed when it was not asked; an emergency-only agreement the municipality turned
on lets an ETREAT access with a reason ask it (an emergency opening, audited); nothing else
crosses; and when the registry cannot say where the patient lives, the answer says so."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.world import by_tag
from tests.e2e.auditing import audited_gateway
from tests.e2e.client import Client
from tests.e2e.conftest import Stack
from tests.servers import demo_app, e2e_settings, listening_socket, port_of, running

pytestmark = pytest.mark.slow

HOLIDAY = by_tag("holiday")  # lives in Oslo (HLR-minus in Oslo's store), seen in Trondheim
BERGEN = by_tag("other-municipality")  # lives in Bergen: neither Trondheim's nor agreed
DECEASED = by_tag("deceased")
UNKNOWN = by_tag("not-in-registry")
PROTECTED = by_tag("address-protected")  # strengt fortrolig adresse; lives in Oslo
REASON = "Hjertestans ved ankomst, trenger behandlingsavklaring"
QUERY = """query($nin: String!, $reason: String) { patient(nin: $nin, emergencyReason: $reason) {
  alerts { kind provenance { source municipality } }
  treatmentLimitations { code { code } provenance { source recordId municipality } }
  demographics { name homeMunicipality homeMunicipalityName deceased deceasedDate
                 addressProtection }
  sources { source category status reason municipality detail } } }"""
ALERTS_ONLY = """query($nin: String!) { patient(nin: $nin) { alerts { kind } } }"""
ACCESS_LOG = """{ myAccessLog(first: 1) { edges { node {
  outcome reason emergency emergencyReason deliveries { category source status count } } } } }"""


def ask(gw: Client, nin: str, *, persona: str = "lege-annen-kommune", purpose: str | None = None,
        reason: str | None = None) -> dict[str, Any]:
    token = gw.token(persona, nin, **({"purpose": purpose} if purpose else {}))
    body = gw.query(QUERY, token, {"nin": nin, "reason": reason})
    assert "errors" not in body or all(e["extensions"]["code"] != "BAD_USER_INPUT"
                                       for e in body["errors"]), body["errors"]
    return body


def municipal_rows(patient: dict[str, Any], category: str = "TREATMENT_LIMITATIONS"
                   ) -> set[tuple[str, str | None, str | None]]:
    return {(r["status"], r["reason"], r["municipality"]) for r in patient["sources"]
            if r["source"] == "municipal" and r["category"] == category}


@pytest.fixture(scope="module")
def emergency_agreed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A gateway on the shared sandbox whose policy honours emergency-only agreements, with
    Oslo -> Trondheim as one (Trondheim's legevakt may ask Oslo's store in an emergency)."""
    folder = tmp_path_factory.mktemp("emergency-agreed")
    policy = folder / "policy.toml"
    policy.write_text("[border]\nemergency_agreements = true\n")
    sock = listening_socket()
    settings = e2e_settings(port_of(sock), stack.sandbox.url,
                            f"sqlite:///{folder / 'audit.sqlite3'}",
                            agreements=(("0301", "5001", "emergency"),), policy_file=str(policy))
    with running(demo_app(settings), sock) as gateway:
        client = Client(gateway.url, stack.sandbox.url, settings)
        yield client
        client.close()


def test_holiday_seen_in_trondheim_lists_oslos_store_as_not_asked(gw: Client) -> None:
    body = ask(gw, HOLIDAY.nin)
    patient = body["data"]["patient"]
    assert patient["treatmentLimitations"] == []  # Oslo's HLR-minus was not asked for
    assert ("DENIED", "MUNICIPAL_BORDER", "0301") in municipal_rows(patient)
    assert ("EMPTY", None, None) in municipal_rows(patient)  # Trondheim's own store answered
    assert patient["demographics"]["homeMunicipality"] == "0301"
    assert gw.requests_below("municipal")["0301"] == 0  # not asked, really
    summary = body["extensions"]["completeness"]
    assert summary["complete"] is False
    assert ("municipal", "0301", "TREATMENT_LIMITATIONS", "DENIED", "MUNICIPAL_BORDER") in {
        (i["source"], i["municipality"], i["category"], i["status"], i["reason"])
        for i in summary["patients"][0]["incomplete"]}


def test_a_query_for_alerts_only_still_carries_the_not_asked_home_store(gw: Client) -> None:
    body = gw.query(ALERTS_ONLY, gw.token("lege-annen-kommune", HOLIDAY.nin),
                    {"nin": HOLIDAY.nin})
    incomplete = body["extensions"]["completeness"]["patients"][0]["incomplete"]
    assert {(i["source"], i["municipality"], i["reason"]) for i in incomplete} >= {
        ("municipal", "0301", "MUNICIPAL_BORDER")}


def test_etreat_without_an_agreement_does_not_cross_even_with_a_reason(gw: Client) -> None:
    patient = ask(gw, HOLIDAY.nin, purpose="ETREAT", reason=REASON)["data"]["patient"]
    assert patient["treatmentLimitations"] == []
    assert ("DENIED", "MUNICIPAL_BORDER", "0301") in municipal_rows(patient)
    assert gw.requests_below("municipal")["0301"] == 0


def test_the_emergency_agreement_asks_the_home_store_and_is_audited_as_an_opening(
        emergency_agreed: Client) -> None:
    gw = emergency_agreed
    gw.reset_counts()
    patient = ask(gw, HOLIDAY.nin, purpose="ETREAT", reason=REASON)["data"]["patient"]
    assert [(t["code"]["code"], t["provenance"]["municipality"])
            for t in patient["treatmentLimitations"]] == [("304253006", "0301")]
    assert patient["alerts"][0]["kind"] == "TREATMENT_LIMITATION"
    assert not any(r["reason"] == "MUNICIPAL_BORDER" for r in patient["sources"])
    assert gw.requests_below("municipal")["0301"] > 0
    entry = gw.query(ACCESS_LOG, gw.token("innbygger", HOLIDAY.nin))
    node = entry["data"]["myAccessLog"]["edges"][0]["node"]
    assert (node["reason"], node["emergency"], node["emergencyReason"]) == (
        "EMERGENCY_OPENING", True, REASON)


def test_the_emergency_agreement_needs_the_reason_and_says_nodtilgang_may_ask(
        emergency_agreed: Client) -> None:
    gw = emergency_agreed
    gw.reset_counts()
    patient = ask(gw, HOLIDAY.nin, purpose="ETREAT")["data"]["patient"]
    assert patient["treatmentLimitations"] == []
    assert ("RESTRICTED", "MUNICIPAL_BORDER", "0301") in municipal_rows(patient)
    assert gw.requests_below("municipal")["0301"] == 0


def test_the_emergency_agreement_reaches_the_home_store_only(emergency_agreed: Client) -> None:
    gw = emergency_agreed
    gw.reset_counts()
    patient = ask(gw, BERGEN.nin, purpose="ETREAT", reason=REASON)["data"]["patient"]
    assert ("DENIED", "MUNICIPAL_BORDER", "4601") in municipal_rows(patient, "CONDITIONS") or (
        ("DENIED", "MUNICIPAL_BORDER", "4601") in municipal_rows(patient))
    counts = gw.requests_below("municipal")
    assert (counts["0301"], counts["4601"]) == (0, 0)


def test_a_home_neither_the_callers_nor_agreed_is_listed_with_its_municipality(
        gw: Client) -> None:
    patient = ask(gw, BERGEN.nin)["data"]["patient"]
    assert ("DENIED", "MUNICIPAL_BORDER", "4601") in municipal_rows(patient)
    assert patient["demographics"]["homeMunicipality"] == "4601"


def test_a_deceased_patient_is_said_to_be_deceased_and_the_border_still_holds(
        gw: Client) -> None:
    patient = ask(gw, DECEASED.nin)["data"]["patient"]
    assert (patient["demographics"]["deceased"], patient["demographics"]["deceasedDate"]) == (
        True, "2026-11-20")
    assert ("DENIED", "MUNICIPAL_BORDER", "0301") in municipal_rows(patient)


def test_a_patient_unknown_to_the_registry_is_said_not_guessed(gw: Client) -> None:
    body = ask(gw, UNKNOWN.nin)
    patient = body["data"]["patient"]
    assert patient["demographics"] is None
    assert ("DENIED", "NOT_IN_REGISTRY", None) in municipal_rows(patient)
    assert not any(r["municipality"] == "0301" for r in patient["sources"])  # no guess
    assert body["extensions"]["completeness"]["complete"] is False


def test_a_registry_that_does_not_answer_leaves_the_home_unknown_and_says_so(
        e2e: Stack) -> None:
    e2e.fault("persontjenesten", mode="error")
    gw = Client(e2e.gateway.url, e2e.sandbox.url, e2e.settings)
    try:
        body = gw.query(ALERTS_ONLY.replace("alerts { kind }",
                                            "alerts { kind } sources { source category status "
                                            "reason municipality }"),
                        gw.token("lege-annen-kommune", HOLIDAY.nin), {"nin": HOLIDAY.nin})
    finally:
        gw.close()
    rows = {(r["source"], r["category"], r["status"], r["reason"])
            for r in body["data"]["patient"]["sources"]}
    assert ("persontjenesten", "DEMOGRAPHICS", "UNAVAILABLE", "HOME_MUNICIPALITY_UNKNOWN") in rows
    assert ("municipal", "TREATMENT_LIMITATIONS", "DENIED", "HOME_MUNICIPALITY_UNKNOWN") in rows
    incomplete = body["extensions"]["completeness"]["patients"][0]["incomplete"]
    assert "HOME_MUNICIPALITY_UNKNOWN" in {i["reason"] for i in incomplete}


def test_an_oslo_physician_sees_the_oslo_patient_without_any_border_row(gw: Client) -> None:
    patient = ask(gw, HOLIDAY.nin, persona="legevakt-lege")["data"]["patient"]
    assert [t["provenance"]["municipality"] for t in patient["treatmentLimitations"]] == ["0301"]
    assert not any(r["reason"] == "MUNICIPAL_BORDER" for r in patient["sources"])


def _says_nothing_of_the_protected_home(text: str) -> None:
    for word in ("0301", "Oslo", "Storgata"):  # the municipality, its name, the street
        assert word not in text, f"{word!r} in {text[:300]}"


def test_a_protected_address_is_said_to_be_protected_never_named(gw: Client) -> None:
    gw.reset_counts()
    body = ask(gw, PROTECTED.nin)
    patient = body["data"]["patient"]
    assert patient["demographics"]["name"] == PROTECTED.name  # who she is is still shown
    assert (patient["demographics"]["homeMunicipality"],
            patient["demographics"]["homeMunicipalityName"],
            patient["demographics"]["addressProtection"]) == (None, None, "ADDRESS_PROTECTED")
    assert ("DENIED", "ADDRESS_PROTECTED", None) in municipal_rows(patient)
    assert not any(r["reason"] == "MUNICIPAL_BORDER" for r in patient["sources"])
    incomplete = body["extensions"]["completeness"]["patients"][0]["incomplete"]
    assert "ADDRESS_PROTECTED" in {i["reason"] for i in incomplete}
    assert {i["municipality"] for i in incomplete if i["reason"] == "ADDRESS_PROTECTED"} == {None}
    _says_nothing_of_the_protected_home(json.dumps(body))
    assert gw.requests_below("municipal")["0301"] == 0  # her home store was not asked


def test_an_emergency_agreement_does_not_route_by_a_protected_home(
        emergency_agreed: Client) -> None:
    gw = emergency_agreed
    gw.reset_counts()
    body = ask(gw, PROTECTED.nin, purpose="ETREAT", reason=REASON)
    patient = body["data"]["patient"]
    assert ("DENIED", "ADDRESS_PROTECTED", None) in municipal_rows(patient)
    assert gw.requests_below("municipal")["0301"] == 0  # asking it would say where she lives
    _says_nothing_of_the_protected_home(json.dumps(body))


def test_the_callers_own_store_still_answers_for_a_protected_patient(gw: Client) -> None:
    """Oslo's legevakt asks its own store, as for anyone (its own records, its own
    municipality); the home is still not named, nor taken for the caller's."""
    patient = ask(gw, PROTECTED.nin, persona="legevakt-lege")["data"]["patient"]
    assert patient["demographics"]["homeMunicipality"] is None
    assert ("DENIED", "ADDRESS_PROTECTED", None) in municipal_rows(patient)
    assert ("EMPTY", None, None) in municipal_rows(patient)  # Oslo's store: no limitation


def test_a_protected_home_is_in_no_log_line_and_no_audit_event(
        stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with audited_gateway(stack.sandbox.url, f"sqlite:///{tmp_path / 'audit.sqlite3'}") as gw:
        caplog.set_level(logging.DEBUG)
        caplog.clear()  # from here on only Trondheim's reads of her record
        for purpose, reason in ((None, None), ("ETREAT", REASON)):
            token = gw.token("lege-annen-kommune", PROTECTED.nin,
                             **({"purpose": purpose} if purpose else {}))
            r = gw.query(QUERY, token, {"nin": PROTECTED.nin, "reason": reason})
            assert r.status_code == 200, r.text[:300]
            _says_nothing_of_the_protected_home(r.text)
        logs = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__!r}" for r in caplog.records)
        r = gw.query(QUERY, gw.token("legevakt-lege", PROTECTED.nin), {"nin": PROTECTED.nin})
        assert r.status_code == 200, r.text[:300]
        events = [e for e in gw.events() if e.patient_nin == PROTECTED.nin]
    assert "kilde" in logs  # the requests' own log lines were captured at all
    _says_nothing_of_the_protected_home(logs)
    assert len(events) == 3
    # the rows oversight reads (the own-municipality rule) carry no home for her
    assert {e.patient_municipality for e in events} == {None}
    for event in events:
        if event.actor_municipality == "5001":  # Trondheim's reads: nothing says Oslo
            _says_nothing_of_the_protected_home(repr(event))
