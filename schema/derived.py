"""GraphQL types derived from dataclasses: the unified model's and a plugin's item types.

Sits under `schema.types` (which derives the built-in model, `connectors.model`, with it) and
`schema.plugins` (a `CategorySpec` without a `graphql_type` is served as a type built here from
its `item_type`). A derived type is named like the dataclass and has its fields, in their
order and camelCased: the first paragraph of the class docstring is the type's description,
`field(metadata={"description": ...})` a field's. `security` is never served (the policy
reads it); a caller hides more by name and adds computed fields (`strawberry.field`s with a
resolver), which come after the dataclass's own. Nested dataclasses are derived too, once
each: `made` maps a dataclass to its type, so the built-in `Coding` and `Provenance` are the
same GraphQL types wherever they appear, in a plugin's items too.

>>> derive_type(Condition).__name__  # doctest: +SKIP
'Condition'
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types as pytypes
import typing
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import strawberry

SCALARS = (str, int, float, bool, date, datetime)
HIDDEN = frozenset({"security"})
DERIVED_FROM = "__kilde_derived_from__"  # on a derived type: the dataclass it came from


def description(cls: type) -> str | None:
    """The first paragraph of `cls`'s own docstring, on one line; None when it has none
    (a dataclass's generated `Name(field: type, ...)` signature is not a description)."""
    doc = cls.__doc__
    if not doc or doc.startswith(cls.__name__ + "("):
        return None
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def derive_enum(enum_type: type[enum.Enum]) -> Any:
    """`enum_type` registered with Strawberry (once), described by its docstring."""
    if hasattr(enum_type, "__strawberry_definition__"):
        return enum_type
    return strawberry.enum(enum_type, description=description(enum_type))


def derive_type(item_type: type, made: dict[type, Any] | None = None, *,
                hidden: Mapping[type, Iterable[str]] | None = None,
                computed: Mapping[type, Mapping[str, Any]] | None = None) -> Any:
    """A Strawberry type for the dataclass `item_type`, nested dataclasses derived too (or
    taken from `made`, which gains every type derived). `hidden` names, per dataclass, fields
    not to serve (besides `security`), `computed` the fields to add after its own."""
    made = {} if made is None else made
    if item_type in made:
        return made[item_type]
    if not dataclasses.is_dataclass(item_type):
        raise TypeError(f"{item_type.__name__} is not a dataclass.")
    hints = typing.get_type_hints(item_type)
    own = {f.name: f for f in dataclasses.fields(item_type)}
    skip = frozenset((hidden or {}).get(item_type, ()))
    added = (computed or {}).get(item_type, {})
    if unknown := sorted(skip - own.keys()):
        raise TypeError(f"{item_type.__name__} has no field {unknown[0]!r} to hide.")
    if taken := sorted(own.keys() & added.keys()):
        raise TypeError(f"{item_type.__name__}.{taken[0]} is a field already; a computed "
                        "field needs a name of its own.")
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__annotations__": annotations, "__module__": __name__}
    for name, field in own.items():
        if name in skip or name in HIDDEN:
            continue
        annotations[name] = _annotation(hints[name], item_type, name,
                                        (made, hidden, computed))
        about = field.metadata.get("description")
        if about is not None:
            namespace[name] = strawberry.field(description=about)
    namespace.update(added)
    derived = strawberry.type(type(item_type.__name__, (), namespace),
                              description=description(item_type))
    setattr(derived, DERIVED_FROM, item_type)
    made[item_type] = derived
    return derived


def _annotation(hint: Any, owner: type, name: str, how: tuple[Any, Any, Any]) -> Any:
    made, hidden, computed = how
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, pytypes.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _annotation(inner[0], owner, name, how) | None
    elif origin in (tuple, list) and args and (origin is list or args[-1] is Ellipsis
                                               or len(set(args)) == 1):
        return list[_annotation(args[0], owner, name, how)]  # type: ignore[misc]
    elif hint in made:
        return made[hint]
    elif hint in SCALARS:
        return hint
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        return derive_enum(hint)
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return derive_type(hint, made, hidden=hidden, computed=computed)
    raise TypeError(f"{owner.__name__}.{name} has type {hint!r}, which has no GraphQL type; "
                    "use str, numbers, dates, Coding, Provenance, enums, dataclasses or tuples "
                    "of them, or give the CategorySpec a graphql_type.")
