"""SourceResult <-> JSON bytes: what the cache wrapper stores (sealed) for one source's answer.

Sits under `connectors.cache`, pure and without IO. Encoding is orjson's own dataclass, enum
and datetime support; decoding rebuilds the frozen model from the dataclasses' type hints, so a
new field on a model type round-trips without touching this module. Items carry their type
name, since one category may hold different item types in future. Unknown versions, types
or shapes raise `CodecError` (the cache then treats the entry as a miss).

>>> from connectors.base import Reason, SourceResult
>>> decode(encode(SourceResult.empty("pll"))).status
<Status.EMPTY: 'EMPTY'>
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

import orjson

from connectors import model
from connectors.base import Reason, SourceResult
from connectors.model import AnyCategory, Category, CategorySpec, PrivacyState, Status

VERSION = 2  # 2: Demographics.address_protection (an older entry may hold a protected home)
ITEM_TYPES: Mapping[str, type] = {
    cls.__name__: cls
    for cls in (model.TreatmentLimitation, model.CriticalInformation, model.Medication,
                model.LabReport, model.MunicipalService, model.Condition,
                model.DocumentReference, model.Demographics)
}


class CodecError(ValueError):
    """A cached value could not be decoded (old version, unknown type, wrong shape)."""


def encode(result: SourceResult) -> bytes:
    """One source's answer as JSON bytes (items tagged with their type name)."""
    payload = {
        "v": VERSION,
        "source": result.source,
        "status": result.status,
        "items": {
            category.value: [{"t": type(item).__name__, "d": item} for item in items]
            for category, items in result.items.items()
        },
        "fetched_at": result.fetched_at,
        "privacy": result.privacy,
        "category_status": {c.value: s for c, s in result.category_status.items()},
        "detail": result.detail,
        "category_reason": {c.value: r for c, r in result.category_reason.items()},
    }
    return orjson.dumps(payload)


def decode(data: bytes, plugins: Iterable[AnyCategory] = ()) -> SourceResult:
    """The SourceResult `encode` produced; CodecError for anything else. `plugins` are the
    connector's categories: a plugin's `CategorySpec` and its item type decode too."""
    specs = [c for c in plugins if isinstance(c, CategorySpec)]
    categories: dict[str, AnyCategory] = {c.value: c for c in Category}
    categories.update({s.value: s for s in specs})
    types_ = {**ITEM_TYPES, **{s.item_type.__name__: s.item_type for s in specs}}
    try:
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or raw.get("v") != VERSION:
            raise CodecError("The cached value has an unknown format version.")
        items: dict[AnyCategory, tuple[Any, ...]] = {}
        for cat, entries in raw["items"].items():
            items[categories[cat]] = tuple(_item(entry, types_) for entry in entries)
        return SourceResult(
            source=str(raw["source"]),
            status=Status(raw["status"]),
            items=items,
            fetched_at=datetime.fromisoformat(raw["fetched_at"]),
            privacy=_value(PrivacyState, raw["privacy"]),
            category_status={categories[c]: Status(s)
                             for c, s in raw["category_status"].items()},
            detail=raw["detail"],
            category_reason={categories[c]: _value(Reason, r)
                             for c, r in raw.get("category_reason", {}).items()},
        )
    except CodecError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"The cached value could not be decoded ({type(exc).__name__}).") from exc


def _item(entry: Mapping[str, Any], types_: Mapping[str, type]) -> Any:
    cls = types_.get(entry["t"])
    if cls is None:
        raise CodecError(f"The cached value holds an unknown item type {entry['t']!r}.")
    return _value(cls, entry["d"])


def _value(hint: Any, value: Any) -> Any:
    return _decoder(hint)(value)


@functools.cache
def _decoder(hint: Any) -> Callable[[Any], Any]:
    """A decoding function for one type hint, built once: the per-item work on a cache hit is
    then plain calls, not type introspection (it showed in the warm-cache profile)."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) != 1:
            raise CodecError(f"The codec cannot decode the union {hint!r}.")
        inner = _decoder(options[0])
        return lambda v: None if v is None else inner(v)
    if origin is tuple:
        each = _decoder(typing.get_args(hint)[0])
        return lambda v: None if v is None else tuple(each(x) for x in v)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        cls = hint
        fields = {name: _decoder(h) for name, h in typing.get_type_hints(cls).items()}

        def dataclass_(v: Any) -> Any:
            if v is None:
                return None
            return cls(**{name: fields[name](x) for name, x in v.items()})
        return dataclass_
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        enum_ = hint
        return lambda v: None if v is None else enum_(v)
    if hint is datetime:
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if hint is date:
        return lambda v: None if v is None else date.fromisoformat(v)
    if hint is float:
        return lambda v: None if v is None else float(v)
    if hint in (str, int, bool):
        kind = hint

        def plain(v: Any) -> Any:
            if v is not None and not isinstance(v, kind):
                raise CodecError(f"The cached value has a {type(v).__name__} for a {kind}.")
            return v
        return plain
    raise CodecError(f"The codec cannot decode the type {hint!r}.")
