"""Query limits: parse once, measure the operation's shape, refuse it before anything runs.

Sits in the GraphQL endpoint between reading the request and executing it: `Limiter.parse`
bounds the token count, `Limiter.check` walks the AST (with the schema's types) for depth,
aliases, list sizes and an estimated cost. A refused query raises `QueryTooComplexError`
naming the limit, so no resolver runs and no upstream is called. Introspection is refused here
too when it is switched off (production), before validation would otherwise answer it.

>>> limiter = Limiter(LimitsSettings(max_depth=2))
>>> limiter.check(limiter.parse("{ a { b { c } } }"), None).limit  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
    parse,
)
from graphql.type.definition import GraphQLNamedType
from strawberry.extensions import SchemaExtension

from gateway.bounds import BoundError, measure, scan
from gateway.settings import LimitsSettings
from schema.errors import BadUserInputError, QueryTooComplexError

_INTROSPECTION = frozenset({"__schema", "__type"})
_DIGITS = re.compile(r"\d{11}")
MAX_NESTING = 64  # braces, brackets, parentheses and fragment levels: the parser recurses
# The standard introspection query (graphql-js, GraphiQL) nests 15 fields deep; allow it,
# and no deeper (`__type { ofType { ofType ... } } }` is recursive), and a few per document
MAX_INTROSPECTION_DEPTH = 16
MAX_INTROSPECTION_FIELDS = 3
_PAGE_ARGUMENTS = frozenset({"first", "last", "limit"})
_SUGGESTION = re.compile(r" ?Did you mean [^?]*\?")


@dataclass(frozen=True)
class Shape:
    """What `check` measured: the numbers behind each limit (for metrics and tests)."""

    depth: int
    aliases: int
    cost: int


def _too_complex(limit: str, maximum: int, actual: int | None = None) -> QueryTooComplexError:
    extra: dict[str, Any] = {"limit": limit, "maximum": maximum}
    if actual is not None:
        extra["actual"] = actual
    return QueryTooComplexError(
        f"The query exceeds the {limit} limit of {maximum}; simplify it or split it.", **extra
    )


class Limiter:
    """Parse and measure GraphQL documents against `LimitsSettings`; built once per app."""

    def __init__(self, settings: LimitsSettings, *, introspection: bool = True) -> None:
        self.settings = settings
        self.introspection = introspection
        # clients send a handful of distinct operations: parse each once (failures not cached)
        self.parse = functools.lru_cache(maxsize=256)(self._parse)
        # the same document measures the same for variables of the same shape (check())
        self._shapes: dict[tuple[int, int, str | None, str], tuple[DocumentNode, Shape]] = {}

    def _parse(self, query: str) -> DocumentNode:
        """Parse `query`, refusing more than `max_tokens` lexical tokens or nesting deeper
        than `MAX_NESTING` before the (recursive) parser sees it (QUERY_TOO_COMPLEX)."""
        limit = self.settings.max_tokens
        try:
            scan(query, max_tokens=limit, max_nesting=MAX_NESTING)
            return parse(query, max_lexical_tokens=limit or None, max_comments=limit or None)
        except BoundError as exc:
            raise _too_complex(exc.limit, exc.maximum, exc.actual) from None
        except RecursionError:  # unreachable past the scan; never a crash if it were
            raise _too_complex("depth", MAX_NESTING) from None
        except GraphQLError as exc:
            if exc.message.startswith("Syntax Error: Document contains more than"):
                raise _too_complex("tokens", limit) from None
            raise BadUserInputError(
                f"The query cannot be parsed: {_DIGITS.sub('***********', exc.message)}",
                locations=_locations(exc)) from None

    def check(self, document: DocumentNode, schema: GraphQLSchema | None,
              variables: Mapping[str, Any] | None = None,
              operation_name: str | None = None) -> Shape:
        """Measure the document and the operation that will run; raise
        `QueryTooComplexError` on any limit. The document bounds (selections, overlapping
        field pairs) come first: they keep validation, which runs next, cheap.

        A document passes or fails the same way for variables of the same shape (only
        numbers and list sizes count, never a string's text), and the parser cache hands out
        one object per query text: a passing measurement is remembered per document,
        operation and variable shape, so a repeated operation is measured once."""
        key = (id(document), id(schema), operation_name, repr(_shape(variables or {})))
        known = self._shapes.get(key)
        if known is not None and known[0] is document:
            return known[1]
        shape = self._measure(document, schema, variables, operation_name)
        if len(self._shapes) >= 1024:
            self._shapes.clear()
        self._shapes[key] = (document, shape)
        return shape

    def _measure(self, document: DocumentNode, schema: GraphQLSchema | None,
                 variables: Mapping[str, Any] | None, operation_name: str | None) -> Shape:
        s = self.settings
        aliases = sum(1 for _ in _aliased(document))
        if s.max_aliases and aliases > s.max_aliases:
            raise _too_complex("aliases", s.max_aliases, aliases)
        try:
            measure(document, max_selections=s.max_selections, max_overlaps=s.max_overlaps,
                    max_nesting=MAX_NESTING)
        except BoundError as exc:
            raise _too_complex(exc.limit, exc.maximum, exc.actual) from None
        walk = _Walk(self, document, schema, variables or {})
        depth = cost = 0
        for operation in _operations(document, operation_name):
            root = schema.get_root_type(operation.operation) if schema else None
            d, c = walk.selection_set(operation.selection_set, root, 0, frozenset())
            depth, cost = max(depth, d), cost + c
        if s.max_cost and cost > s.max_cost:
            raise _too_complex("cost", s.max_cost, cost)
        return Shape(depth, aliases, cost)


def _shape(value: Any) -> Any:
    """What of a variable's value the limits read: numbers, booleans, list and object sizes
    and keys; a string counts as its type only (its text changes no limit)."""
    if isinstance(value, str):
        return ""
    if isinstance(value, Mapping):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shape(v) for v in value]
    return value


def selected_operation(document: DocumentNode,
                       operation_name: str | None) -> OperationDefinitionNode | None:
    """The operation `operation_name` picks (or the only one), None when ambiguous/missing."""
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        return next((op for op in ops if op.name and op.name.value == operation_name), None)
    return ops[0] if len(ops) == 1 else None


def root_fields(document: DocumentNode, operation_name: str | None) -> tuple[str, ...]:
    """The schema field names at the root of the selected operation (a label with no data)."""
    op = selected_operation(document, operation_name)
    if op is None:
        return ()
    names: set[str] = set()
    _collect(op.selection_set, frozenset(), _fragments(document), names)
    return tuple(sorted(names))


def _collect(selection_set: SelectionSetNode, seen: frozenset[str], frags: Any,
             names: set[str]) -> None:
    # a module function, not a closure calling itself (a reference cycle left for the GC)
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            names.add(sel.name.value)
        elif isinstance(sel, InlineFragmentNode):
            _collect(sel.selection_set, seen, frags, names)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
            frag = frags.get(sel.name.value)
            if frag is not None:
                _collect(frag.selection_set, seen | {sel.name.value}, frags, names)


def _operations(document: DocumentNode,
                operation_name: str | None) -> list[OperationDefinitionNode]:
    op = selected_operation(document, operation_name)
    if op is not None:
        return [op]
    # ambiguous or unknown name: execution will refuse it, but measure everything meanwhile
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions
            if isinstance(d, FragmentDefinitionNode)}


def _aliased(document: DocumentNode) -> Iterator[FieldNode]:
    stack: list[Any] = list(document.definitions)
    while stack:
        node = stack.pop()
        if isinstance(node, FieldNode) and node.alias is not None:
            yield node
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)


def _locations(exc: GraphQLError) -> list[dict[str, int]]:
    return [{"line": loc.line, "column": loc.column} for loc in exc.locations or []]


class _Walk:
    """One depth-first pass over the selected operation, expanding fragments once per path."""

    def __init__(self, limiter: Limiter, document: DocumentNode, schema: GraphQLSchema | None,
                 variables: Mapping[str, Any]) -> None:
        self.s = limiter.settings
        self.introspection = limiter.introspection
        self.fragments = _fragments(document)
        self.schema = schema
        self.variables = variables
        self.visited = 0  # bounds the work of the walk itself
        self.introspections = 0  # __schema and __type fields seen
        self.measured: dict[str, tuple[int, int]] = {}  # fragment -> (depth below it, cost)

    def _budget(self, cost: int) -> None:
        self.visited += 1
        if self.s.max_cost and (cost > self.s.max_cost or self.visited > 10 * self.s.max_cost):
            raise _too_complex("cost", self.s.max_cost)

    def selection_set(self, selection_set: SelectionSetNode, parent: Any, depth: int,
                      path: frozenset[str]) -> tuple[int, int]:
        """(max depth below here, total cost below here) for one selection set."""
        max_depth, total = depth, 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                d, c = self.field(sel, parent, depth + 1, path)
            elif isinstance(sel, InlineFragmentNode):
                cond = sel.type_condition
                typ = self._type(cond.name.value) if cond else parent
                d, c = self.selection_set(sel.selection_set, typ, depth, path)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                frag = self.fragments.get(name)
                if frag is None or name in path:  # unknown or cyclic: validation refuses it
                    continue
                if name in self.measured:  # a fragment measures the same wherever it is spread
                    rel, c = self.measured[name]
                    d = depth + rel
                    if self.s.max_depth and d > self.s.max_depth:
                        raise _too_complex("depth", self.s.max_depth, d)
                else:
                    typ = self._type(frag.type_condition.name.value)
                    d, c = self.selection_set(frag.selection_set, typ, depth, path | {name})
                    self.measured[name] = (d - depth, c)
            else:  # pragma: no cover - no other selection kinds exist
                continue
            max_depth, total = max(max_depth, d), total + c
            self._budget(total)
        return max_depth, total

    def field(self, node: FieldNode, parent: Any, depth: int,
              path: frozenset[str]) -> tuple[int, int]:
        name = node.name.value
        if name in _INTROSPECTION:
            if not self.introspection:
                raise BadUserInputError("Introspection is disabled on this server.",
                                        reason="INTROSPECTION_DISABLED")
            self.introspections += 1
            if self.introspections > MAX_INTROSPECTION_FIELDS:
                raise _too_complex("introspection", MAX_INTROSPECTION_FIELDS,
                                   self.introspections)
            below = self._depth(node.selection_set, frozenset())
            if below + 1 > MAX_INTROSPECTION_DEPTH:
                raise _too_complex("depth", MAX_INTROSPECTION_DEPTH, below + 1)
            return depth + below, 1  # the schema's size bounds its answer, not our cost model
        if self.s.max_depth and depth > self.s.max_depth:
            raise _too_complex("depth", self.s.max_depth, depth)
        size = self._list_size(node)
        field_def = parent.fields.get(name) if parent is not None and hasattr(
            parent, "fields") else None
        child_type = get_named_type(field_def.type) if field_def else None
        is_list = bool(field_def) and is_list_type(get_nullable_type(field_def.type))
        if node.selection_set is None:
            return depth, 1
        multiplier = (size if size is not None else self.s.default_list_size) if is_list else 1
        d, c = self.selection_set(node.selection_set, child_type, depth, path)
        return d, 1 + multiplier * c

    def _depth(self, selection_set: SelectionSetNode | None, path: frozenset[str]) -> int:
        """How many field levels nest below `selection_set` (fragments expanded)."""
        deepest = 0
        for sel in selection_set.selections if selection_set is not None else ():
            if isinstance(sel, FieldNode):
                deepest = max(deepest, 1 + self._depth(sel.selection_set, path))
            elif isinstance(sel, InlineFragmentNode):
                deepest = max(deepest, self._depth(sel.selection_set, path))
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in path:
                frag = self.fragments.get(sel.name.value)
                if frag is not None:
                    deepest = max(deepest, self._depth(frag.selection_set,
                                                       path | {sel.name.value}))
        return deepest

    def _list_size(self, node: FieldNode) -> int | None:
        """The page size a field asks for; refuses list arguments above `max_list_size`."""
        size: int | None = None
        for arg in node.arguments or ():
            value = self._value(arg.value)
            if arg.name.value in _PAGE_ARGUMENTS and isinstance(value, int):
                size = value
                self._list_limit(value)
            self._list_lengths(value)
        return size

    def _list_limit(self, n: int) -> None:
        if self.s.max_list_size and n > self.s.max_list_size:
            raise _too_complex("listSize", self.s.max_list_size, n)

    def _list_lengths(self, value: Any) -> None:
        if isinstance(value, list):
            self._list_limit(len(value))
            for v in value:
                self._list_lengths(v)
        elif isinstance(value, dict):
            for v in value.values():
                self._list_lengths(v)

    def _value(self, node: ValueNode) -> Any:
        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        if isinstance(node, IntValueNode):
            try:
                return int(node.value)
            except ValueError:  # pragma: no cover - the lexer only makes digits
                return None
        if isinstance(node, ListValueNode):
            return [self._value(v) for v in node.values]
        if isinstance(node, ObjectValueNode):
            return {f.name.value: self._value(f.value) for f in node.fields}
        return None

    def _type(self, name: str) -> GraphQLNamedType | None:
        return self.schema.get_type(name) if self.schema is not None else None


class UseParsedDocument(SchemaExtension):
    """Hands the document the endpoint already parsed (and measured) to Strawberry, so a
    query is parsed once; it reads `context.document`, set by the GraphQL endpoint."""

    def on_parse(self) -> Iterator[None]:
        document = getattr(self.execution_context.context, "document", None)
        if document is not None:
            self.execution_context.graphql_document = document
        yield


class HideSuggestions(SchemaExtension):
    """Production: drop graphql-core's "Did you mean ...?" hints, which map the schema for an
    attacker who may not introspect it."""

    def on_validate(self) -> Iterator[None]:
        yield
        _strip(self.execution_context.pre_execution_errors)

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        _strip(getattr(result, "errors", None))


def _strip(errors: list[GraphQLError] | None) -> None:
    for error in errors or ():
        error.message = _SUGGESTION.sub("", error.message)
