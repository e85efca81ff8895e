"""GraphQL types derived from a plugin's item dataclasses, so a plugin needs no Strawberry.

Sits under `schema.plugins`: a `CategorySpec` without a `graphql_type` is served as a
Strawberry type built here from its `item_type`'s fields, named like the dataclass. The
unified model's building blocks map to the schema's own types (`Coding`, `Provenance`,
`Dosage`), so a plugin's items look like every other item; `security` is not served (the
policy reads it; the built-in types do not show it either).

>>> derive_type(Condition).__name__  # doctest: +SKIP
'Condition'
"""

from __future__ import annotations

import dataclasses
import enum
import types as pytypes
import typing
from datetime import date, datetime
from typing import Any

import strawberry

from connectors import model
from schema import types

SCALARS = (str, int, float, bool, date, datetime)
SHARED = {model.Coding: types.Coding, model.Provenance: types.Provenance,
          model.Dosage: types.Dosage}
HIDDEN = frozenset({"security"})


def derive_type(item_type: type, made: dict[type, Any] | None = None) -> Any:
    """A Strawberry type for the dataclass `item_type` (nested dataclasses derived too)."""
    made = {} if made is None else made
    if item_type in made:
        return made[item_type]
    if not dataclasses.is_dataclass(item_type):
        raise TypeError(f"{item_type.__name__} is not a dataclass.")
    hints = typing.get_type_hints(item_type)
    annotations = {}
    for field in dataclasses.fields(item_type):
        if field.name not in HIDDEN:
            annotations[field.name] = _annotation(hints[field.name], item_type, field.name, made)
    doc = (item_type.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    namespace = {"__annotations__": annotations, "__module__": __name__}
    derived = strawberry.type(type(item_type.__name__, (), namespace),
                              description=None if doc.startswith(item_type.__name__ + "(") else doc)
    made[item_type] = derived
    return derived


def _annotation(hint: Any, owner: type, name: str, made: dict[type, Any]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, pytypes.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _annotation(inner[0], owner, name, made) | None
    elif origin in (tuple, list) and args and (origin is list or args[-1] is Ellipsis
                                               or len(set(args)) == 1):
        return list[_annotation(args[0], owner, name, made)]  # type: ignore[misc]
    elif hint in SHARED:
        return SHARED[hint]
    elif hint in SCALARS:
        return hint
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint if hasattr(hint, "__strawberry_definition__") else strawberry.enum(hint)
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return derive_type(hint, made)
    raise TypeError(f"{owner.__name__}.{name} has type {hint!r}, which has no GraphQL type; "
                    "use str, numbers, dates, Coding, Provenance, enums, dataclasses or tuples "
                    "of them, or give the CategorySpec a graphql_type.")
