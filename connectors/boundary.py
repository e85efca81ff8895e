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
source and the field path, never a value. Each type's check is compiled once into straight-line
code (`_valid`), which passes a good answer without building anything; whatever it is not sure
of goes to the full check (`_fault`), which words the problem.

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
from datetime import UTC, date, datetime
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
    # a dict (and a tuple or list of items) is told by its type: an ABC's isinstance costs more
    if type(result.items) is not dict and not isinstance(result.items, Mapping):
        return "items that are not a mapping"
    for category, items in result.items.items():
        if category not in categories:
            return f"items for a category it does not serve ({_name(category)})"
        if type(items) is not tuple and type(items) is not list and (
                not isinstance(items, Sequence) or isinstance(items, str | bytes)):
            return f"{_name(category)} that is not a sequence of items"
        hint = _item_type(category)
        fault, valid = _fault(hint), _valid(hint)
        for i, item in enumerate(items):
            if valid(item):
                continue
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
            or _check(_DETAIL)(result.detail, "detail"))


_DETAIL = str | None  # one object: `_check` is cached by its hint, and a union hashes its args


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
    fault, valid = _fault(hint), _valid(hint)

    def check(v: Any, path: str) -> str | None:
        if valid(v):
            return None
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


# -- the fast path: one compiled test per type ---------------------------------------------------
# `_fault` walks a value through a closure per field, and a dataclass item through a closure per
# nested value; for the good answers nearly every fetch brings, that walk is the boundary's
# whole cost. `_valid(hint)` is the same judgement compiled once per type into one function of
# straight-line tests on exact types (`type(x) is str`, a nested dataclass's fields inline, a
# loop per tuple), without building anything. It only ever says True for a value `_fault`
# finds nothing wrong with; anything it is not sure of (a subclass, a bool where an int may
# stand, a datetime where a date may, a type it has no test for) is False, and `_fault` then
# judges it and words the problem, so every message and path is `_fault`'s own.
Valid = Callable[[Any], bool]


@functools.cache
def _valid(hint: Any) -> Valid:
    namespace: dict[str, Any] = {"_datetime": datetime, "_utc": UTC}
    lines: list[str] = []
    _emit(hint, "v", lines, namespace, 2, [0])
    # an exception (a slot never set, say) is a value for the full check to judge, and raise on
    source = ("def valid(v):\n    try:\n" + "\n".join(lines or ["        pass"])
              + "\n    except Exception:\n        return False\n    return True\n")
    exec(source, namespace)  # built from type hints only, never from data
    valid: Valid = namespace["valid"]
    return valid


_PLAIN: dict[Any, tuple[type, ...]] = {str: (str,), bool: (bool,), int: (int,),
                                       float: (int, float), date: (date,),
                                       type(None): (type(None),)}


def _plain(hint: Any) -> tuple[type, ...] | None:
    """The exact types that are certainly good for `hint` alone, or None when `hint` is not a
    plain type (a datetime, a dataclass, a tuple, a union, ...)."""
    if hint in _PLAIN:
        return _PLAIN[hint]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return (hint,)
    return None


def _emit(hint: Any, value: str, lines: list[str], ns: dict[str, Any], depth: int,
          counter: list[int]) -> None:
    """Append to `lines` the statements (at `depth`) that return False unless the value of the
    expression `value` is certainly good for `hint`."""
    pad = "    " * depth

    def name(prefix: str, obj: Any = None) -> str:
        counter[0] += 1
        key = f"_{prefix}{counter[0]}"
        if obj is not None:
            ns[key] = obj
        return key

    if hint is Any or hint is object:
        return
    plain = _plain(hint)
    if plain is not None:
        if len(plain) == 1:
            lines.append(f"{pad}if type({value}) is not {name('t', plain[0])}: return False")
        else:
            lines.append(f"{pad}if type({value}) not in {name('ts', frozenset(plain))}: "
                         "return False")
        return
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        args = typing.get_args(hint)
        options = [a for a in args if a is not type(None)]
        kinds = [_plain(a) for a in options]
        if all(k is not None for k in kinds):
            allowed = frozenset(t for k in kinds if k is not None for t in k)
            if type(None) in args:
                allowed |= {type(None)}
            lines.append(f"{pad}if type({value}) not in {name('ts', allowed)}: return False")
            return
        if len(options) == 1 and type(None) in args:
            var = name("x")
            lines.append(f"{pad}{var} = {value}")
            lines.append(f"{pad}if {var} is not None:")
            _emit(options[0], var, lines, ns, depth + 1, counter)
            lines.append(f"{pad}    pass")
            return
    elif origin is tuple:
        var, each = name("x"), name("e")
        lines.append(f"{pad}{var} = {value}")
        lines.append(f"{pad}if type({var}) is not tuple: return False")
        lines.append(f"{pad}for {each} in {var}:")
        _emit(typing.get_args(hint)[0], each, lines, ns, depth + 1, counter)
        lines.append(f"{pad}    pass")
        return
    elif hint is datetime:
        var = value if value.isidentifier() else name("x")
        if var != value:
            lines.append(f"{pad}{var} = {value}")
        lines.append(f"{pad}if type({var}) is not _datetime or ({var}.tzinfo is not _utc "
                     f"and {var}.utcoffset() is None): return False")
        return
    elif dataclasses.is_dataclass(hint) and isinstance(hint, type):
        var = value if value.isidentifier() else name("x")
        if var != value:
            lines.append(f"{pad}{var} = {value}")
        lines.append(f"{pad}if type({var}) is not {name('c', hint)}: return False")
        hints = typing.get_type_hints(hint)
        for f in dataclasses.fields(hint):
            _emit(hints[f.name], f"{var}.{f.name}", lines, ns, depth, counter)
        return
    # anything else: the full check decides
    judge = name("j", _fault(hint))
    lines.append(f"{pad}if {judge}({value}) is not None: return False")
