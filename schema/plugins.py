"""Plugin categories in the schema: one more `Patient` field and `Category` value each.

Sits between the registry and `build_schema`: at start, the new categories the enabled
connectors serve (`Registry.plugin_categories`) become fields of a `Patient` subclass built
here, served by the same patient pipeline as the built-in fields, so policy (deny until a policy
file configures the category), fan-out, item labels and audit apply unchanged. The GraphQL
`Category` enum gains the new values too, so `SourceStatus.category` and `Source.categories`
can name them; the Python enum stays closed and the new values are the `CategorySpec` objects.

>>> schema = build_schema(categories=registry.plugin_categories)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import strawberry
from graphql import GraphQLEnumType, GraphQLEnumValue

from connectors.model import CategorySpec
from schema.derived import derive_type
from schema.patient import Patient
from schema.types import DERIVED


def plugin_query(query: type, categories: Sequence[CategorySpec]) -> type:
    """`query` with its `patient` field returning a `Patient` that has the plugin fields."""
    patient_type = _patient_type(categories)
    field = query.__strawberry_definition__.get_field("patient")  # type: ignore[attr-defined]
    patient = strawberry.field(
        resolver=field.base_resolver.wrapped_func,
        graphql_type=patient_type | None,
        description=field.description,
    )
    extended = type("Query", (query,), {"patient": patient, "__module__": __name__})
    return strawberry.type(extended, name="Query")


def extend_category_enum(schema: strawberry.Schema, categories: Sequence[CategorySpec]) -> None:
    """Add one GraphQL `Category` value per plugin category (named `spec.name`)."""
    # Strawberry builds its GraphQL enum from the closed Python enum; a plugin's values can
    # only be added to the built graphql-core type. Each schema has its own enum type.
    enum_type = schema._schema.type_map.get("Category")
    if not isinstance(enum_type, GraphQLEnumType):
        raise TypeError("The schema has no Category enum to add plugin categories to.")
    for spec in categories:
        enum_type.values[spec.name] = GraphQLEnumValue(
            spec, description=spec.description or f"A category added by a plugin ({spec.value})."
        )
    enum_type.__dict__.pop("_value_lookup", None)  # a cached value -> name map; rebuilt on use


def _patient_type(categories: Sequence[CategorySpec]) -> type:
    definition = Patient.__strawberry_definition__  # type: ignore[attr-defined]
    taken = {f.graphql_name or _camel(f.python_name) for f in definition.fields}
    namespace: dict[str, Any] = {"__module__": __name__}
    made: dict[type, Any] = dict(DERIVED)  # the model's own types, shared
    for spec in categories:
        if spec.field_name in taken:
            raise ValueError(f"Category {spec.value!r} wants the Patient field "
                             f"{spec.field_name!r}, which is already taken.")
        graphql_type = spec.graphql_type
        if graphql_type is None:
            try:
                graphql_type = derive_type(spec.item_type, made)
            except TypeError as exc:
                raise ValueError(f"Category {spec.value!r} cannot be served: {exc}") from None
        elif not hasattr(graphql_type, "__strawberry_definition__"):
            raise ValueError(f"Category {spec.value!r} needs a Strawberry type as its "
                             "graphql_type.")
        taken.add(spec.field_name)
        namespace[f"plugin_{spec.value}"] = strawberry.field(
            resolver=_items_of(spec),
            graphql_type=list[graphql_type],  # type: ignore[valid-type]
            name=spec.field_name,
            description=spec.description or f"Items of the plugin category {spec.value!r}.",
        )
    extended = type("Patient", (Patient,), namespace)
    return strawberry.type(extended, name="Patient", description=definition.description)


def _items_of(spec: CategorySpec) -> Callable[[Any], list[Any]]:
    def items(self: Any) -> list[Any]:  # synchronous, as the built-in fields (schema/patient.py)
        return self.pipeline.items_now(spec)  # type: ignore[no-any-return]

    return items


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
