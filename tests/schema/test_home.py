"""The home municipality from the registry's outcome, and the lookup other code calls: a
failed or empty registry answer is said (a reason), never guessed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from connectors import Category, ConnectorSettings, SourceResult, Status, UpstreamTimeoutError
from connectors.fanout import Outcome
from connectors.model import Demographics, Provenance
from connectors.registry import Registered, Registry
from schema.context import Services
from schema.pipeline.home import (
    ADDRESS_PROTECTED,
    HOME_UNKNOWN,
    NO_HOME_RECORDED,
    NO_REGISTRY,
    NOT_IN_REGISTRY,
    home_municipality,
    home_of,
)
from tests.policies.people import RULES_NO_AGREEMENTS
from tests.schema.test_pipeline import Source

NIN = "12054130021"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def person(home: str | None) -> Demographics:
    return Demographics(id="p1", provenance=Provenance("persontjenesten", "p1", NOW),
                        name="Ola Ferietur", home_municipality=home)


def registry(result: SourceResult | None = None) -> Source:
    return Source("persontjenesten", {Category.DEMOGRAPHICS}, result)


def services_with(*sources: Source) -> Services:
    entries = [Registered(s, ConnectorSettings(s.name, timeout=0.5)) for s in sources]
    return Services(registry=Registry(entries), rules=RULES_NO_AGREEMENTS,
                    tenants=("0301", "4601"), access_log=None)  # type: ignore[arg-type]


def test_a_known_home_is_the_current_residential_municipality() -> None:
    result = SourceResult.of("persontjenesten", {Category.DEMOGRAPHICS: (person("0301"),)})
    home = home_of(Outcome("persontjenesten", result, None, 1.0))
    assert (home.municipality, home.known, home.failed, home.reason) == ("0301", True, False, None)


def test_every_way_of_not_knowing_has_its_own_reason() -> None:
    failed = home_of(Outcome("persontjenesten", None, UpstreamTimeoutError("persontjenesten", "x"),
                             1.0))
    assert (failed.municipality, failed.status, failed.reason, failed.failed) == (
        None, Status.TIMEOUT, HOME_UNKNOWN, True)
    empty = home_of(Outcome("persontjenesten", SourceResult.empty(
        "persontjenesten", frozenset({Category.DEMOGRAPHICS})), None, 1.0))
    assert (empty.municipality, empty.status, empty.reason, empty.failed) == (
        None, Status.EMPTY, NOT_IN_REGISTRY, False)
    homeless = home_of(Outcome("persontjenesten", SourceResult.of(
        "persontjenesten", {Category.DEMOGRAPHICS: (person(None),)}), None, 1.0))
    assert (homeless.municipality, homeless.reason) == (None, NO_HOME_RECORDED)
    assert home_of(None).reason == NO_REGISTRY


def test_a_protected_address_is_a_home_kilde_does_not_know_and_says_why() -> None:
    protected = replace(person(None), address_protection="ADDRESS_PROTECTED")
    home = home_of(Outcome("persontjenesten", SourceResult.of(
        "persontjenesten", {Category.DEMOGRAPHICS: (protected,)}), None, 1.0))
    assert (home.municipality, home.known, home.failed, home.status, home.reason) == (
        None, False, False, Status.OK, ADDRESS_PROTECTED)
    assert home.person is protected
    assert home.detail is not None
    assert "protected" in home.detail


async def test_the_lookup_asks_the_registry_for_demographics_only() -> None:
    source = registry(SourceResult.of("persontjenesten", {Category.DEMOGRAPHICS: (person("4601"),)}))
    home = await home_municipality(services_with(source), NIN, request_id="r1")
    assert home.municipality == "4601"
    (asked,) = source.asked
    assert (asked.patient_nin, asked.categories, asked.request_id) == (
        NIN, frozenset({Category.DEMOGRAPHICS}), "r1")


async def test_a_hanging_registry_is_a_timeout_within_the_budget() -> None:
    home = await home_municipality(services_with(Source("persontjenesten",
                                                        {Category.DEMOGRAPHICS}, delay=5.0)),
                                   NIN, timeout=0.05)
    assert (home.status, home.reason) == (Status.TIMEOUT, HOME_UNKNOWN)


async def test_without_a_registry_the_home_is_unknown_and_says_so() -> None:
    home = await home_municipality(services_with(Source("kj", {Category.TREATMENT_LIMITATIONS})),
                                   NIN)
    assert (home.known, home.reason) == (False, NO_REGISTRY)
