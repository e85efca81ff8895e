"""Plugin categories in the schema: a Patient field and a Category value each, types derived
from the item dataclass (or given), and the rollout rule the view applies per caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pytest
import strawberry

from connectors import Category, CategorySpec, Coding, Provenance
from policies.model import Principal, PrincipalKind
from schema import types
from schema.pipeline.plan import in_use, requested_categories
from schema.query import build_schema


@dataclass(frozen=True, slots=True)
class Reading:
    """One sensor reading."""

    at: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Sensor:
    """A sensor placed with the patient."""

    id: str
    kind: Coding
    provenance: Provenance
    installed: date | None = None
    readings: tuple[Reading, ...] = ()
    security: tuple[Coding, ...] = ()


@dataclass(frozen=True, slots=True)
class Odd:
    id: str
    provenance: Provenance
    extra: dict[str, int]
    security: tuple[Coding, ...] = ()


SENSORS = CategorySpec("sensors", item_type=Sensor, description="Sensors in use.")


def sdl(*specs: CategorySpec) -> str:
    return build_schema(categories=specs).as_str()


def test_a_plugin_category_adds_a_patient_field_and_a_category_value() -> None:
    text = sdl(SENSORS)
    assert '"""Sensors in use."""\n  sensors: [Sensor!]!' in text
    assert "  SENSORS\n" in text
    assert "sensors" not in build_schema().as_str().lower()


def test_the_item_type_is_derived_from_the_dataclass_without_its_labels() -> None:
    text = sdl(SENSORS)
    sensor = text[text.index("type Sensor {"):].split("}")[0]
    assert sensor.split()[3:] == ["id:", "String!", "kind:", "Coding!", "provenance:",
                                  "Provenance!", "installed:", "Date", "readings:",
                                  "[Reading!]!"]
    assert '"""One sensor reading."""\ntype Reading {' in text


def test_a_given_strawberry_type_is_used_as_it_is() -> None:
    @strawberry.type(name="SensorView")
    class SensorView:
        id: str
        provenance: types.Provenance

    text = sdl(CategorySpec("sensors", item_type=Sensor, graphql_type=SensorView))
    assert "sensors: [SensorView!]!" in text
    assert "type Sensor {" not in text


@pytest.mark.parametrize(("spec", "message"), [
    (CategorySpec("alert_things", item_type=Sensor, field_name="alerts"),
     "Category 'alert_things' wants the Patient field 'alerts', which is already taken."),
    (CategorySpec("odd_things", item_type=Odd),
     "Category 'odd_things' cannot be served: Odd.extra has type dict"),
    (CategorySpec("sensors", item_type=Sensor, graphql_type=int),
     "Category 'sensors' needs a Strawberry type as its graphql_type."),
])
def test_a_category_the_schema_cannot_serve_fails_the_start_naming_it(spec: CategorySpec,
                                                                       message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        build_schema(categories=[spec])


def test_the_category_enum_names_plugin_values_for_source_statuses() -> None:
    schema = build_schema(categories=[SENSORS])
    enum = schema._schema.type_map["Category"]
    assert enum.serialize(SENSORS) == "SENSORS"
    assert enum.serialize(Category.DOCUMENTS) == "DOCUMENTS"


def test_a_selected_plugin_field_requests_its_category() -> None:
    assert requested_categories(["sensors", "conditions"], [SENSORS]) == {
        SENSORS, Category.CONDITIONS}
    assert requested_categories(["sensors"]) == frozenset()


def _clinician(municipality: str | None) -> Principal:
    return Principal(PrincipalKind.CLINICIAN, "x", municipality=municipality)


@pytest.mark.parametrize(("rollout", "principal", "used"), [
    (frozenset(), _clinician("5001"), True),  # not rolled out gradually: everywhere
    (frozenset({"0301"}), _clinician("0301"), True),
    (frozenset({"0301"}), _clinician("4601"), False),
    (frozenset({"0301"}), _clinician(None), False),
    (frozenset({"0301"}), Principal(PrincipalKind.CITIZEN, "x"), True),  # innsyn: everywhere
])
def test_a_source_rolled_out_to_some_municipalities_is_used_for_their_callers(
        rollout: frozenset[str], principal: Principal, used: bool) -> None:
    assert in_use(rollout, principal) is used
