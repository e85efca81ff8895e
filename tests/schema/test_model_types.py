"""The unified model is declared once (`connectors.model`) and the API's types are derived
from it: every model field is in the published schema unless `schema.types.HIDDEN` names it,
the published schema has no model field the model lacks, and each derived type prints exactly
as `schema.graphql` has it (fields, order, nullability, descriptions)."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
import pytest
import strawberry

from connectors import model
from schema import types
from schema.derived import DERIVED_FROM, HIDDEN, derive_type
from schema.query import build_schema

PUBLISHED = graphql.build_schema(
    (Path(__file__).resolve().parents[2] / "schema.graphql").read_text(encoding="utf-8"))
SERVED = build_schema()._schema
MODEL_ENUMS = [c for _, c in inspect.getmembers(model, inspect.isclass)
               if issubclass(c, enum.Enum) and c.__module__ == model.__name__]
# dataclasses of the model that are not GraphQL types: what a connector says about privacy,
# a tenant of the configuration, and a plugin's category declaration
NOT_SERVED = {model.PrivacyState, model.Tenant, model.CategorySpec}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def unserved(cls: type, published: graphql.GraphQLObjectType, hidden: frozenset[str],
             computed: Mapping[str, Any]) -> list[str]:
    """What differs between the model's fields and the published type's: a model field that
    is neither published nor hidden, a published field that is neither a model field nor
    computed, and a hidden field that is published anyway."""
    own = [f.name for f in dataclasses.fields(cls)]
    shown = {camel(n) for n in own if n not in hidden | HIDDEN} | {camel(n) for n in computed}
    out = [f"{cls.__name__}.{n} is neither in schema.graphql nor in schema.types.HIDDEN"
           for n in own if camel(n) in shown and camel(n) not in published.fields]
    out += [f"{published.name}.{n} is in schema.graphql but not a field of the model's "
            f"{cls.__name__} nor in schema.types.COMPUTED"
            for n in published.fields if n not in shown]
    out += [f"{cls.__name__}.{n} is hidden but in schema.graphql"
            for n in own if n in hidden | HIDDEN and camel(n) in published.fields]
    return out


@pytest.mark.parametrize("cls", types.MODEL, ids=lambda c: c.__name__)
def test_every_model_field_is_published_or_named_hidden(cls: type) -> None:
    published = PUBLISHED.type_map[cls.__name__]
    assert isinstance(published, graphql.GraphQLObjectType)
    assert unserved(cls, published, types.HIDDEN.get(cls, frozenset()),
                    types.COMPUTED.get(cls, {})) == []


def test_a_model_field_neither_published_nor_hidden_is_reported() -> None:
    """The check above can fail: without its HIDDEN entry, Medication.treatment_id is a model
    field the published schema lacks; a computed field the API adds is not a model field."""
    medication = PUBLISHED.type_map["Medication"]
    provenance = PUBLISHED.type_map["Provenance"]
    assert isinstance(medication, graphql.GraphQLObjectType)
    assert isinstance(provenance, graphql.GraphQLObjectType)
    assert unserved(model.Medication, medication, frozenset(), {}) == [
        "Medication.treatment_id is neither in schema.graphql nor in schema.types.HIDDEN"]
    assert unserved(model.Provenance, provenance, frozenset(), {}) == [
        "Provenance.ageSeconds is in schema.graphql but not a field of the model's Provenance "
        "nor in schema.types.COMPUTED"]
    assert unserved(model.Demographics, PUBLISHED.type_map["Demographics"],  # type: ignore[arg-type]
                    frozenset(), types.COMPUTED[model.Demographics]) == [
        "Demographics.id is neither in schema.graphql nor in schema.types.HIDDEN"]


def test_every_dataclass_of_the_model_is_derived_or_named_not_served() -> None:
    dataclasses_ = {c for _, c in inspect.getmembers(model, inspect.isclass)
                    if dataclasses.is_dataclass(c) and c.__module__ == model.__name__}
    assert dataclasses_ - NOT_SERVED == set(types.MODEL)


@pytest.mark.parametrize("cls", types.MODEL, ids=lambda c: c.__name__)
def test_the_model_types_are_derived_not_declared_again(cls: type) -> None:
    served = getattr(types, cls.__name__)
    assert served is types.DERIVED[cls]
    assert getattr(served, DERIVED_FROM) is cls


@pytest.mark.parametrize("name", [c.__name__ for c in (*types.MODEL, *MODEL_ENUMS)])
def test_a_derived_type_prints_as_the_published_schema_has_it(name: str) -> None:
    assert graphql.print_type(SERVED.type_map[name]) == graphql.print_type(
        PUBLISHED.type_map[name])


def test_the_overrides_name_fields_that_exist() -> None:
    for cls, hidden in types.HIDDEN.items():
        assert hidden <= {f.name for f in dataclasses.fields(cls)}, cls
    for cls, computed in types.COMPUTED.items():
        assert not computed.keys() & {f.name for f in dataclasses.fields(cls)}, cls


@dataclass(frozen=True, slots=True)
class Visit:
    """A home visit.

    Only Python readers see this paragraph."""

    id: str
    when: str = field(default="", metadata={"description": "When it is planned, as text."})
    staff: str | None = None
    security: tuple[model.Coding, ...] = ()


@strawberry.type
class _Query:
    ok: bool


def _sdl(derived: Any) -> str:
    return str(strawberry.Schema(query=_Query, types=[derived]).as_str())


def test_a_docstring_and_field_metadata_become_the_descriptions() -> None:
    sdl = _sdl(derive_type(Visit))
    assert '"""A home visit."""\ntype Visit {\n  id: String!\n\n' in sdl
    assert '  """When it is planned, as text."""\n  when: String!\n  staff: String\n}' in sdl
    assert "security" not in sdl
    assert "Python readers" not in sdl


def test_hidden_and_computed_fields_are_applied_and_checked() -> None:
    def staffed(self: Visit) -> bool:
        return self.staff is not None

    derived = derive_type(Visit, hidden={Visit: {"staff"}}, computed={Visit: {
        "staffed": strawberry.field(resolver=staffed, description="Has staff.")}})
    sdl = _sdl(derived)
    assert "staff:" not in sdl
    assert '  """Has staff."""\n  staffed: Boolean!\n}' in sdl
    with pytest.raises(TypeError, match="Visit has no field 'nurse' to hide"):
        derive_type(Visit, hidden={Visit: {"nurse"}})
    with pytest.raises(TypeError, match=r"Visit\.when is a field already"):
        derive_type(Visit, computed={Visit: {"when": strawberry.field(resolver=staffed)}})
