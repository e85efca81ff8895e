"""Document bounds: what a query's text and AST may hold before graphql-core works on them.

Sits inside the query limits (gateway/limits.py), around the parse and before validation:
graphql-core's parser recurses once per nesting level (a few thousand `[` or `{` are a stack
overflow, not a syntax error), and its validation compares every pair of fields that answer
under the same response path (OverlappingFieldsCanBeMerged), so ~700 copies of one field cost a
second of CPU. `scan` lexes the text once to bound tokens and nesting before the parser runs;
`measure` counts, on the parsed document, the selections (fields, fragment spreads, inline
fragments), operations, fragments, variables, directives and arguments, and the field pairs
validation will compare (fragments expanded where they are spread, memoised), stopping as soon
as a bound is passed. bench/admission.py searches for the
costliest documents these bounds admit; bench/RESULTS.md has the figures.

>>> scan("{ a { b } }", max_tokens=100, max_nesting=64)
(6, 2)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    Source,
    TokenKind,
)
from graphql.language.lexer import Lexer

_OPEN = frozenset({TokenKind.BRACE_L, TokenKind.BRACKET_L, TokenKind.PAREN_L})
_CLOSE = frozenset({TokenKind.BRACE_R, TokenKind.BRACKET_R, TokenKind.PAREN_R})


# Fixed bounds for what a client never needs many of; each one is validated at a cost
MAX_OPERATIONS = 10
MAX_FRAGMENTS = 20
MAX_VARIABLES = 30  # per document
MAX_DIRECTIVES = 30
MAX_ARGUMENTS = 50  # on fields and directives, in the whole document


class BoundError(Exception):
    """A document over one of the bounds; `limit` names it (tokens, depth, selections,
    overlaps), `maximum` is the bound and `actual` what was counted when it stopped."""

    def __init__(self, limit: str, maximum: int, actual: int) -> None:
        super().__init__(f"{limit} {actual} > {maximum}")
        self.limit = limit
        self.maximum = maximum
        self.actual = actual


def _bound(limit: str, maximum: int, actual: int) -> None:
    if maximum and actual > maximum:
        raise BoundError(limit, maximum, actual)


def scan(text: str, *, max_tokens: int, max_nesting: int) -> tuple[int, int]:
    """(tokens, deepest nesting of braces, brackets and parentheses) of `text`, lexed once.

    Raises `BoundError` at the first token past `max_tokens` or level past `max_nesting`; a
    lexical error ends the scan quietly (the parser then reports it with its location).
    """
    lexer = Lexer(Source(text))
    tokens = depth = deepest = 0
    try:
        while lexer.advance().kind is not TokenKind.EOF:
            tokens += 1
            if max_tokens and tokens > max_tokens:
                raise BoundError("tokens", max_tokens, tokens)
            kind = lexer.token.kind
            if kind in _OPEN:
                depth += 1
                deepest = max(deepest, depth)
                if depth > max_nesting:
                    raise BoundError("depth", max_nesting, depth)
            elif kind in _CLOSE:
                depth -= 1
    except GraphQLError:
        pass
    return tokens, deepest


@dataclass(frozen=True, slots=True)
class Size:
    """What `measure` counted: selections in the document, field pairs validation compares."""

    selections: int
    overlaps: int


def measure(document: DocumentNode, *, max_selections: int, max_overlaps: int,
            max_nesting: int) -> Size:
    """Count selections and same-path field pairs; `BoundError` as soon as one is too many.

    Selections are counted as written (each fragment once). Overlaps are the pairs of fields
    under the same response path (alias or name at every level) of each operation, with every
    fragment expanded where it is spread, as graphql-core's overlap rule compares them.
    """
    counts = Counter(type(d).__name__ for d in document.definitions)
    _bound("operations", MAX_OPERATIONS, counts["OperationDefinitionNode"])
    _bound("fragments", MAX_FRAGMENTS, counts["FragmentDefinitionNode"])
    selections = arguments = directives = variables = 0
    stack: list[Node] = list(document.definitions)
    while stack:
        node = stack.pop()
        if isinstance(node, OperationDefinitionNode):
            variables += len(node.variable_definitions or ())
            _bound("variables", MAX_VARIABLES, variables)
        directives += len(getattr(node, "directives", None) or ())
        arguments += len(getattr(node, "arguments", None) or ())
        _bound("directives", MAX_DIRECTIVES, directives)
        _bound("arguments", MAX_ARGUMENTS, arguments)
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            selections += len(selection_set.selections)
            _bound("selections", max_selections, selections)
            stack.extend(selection_set.selections)
    counter = _Overlaps(document, max_overlaps, max_nesting, max_selections)
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            counter.add(counter.paths(definition.selection_set, 0)[0])
    return Size(selections, counter.pairs)


class _Overlaps:
    """Response paths with their multiplicity, per selection set, fragments memoised."""

    def __init__(self, document: DocumentNode, max_pairs: int, max_nesting: int,
                 max_paths: int) -> None:
        self.fragments = {d.name.value: d for d in document.definitions
                          if isinstance(d, FragmentDefinitionNode)}
        self.memo: dict[str, tuple[Counter[tuple[str, ...]], int]] = {}  # paths, depth below
        self.active: set[str] = set()
        self.max_pairs = max_pairs
        self.max_nesting = max_nesting
        # an expansion with more distinct paths than the document has selections is a
        # fragment bomb (the cost limit refuses it too); 4x leaves room for reuse
        self.max_paths = 4 * max_paths if max_paths else 0
        self.pairs = 0

    def add(self, paths: Counter[tuple[str, ...]]) -> None:
        self.pairs += sum(n * (n - 1) // 2 for n in paths.values() if n > 1)
        if self.max_pairs and self.pairs > self.max_pairs:
            raise BoundError("overlaps", self.max_pairs, self.pairs)

    def paths(self, selection_set: SelectionSetNode,
              level: int) -> tuple[Counter[tuple[str, ...]], int]:
        """The response paths below `selection_set` and how many levels it nests."""
        if level >= self.max_nesting:  # also bounds this recursion, whatever the document
            raise BoundError("depth", self.max_nesting, level + 1)
        out: Counter[tuple[str, ...]] = Counter()
        deepest = 0
        spread: set[str] = set()  # one fragment spread twice in a set is compared once
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                out[(key,)] += 1
                if selection.selection_set is not None:
                    below, depth = self.paths(selection.selection_set, level + 1)
                    deepest = max(deepest, depth)
                    for path, n in below.items():
                        out[(key, *path)] += n
            elif isinstance(selection, InlineFragmentNode):
                below, depth = self.paths(selection.selection_set, level + 1)
                deepest = max(deepest, depth)
                out.update(below)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in spread:
                spread.add(selection.name.value)
                below, depth = self._fragment(selection.name.value, level + 1)
                deepest = max(deepest, depth)
                out.update(below)
            if self.max_paths and len(out) > self.max_paths:
                raise BoundError("selections", self.max_paths, len(out))
        return out, deepest + 1

    def _fragment(self, name: str, level: int) -> tuple[Counter[tuple[str, ...]], int]:
        if name in self.memo:
            found, depth = self.memo[name]
            if level + depth > self.max_nesting:
                raise BoundError("depth", self.max_nesting, level + depth)
            return found, depth
        fragment = self.fragments.get(name)
        if fragment is None or name in self.active:  # unknown or cyclic: validation says so
            return Counter(), 0
        self.active.add(name)
        try:
            self.memo[name] = self.paths(fragment.selection_set, level)
        finally:
            self.active.discard(name)
        return self.memo[name]
