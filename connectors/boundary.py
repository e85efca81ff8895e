"""The connector boundary: every answer is checked before the gateway uses it.

Sits between the registry and each connector (cache -> resilience -> *boundary* -> connector):
`load_connectors` wraps every connector it creates, built-in or external, in a
`CheckedConnector`. An upstream that sends valid JSON of the wrong shape makes a mapper fail in
the ways Python fails on data (a `TypeError` for a number where a list was, a `KeyError`, an
`AttributeError` for a string where an object was): each of those becomes
`UpstreamInvalidError` here, for every connector at once, so a garbage answer is INVALID (not
retried, not a breaker failure) and never UNAVAILABLE. A result that comes back is checked
too: every item is of the category's type and every field of its declared type, all the way
down (a dict where a `display` string belongs would otherwise fail later, at GraphQL
serialisation, as an internal error); datetimes must carry a time zone. Messages name the
source and the field path, never a value.

>>> checked = CheckedConnector(connector)               # doctest: +SKIP
>>> await checked.fetch(request)  # SourceResult or UpstreamInvalidError  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import traceback
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from connectors import model
from connectors.base import Connector, FetchRequest, Reason, SourceResult
from connectors.errors import ConnectorError, UpstreamInvalidError
from connectors.model import AnyCategory, Category, CategorySpec, PrivacyState, Status

log = logging.getLogger("kilde.connectors")

# How Python fails on data of the wrong shape; anything else is a bug (the fan-out's net)
SHAPE_ERRORS: tuple[type[Exception], ...] = (
    TypeError, LookupError, AttributeError, ValueError, ArithmeticError, RecursionError)
RESULT_STATUSES = frozenset({Status.OK, Status.EMPTY, Status.PARTIAL, Status.RESERVED,
                             Status.RESTRICTED, Status.BLOCKED})
ITEM_TYPE: Mapping[Category, type] = {
    Category.TREATMENT_LIMITATIONS: model.TreatmentLimitation,
    Category.CRITICAL_INFORMATION: model.CriticalInformation,
    Category.MEDICATIONS: model.Medication,
    Category.LAB_RESULTS: model.LabReport,
    Category.MUNICIPAL_SERVICES: model.MunicipalService,
    Category.CONDITIONS: model.Condition,
    Category.DOCUMENTS: model.DocumentReference,
    Category.DEMOGRAPHICS: model.Demographics,
}
Check = Callable[[Any, str], str | None]  # (value, path) -> what is wrong, or None


class CheckedConnector:
    """A connector whose answers are checked at the boundary (see the module docstring)."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner
        self.name = inner.name
        self.categories = inner.categories
        if hasattr(inner, "standard"):
            self.standard = inner.standard

    def __getattr__(self, name: str) -> Any:  # options, health, ... of the wrapped connector
        return getattr(self.inner, name)

    async def fetch(self, request: FetchRequest) -> SourceResult:
        try:
            result = await self.inner.fetch(request)
        except ConnectorError:
            raise
        except SHAPE_ERRORS as exc:
            log.warning("source %s sent an answer its mapper could not read: %s at %s",
                        self.name, type(exc).__name__, _where(exc),
                        extra={"request_id": request.request_id})
            raise UpstreamInvalidError(self.name, f"Source {self.name!r} sent an answer Kilde "
                                       f"cannot read ({type(exc).__name__}).") from exc
        problem = result_problem(result, self.categories)
        if problem is not None:
            log.warning("source %s answered with %s", self.name, problem,
                        extra={"request_id": request.request_id})
            raise UpstreamInvalidError(self.name, f"Source {self.name!r} sent an answer Kilde "
                                       f"cannot use: {problem}.")
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame (where a mapper met the data), no values."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 2)[-2:][-1]}:{last.lineno}"


def result_problem(result: Any, categories: frozenset[AnyCategory]) -> str | None:
    """What is wrong with a connector's `result` (a sentence naming a field path), or None."""
    if not isinstance(result, SourceResult):
        return f"a {type(result).__name__} instead of a SourceResult"
    if result.status not in RESULT_STATUSES:
        return f"the status {result.status!r} (failures are raised, not returned)"
    if not isinstance(result.items, Mapping):
        return "items that are not a mapping"
    for category, items in result.items.items():
        if category not in categories:
            return f"items for a category it does not serve ({_name(category)})"
        if not isinstance(items, Sequence) or isinstance(items, str | bytes):
            return f"{_name(category)} that is not a sequence of items"
        fault = _fault(_item_type(category))
        for i, item in enumerate(items):
            problem = fault(item)
            if problem is not None:
                return problem(f"{_name(category)}[{i}]")
    for category, status in result.category_status.items():
        if not isinstance(status, Status):
            return f"a category status for {_name(category)} that is not a Status"
    for category, reason in result.category_reason.items():
        if (wrong := _check(Reason)(reason, f"category_reason[{_name(category)}]")):
            return wrong
    return (_check(PrivacyState)(result.privacy, "privacy")
            or _check(datetime)(result.fetched_at, "fetched_at")
            or _check(str | None)(result.detail, "detail"))


def _name(category: Any) -> str:
    return str(getattr(category, "value", type(category).__name__))


def _item_type(category: AnyCategory) -> Any:
    if isinstance(category, CategorySpec):
        return category.item_type
    # a built-in category added to the model without a line in ITEM_TYPE is checked as
    # "any item": add the line to have its fields checked too
    return ITEM_TYPE.get(category, Any)


@functools.cache
def _check(hint: Any) -> Check:
    """A checking function for one type hint, built once per type (the codec's approach)."""
    fault = _fault(hint)

    def check(v: Any, path: str) -> str | None:
        problem = fault(v)
        return None if problem is None else problem(path)
    return check


# A fault finder returns None for a good value, or what is wrong as a function of the value's
# path: the path text (``medications[3].dosage.text``) is only built for a bad value, never
# for the thousands of good fields of a large answer.
Fault = Callable[[Any], Callable[[str], str] | None]


@functools.cache
def _fault(hint: Any) -> Fault:
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        options = [_fault(a) for a in typing.get_args(hint) if a is not type(None)]
        nullable = type(None) in typing.get_args(hint)

        def union(v: Any) -> Callable[[str], str] | None:
            if v is None and nullable:
                return None
            first = None
            for option in options:
                problem = option(v)
                if problem is None:
                    return None
                first = first or problem
            return first
        return union
    if origin is tuple:
        each = _fault(typing.get_args(hint)[0])

        def tuple_(v: Any) -> Callable[[str], str] | None:
            if not isinstance(v, tuple):
                return lambda path: f"{path} is a {type(v).__name__}, not a tuple"
            for i, x in enumerate(v):
                problem = each(x)
                if problem is not None:
                    return _at(problem, f"[{i}]")
            return None
        return tuple_
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        cls = hint
        hints = typing.get_type_hints(cls)
        fields = [(f.name, _exact(hints[f.name]), _fault(hints[f.name]))
                  for f in dataclasses.fields(cls)]

        def dataclass_(v: Any) -> Callable[[str], str] | None:
            if not isinstance(v, cls):
                return lambda path: f"{path} is a {type(v).__name__}, not a {cls.__name__}"
            for name, exact, fault in fields:
                value = getattr(v, name)
                if type(value) in exact:  # a plain value of a plain type: nothing to look into
                    continue
                problem = fault(value)
                if problem is not None:
                    return _at(problem, f".{name}")
            return None
        return dataclass_
    if hint is datetime:
        def datetime_(v: Any) -> Callable[[str], str] | None:
            if not isinstance(v, datetime):
                return lambda path: f"{path} is a {type(v).__name__}, not a datetime"
            return None if v.utcoffset() is not None else (
                lambda path: f"{path} has no time zone")
        return datetime_
    if hint is float:
        return _kind((int, float), "float")
    if hint is int:
        return _kind((int,), "int")
    if hint is date:
        return _kind((date,), "date")
    if isinstance(hint, type) and (hint in (str, bool) or issubclass(hint, enum.Enum)):
        return _kind((hint,), hint.__name__)
    if hint is Any or hint is object:
        return lambda v: None
    raise TypeError(f"The boundary cannot check the type {hint!r}.")


@functools.cache
def _exact(hint: Any) -> frozenset[type]:
    """The types whose values `_fault(hint)` accepts by their type alone (str, int, an enum,
    None where allowed; not bool for int, not a datetime, which must carry a zone): the
    boundary's fast path for the many plain fields of a large answer."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        return frozenset().union(*(_exact(a) for a in typing.get_args(hint)))
    if origin is not None:  # a tuple, Literal, ...: the full check
        return frozenset()
    if hint is type(None):
        return frozenset({type(None)})
    if hint is float:
        return frozenset({int, float})
    if hint in (int, str, bool, date) or (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        return frozenset({hint})
    return frozenset()


def _at(problem: Callable[[str], str], step: str) -> Callable[[str], str]:
    """The problem of a part (a field, an element), said of the whole."""
    return lambda path: problem(path + step)


def _kind(kinds: tuple[type, ...], word: str) -> Fault:
    def plain(v: Any) -> Callable[[str], str] | None:
        if isinstance(v, bool) and bool not in kinds:
            return lambda path: f"{path} is a bool, not a {word}"
        if isinstance(v, kinds):
            return None
        return lambda path: f"{path} is a {type(v).__name__}, not a {word}"
    return plain
