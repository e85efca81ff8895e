"""Quicker construction for frozen dataclasses with slots, the shape of every model item.

Sits under `connectors.model` (each item type is declared `@quick_init` over
`@dataclass(frozen=True, slots=True)`); any frozen slotted dataclass may use it.

>>> from dataclasses import dataclass
>>> @quick_init
... @dataclass(frozen=True, slots=True)
... class Pair:
...     left: str
...     right: str = ""
>>> Pair("a")
Pair(left='a', right='')
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

_T = TypeVar("_T", bound=type)


def quick_init(cls: _T) -> _T:
    """`cls` (a frozen dataclass with slots) with an `__init__` that sets each slot through
    its member descriptor instead of `object.__setattr__(self, name, value)`.

    The generated frozen `__init__` looks `object.__setattr__` up and goes through attribute
    lookup for every field of every item; items are built by the thousand per request, and
    this one is about twice as fast. Nothing else changes: the same signature (names, kinds,
    defaults, factories), annotations and qualified name, and the class stays frozen (its
    `__setattr__` still raises `FrozenInstanceError`)."""
    params = getattr(cls, "__dataclass_params__", None)
    fields = dataclasses.fields(cls)
    if (params is None or not params.frozen or "__slots__" not in cls.__dict__
            or hasattr(cls, "__post_init__") or not all(f.init for f in fields)):
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with slots and plain fields.")
    original = cls.__init__  # type: ignore[misc]
    signature = inspect.signature(original)
    namespace: dict[str, Any] = {}
    args: list[str] = []
    for param in list(signature.parameters.values())[1:]:  # in the signature's order
        if param.kind is inspect.Parameter.KEYWORD_ONLY and "*" not in args:
            args.append("*")
        if param.default is inspect.Parameter.empty:
            args.append(param.name)
        else:
            namespace[f"_default_{param.name}"] = param.default
            args.append(f"{param.name}=_default_{param.name}")
    body: list[str] = []
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            body.append(f"    if {f.name} is _default_{f.name}:\n"
                        f"        {f.name} = _factory_{f.name}()")
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        body.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)  # our own field names, as dataclasses itself does
    init = namespace["__init__"]
    init.__qualname__ = original.__qualname__
    init.__module__ = original.__module__
    init.__annotations__ = dict(original.__annotations__)
    if inspect.signature(init) != signature:  # the one promise: built exactly as before
        raise TypeError(f"{cls.__name__}'s quick __init__ would change its signature.")
    cls.__init__ = init  # type: ignore[misc]
    return cls
