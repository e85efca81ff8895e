"""The registry builds connectors from entry points and configuration, and refuses anything
wrong at start with one sentence naming the connector and the setting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from connectors import (
    Category,
    CategorySpec,
    Coding,
    ConnectorConfigError,
    ConnectorPlugin,
    ConnectorSettings,
    FetchRequest,
    Provenance,
    SourceResult,
)
from connectors.registry import installed_factories, load_connectors


@dataclass(frozen=True)
class Alarm:
    id: str
    provenance: Provenance
    security: tuple[Coding, ...] = ()


@dataclass(frozen=True)
class OtherAlarm:
    id: str
    provenance: Provenance
    security: tuple[Coding, ...] = ()


ALARMS = CategorySpec("safety_alarms", item_type=Alarm)


class Fake:
    def __init__(self, name: str, categories: frozenset[Any]) -> None:
        self.name = name
        self.categories = categories

    async def fetch(self, request: FetchRequest) -> SourceResult:
        return SourceResult.empty(self.name, request.categories)

    async def aclose(self) -> None:
        pass


def factory(name: str, *categories: Any) -> Callable[[ConnectorSettings, httpx.AsyncClient], Fake]:
    return lambda settings, http: Fake(name, frozenset(categories or {Category.DOCUMENTS}))


def installed(**entries: object) -> dict[str, tuple[Callable[[], object], str]]:
    return {name: ((lambda e=entry: e), "1.2.3") for name, entry in entries.items()}


def load(enabled: list[str], factories: dict[str, Any],
         settings: dict[str, ConnectorSettings] | None = None) -> Any:
    return load_connectors(enabled, settings or {}, httpx.AsyncClient(), factories=factories)


def test_a_factory_and_a_plugin_both_register_with_version_standard_and_description() -> None:
    plugin = ConnectorPlugin(factory("hub"), standard="FHIR R4", description="A hub.")
    registry = load(["plain", "hub"], installed(plain=factory("plain"), hub=plugin))
    assert registry.names == ("plain", "hub")
    hub = registry.get("hub")
    assert (hub.version, hub.standard, hub.description) == ("1.2.3", "FHIR R4", "A hub.")


def test_every_builtin_is_installed_under_the_entry_point_group() -> None:
    assert {"municipal", "kjernejournal", "pll", "eresept", "proevesvar"} <= set(
        installed_factories())


@pytest.mark.parametrize(("enabled", "settings", "message"), [
    (["nope"], {}, "Connector 'nope' is enabled but not installed. Installed: ['hub']."),
    ([], {"huub": ConnectorSettings("huub")},
     "KILDE_CONNECTORS__HUUB__* configures connector 'huub', which is not installed. "
     "Installed: ['hub']."),
    (["hub"], {"hub": ConnectorSettings("hub", options={"page_size": "5"})},
     "Connector 'hub' has no setting KILDE_CONNECTORS__HUB__PAGE_SIZE; it takes BASE_URL, "
     "ENABLED, MUNICIPALITIES, STORES, TIMEOUT."),
])
def test_configuration_errors_name_the_connector_and_the_setting(
        enabled: list[str], settings: dict[str, ConnectorSettings], message: str) -> None:
    with pytest.raises(ConnectorConfigError) as caught:
        load(enabled, installed(hub=factory("hub")), settings)
    assert str(caught.value) == message


def test_a_plugin_declares_its_options_and_gets_them() -> None:
    seen = {}

    def create(settings: ConnectorSettings, http: httpx.AsyncClient) -> Fake:
        seen.update(settings.options)
        return Fake("hub", frozenset({Category.DOCUMENTS}))

    plugin = ConnectorPlugin(create, options={"page_size": "items per page"})
    load(["hub"], installed(hub=plugin),
         {"hub": ConnectorSettings("hub", options={"page_size": "5"})})
    assert seen == {"page_size": "5"}
    with pytest.raises(ConnectorConfigError, match="it takes BASE_URL, ENABLED, "
                       "MUNICIPALITIES, STORES, TIMEOUT, PAGE_SIZE"):
        load(["hub"], installed(hub=plugin),
             {"hub": ConnectorSettings("hub", options={"pagesize": "5"})})


def test_the_builtins_declare_their_options() -> None:
    settings = {"proevesvar": ConnectorSettings("proevesvar", base_url="http://pps",
                                                options={"page_size": "10", "max_pages": "2"}),
                "kjernejournal": ConnectorSettings("kjernejournal", base_url="http://kj",
                                                   options={"source_system": "x"})}
    registry = load_connectors(["proevesvar", "kjernejournal"], settings, httpx.AsyncClient())
    assert registry.get("proevesvar").connector.page_size == 10
    with pytest.raises(ConnectorConfigError,
                       match="KILDE_CONNECTORS__PROEVESVAR__PAGE_SIZE must be a whole number"):
        load_connectors(["proevesvar"], {"proevesvar": ConnectorSettings(
            "proevesvar", base_url="http://pps", options={"page_size": "lots"})},
            httpx.AsyncClient())


def _raises(exc: Exception) -> Callable[..., Any]:
    def create(settings: ConnectorSettings, http: httpx.AsyncClient) -> Any:
        raise exc
    return create


def _broken_import() -> object:
    raise ImportError("No module named 'kilde_hub.missing'")


@pytest.mark.parametrize(("entry", "message"), [
    (_raises(RuntimeError("bug")), "Connector 'hub' failed to start (RuntimeError): bug"),
    (lambda settings, http: object(), "Connector 'hub' does not implement the Connector "
     "protocol (name, categories, fetch, aclose)."),
    (factory("other"), "Connector registered as 'hub' calls itself 'other'."),
    (factory("hub", "documents"), "Connector 'hub' serves 'documents', which is neither a "
     "Category nor a CategorySpec."),
    (lambda settings, http: Fake("hub", frozenset()),
     "Connector 'hub' must serve a non-empty frozenset of categories."),
    (42, "Connector 'hub' has an entry point that is neither a factory nor a ConnectorPlugin."),
])
def test_a_broken_connector_fails_the_start_naming_it(entry: object, message: str) -> None:
    with pytest.raises(ConnectorConfigError) as caught:
        load(["hub"], installed(hub=entry))
    assert str(caught.value) == message


def test_a_plugin_that_cannot_be_imported_fails_the_start_naming_it() -> None:
    with pytest.raises(ConnectorConfigError, match=r"Connector 'hub' failed to start "
                       r"\(ImportError\)"):
        load(["hub"], {"hub": (_broken_import, "1.0")})


def test_plugin_categories_come_from_the_enabled_connectors_only() -> None:
    factories = installed(hub=factory("hub", ALARMS, Category.DOCUMENTS),
                          twin=factory("twin", CategorySpec("safety_alarms", item_type=Alarm)),
                          off=factory("off", CategorySpec("other_things", item_type=Alarm)))
    registry = load(["hub", "twin"], factories)
    assert registry.plugin_categories == (ALARMS,)
    assert [e.connector.name for e in registry.serving(ALARMS)] == ["hub", "twin"]


@pytest.mark.parametrize(("second", "message"), [
    (CategorySpec("safety_alarms", item_type=OtherAlarm),
     "Connectors 'hub' and 'twin' declare category 'safety_alarms' differently; share one "
     "CategorySpec."),
    (CategorySpec("alarm_events", item_type=Alarm, field_name="safetyAlarms"),
     "Connector 'twin' adds Patient field 'safetyAlarms', which category 'safety_alarms' "
     "already uses."),
])
def test_two_plugins_cannot_claim_one_category_or_field_differently(second: CategorySpec,
                                                                     message: str) -> None:
    factories = installed(hub=factory("hub", ALARMS), twin=factory("twin", second))
    with pytest.raises(ConnectorConfigError) as caught:
        load(["hub", "twin"], factories)
    assert str(caught.value) == message


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"value": "Safety"}, "must be a snake_case name"),
    ({"value": "documents"}, "is built in; a plugin serves it as Category.DOCUMENTS"),
    ({"item_type": dict}, "needs an item dataclass with 'provenance' and 'security' fields"),
    ({"field_name": "safety-alarms"}, "is not a camelCase GraphQL name"),
])
def test_a_category_spec_is_checked_when_it_is_made(kwargs: dict[str, Any], message: str
                                                    ) -> None:
    with pytest.raises(ValueError, match=message):
        CategorySpec(**{"value": "safety_alarms", "item_type": Alarm, **kwargs})


def test_a_category_spec_works_like_a_category() -> None:
    assert (ALARMS.name, ALARMS.value, ALARMS.field_name) == (
        "SAFETY_ALARMS", "safety_alarms", "safetyAlarms")
    assert CategorySpec("safety_alarms", item_type=Alarm) == ALARMS
    assert len({ALARMS, CategorySpec("safety_alarms", item_type=Alarm)}) == 1
    assert ALARMS != Category.DOCUMENTS
