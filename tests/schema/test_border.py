"""The municipal border with the patient's home municipality: the planner asks the registry,
reports the home store it may not ask (never as EMPTY), says when nobody knows the home, and
crosses only under an emergency-only agreement the policy honours, with a reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors import Category, ConnectorSettings, SourceResult, Status
from connectors.model import Coding, Demographics, Provenance, TreatmentLimitation
from connectors.registry import Registered, Registry
from policies import PurposeOfUse, load_rules
from schema.context import Context, Services
from schema.pipeline.plan import STORE_NOT_CONNECTED, plan_patient
from schema.pipeline.request import PatientRequest
from tests.policies.people import HLR_PATIENT, citizen, clinician
from tests.schema.test_pipeline import Source

TL, DEMO = Category.TREATMENT_LIMITATIONS, Category.DEMOGRAPHICS
NOW = datetime(2026, 12, 1, tzinfo=UTC)
REASON = "Hjertestans, trenger behandlingsavklaring"
STORES = {"0301": "http://oslo", "4601": "http://bergen", "5001": "http://trondheim"}
TRONDHEIM = clinician(municipality="5001")


def person(home: str | None, protection: str | None = None) -> SourceResult:
    return SourceResult.of("persontjenesten", {DEMO: (Demographics(
        id="p1", provenance=Provenance("persontjenesten", "p1", NOW), name="Ola",
        home_municipality=home, address_protection=protection),)})


def hlr(store: str) -> TreatmentLimitation:
    return TreatmentLimitation(
        id="hlr", code=Coding("http://snomed.info/sct", "304253006"), description="HLR-minus",
        status="active", provenance=Provenance("municipal", "hlr", NOW, municipality=store))


class Stores(Source):
    """A municipal source answering an HLR-minus from every store it is asked."""

    async def fetch(self, request: Any) -> SourceResult:
        self.asked.append(request)
        return SourceResult.of(self.name, {TL: tuple(hlr(n) for n in sorted(
            request.municipalities & STORES.keys()))})


def services(registry: Source | None, stores: Source, *, agreements: tuple[tuple[str, ...], ...] = (),
             emergency: bool = False, stores_map: dict[str, str] = STORES) -> Services:
    rules = load_rules(agreements=agreements)
    rules = replace(rules, emergency_agreements=emergency)
    entries = [Registered(stores, ConnectorSettings("municipal", stores=stores_map))]
    if registry is not None:
        entries.append(Registered(registry, ConnectorSettings("persontjenesten")))
    return Services(registry=Registry(entries), rules=rules, tenants=tuple(STORES),
                    access_log=None)  # type: ignore[arg-type]


async def run(svc: Services, principal: Any, *, reason: str | None = None,
              requested: frozenset[Any] = frozenset({TL})) -> tuple[list[Any], list[Any], Any]:
    ctx = Context(svc, principal, "r1")
    patient = PatientRequest.start(ctx, HLR_PATIENT, requested, emergency_reason=reason)
    items = await patient.items(TL)
    rows = await patient.statuses()
    patient.cancel()
    return items, rows, patient.ledger()


def rows_of(rows: list[Any], source: str = "municipal") -> set[tuple[Any, ...]]:
    return {(r.status, r.reason, r.municipality) for r in rows if r.source == source}


async def test_the_home_store_not_asked_is_denied_at_the_border_never_empty() -> None:
    stores = Stores("municipal", {TL})
    items, rows, ledger = await run(services(Source("persontjenesten", {DEMO}, person("0301")),
                                             stores), TRONDHEIM)
    assert {i.provenance.municipality for i in items} == {"5001"}
    assert [r.municipalities for r in stores.asked] == [{"5001"}]
    assert rows_of(rows) == {(Status.OK, None, None), (Status.DENIED, "MUNICIPAL_BORDER", "0301")}
    assert ("MUNICIPAL_BORDER", "0301") in {(a.reason, a.municipality) for a in ledger.answers}
    assert ledger.incomplete()  # the completeness summary says so


async def test_a_home_that_is_the_callers_own_adds_no_row() -> None:
    _, rows, _ = await run(services(Source("persontjenesten", {DEMO}, person("5001")),
                                    Stores("municipal", {TL})), TRONDHEIM)
    assert rows_of(rows) == {(Status.OK, None, None)}


async def test_a_home_an_agreement_covers_is_asked_and_adds_no_row() -> None:
    stores = Stores("municipal", {TL})
    items, rows, _ = await run(services(Source("persontjenesten", {DEMO}, person("0301")), stores,
                                        agreements=(("0301", "5001"),)), TRONDHEIM)
    assert {i.provenance.municipality for i in items} == {"0301", "5001"}
    assert rows_of(rows) == {(Status.OK, None, None)}


@pytest.mark.parametrize(("registry", "reason"), [
    (Source("persontjenesten", {DEMO}, delay=5.0), "HOME_MUNICIPALITY_UNKNOWN"),
    (Source("persontjenesten", {DEMO}), "NOT_IN_REGISTRY"),
    (Source("persontjenesten", {DEMO}, person(None)), "NO_HOME_RECORDED"),
    (Source("persontjenesten", {DEMO}, person(None, "ADDRESS_PROTECTED")), "ADDRESS_PROTECTED"),
])
async def test_an_unknown_home_is_said_never_taken_for_the_callers_store(
        registry: Source, reason: str) -> None:
    svc = replace(services(registry, Stores("municipal", {TL})), deadline_seconds=0.2)
    _, rows, ledger = await run(svc, TRONDHEIM)
    assert (Status.DENIED, reason, None) in rows_of(rows)
    assert reason in {r["reason"] for r in ledger.incomplete()}


async def test_a_registry_that_does_not_answer_shows_as_its_own_row_too() -> None:
    svc = replace(services(Source("persontjenesten", {DEMO}, delay=5.0),
                           Stores("municipal", {TL})), deadline_seconds=0.2)
    _, rows, _ = await run(svc, TRONDHEIM)
    assert rows_of(rows, "persontjenesten") == {(Status.TIMEOUT, "HOME_MUNICIPALITY_UNKNOWN", None)}


async def test_a_home_store_kilde_has_no_connection_to_is_said() -> None:
    _, rows, _ = await run(services(Source("persontjenesten", {DEMO}, person("1103")),
                                    Stores("municipal", {TL})), TRONDHEIM)
    assert (Status.UNAVAILABLE, STORE_NOT_CONNECTED, "1103") in rows_of(rows)


async def test_an_emergency_only_agreement_is_off_by_default_even_under_etreat() -> None:
    etreat = replace(TRONDHEIM, purpose_of_use=PurposeOfUse.ETREAT)
    stores = Stores("municipal", {TL})
    items, rows, ledger = await run(services(Source("persontjenesten", {DEMO}, person("0301")),
                                             stores, agreements=(("0301", "5001", "emergency"),)),
                                    etreat, reason=REASON)
    assert {i.provenance.municipality for i in items} == {"5001"}
    assert [r.municipalities for r in stores.asked] == [{"5001"}]
    assert (Status.DENIED, "MUNICIPAL_BORDER", "0301") in rows_of(rows)
    assert not ledger.emergency


async def test_an_enabled_emergency_only_agreement_asks_the_home_store_with_a_reason() -> None:
    etreat = replace(TRONDHEIM, purpose_of_use=PurposeOfUse.ETREAT)
    stores = Stores("municipal", {TL})
    svc = services(Source("persontjenesten", {DEMO}, person("0301"), delay=0.01), stores,
                   agreements=(("0301", "5001", "emergency"),), emergency=True)
    items, rows, ledger = await run(svc, etreat, reason=REASON)
    assert [r.municipalities for r in stores.asked] == [{"5001", "0301"}]
    assert {i.provenance.municipality for i in items} == {"0301", "5001"}
    assert rows_of(rows) == {(Status.OK, None, None)}
    assert ledger.emergency  # audited as an emergency opening


async def test_the_agreement_reaches_only_the_home_store_never_another() -> None:
    etreat = replace(TRONDHEIM, purpose_of_use=PurposeOfUse.ETREAT)
    stores = Stores("municipal", {TL})
    svc = services(Source("persontjenesten", {DEMO}, person("4601")), stores,
                   agreements=(("0301", "5001", "emergency"),), emergency=True)
    _items, rows, ledger = await run(svc, etreat, reason=REASON)
    assert [r.municipalities for r in stores.asked] == [{"5001"}]
    assert (Status.DENIED, "MUNICIPAL_BORDER", "4601") in rows_of(rows)
    assert not ledger.emergency


async def test_without_a_reason_the_emergency_agreement_shows_the_store_as_openable() -> None:
    etreat = replace(TRONDHEIM, purpose_of_use=PurposeOfUse.ETREAT)
    stores = Stores("municipal", {TL})
    svc = services(Source("persontjenesten", {DEMO}, person("0301")), stores,
                   agreements=(("0301", "5001", "emergency"),), emergency=True)
    items, rows, _ = await run(svc, etreat)
    assert {i.provenance.municipality for i in items} == {"5001"}
    assert (Status.RESTRICTED, "MUNICIPAL_BORDER", "0301") in rows_of(rows)


async def test_the_citizen_sees_every_store_and_no_registry_is_asked_for_routing() -> None:
    registry = Source("persontjenesten", {DEMO}, person("0301"))
    stores = Stores("municipal", {TL})
    await run(services(registry, stores), citizen())
    assert registry.asked == []
    assert [r.municipalities for r in stores.asked] == [set(STORES)]


async def test_the_routing_lookup_is_not_a_delivery_of_demographics() -> None:
    _, rows, ledger = await run(services(Source("persontjenesten", {DEMO}, person("0301")),
                                         Stores("municipal", {TL})), TRONDHEIM)
    assert all(d.category is not DEMO for d in ledger.deliveries)
    assert rows_of(rows, "persontjenesten") == set()


def test_the_plan_asks_the_registry_once_when_demographics_are_selected_too() -> None:
    svc = services(Source("persontjenesten", {DEMO}, person("0301")), Stores("municipal", {TL}))
    plan = plan_patient(TRONDHEIM, HLR_PATIENT, frozenset({TL, DEMO}), services=svc)
    assert plan.home_source == "persontjenesten"
    assert not plan.fetches["persontjenesten"].routing
    assert plan.fetches["persontjenesten"].categories == {DEMO}
