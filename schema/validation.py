"""Document validation: graphql-core's rules, with "Did you mean ...?" only where wanted,
cached per query text.

Sits in the schema's extensions where Strawberry's own validation cache would be. The rules are
the specification's plus Strawberry's two, unchanged. Production switches the suggestions off:
for every unknown field, argument or type graphql-core computes a lexical distance to every
name the schema has (a hostile query holds a hundred before validation stops), and the hints
map the schema for a caller who may not introspect it; the demo keeps them for developers.
Results are kept per query text (the same text is the same document), so a client's usual
operations are validated once.

>>> validator = Validator(maxsize=256, suggestions=False)
>>> schema = strawberry.Schema(query=Query, extensions=[lambda: Validate(validator)])  # doctest: +SKIP
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, validate
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

MAX_ERRORS = 100  # graphql-core's default: validation stops there


class Validator:
    """Validates documents (with or without suggestions) and remembers the last `maxsize`
    results."""

    def __init__(self, maxsize: int = 256, *, suggestions: bool = False) -> None:
        self.maxsize = maxsize
        self.suggestions = suggestions
        self._results: OrderedDict[tuple[int, str, tuple[Any, ...]], list[GraphQLError]] = (
            OrderedDict())

    def errors(self, schema: GraphQLSchema, document: DocumentNode, query: str | None,
               rules: Sequence[Any]) -> list[GraphQLError]:
        every = (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
        key = (id(schema), query or "", tuple(every))
        found = self._results.get(key) if query else None
        if found is not None:
            self._results.move_to_end(key)
            return found
        found = validate(schema, document, every, max_errors=MAX_ERRORS,
                         hide_suggestions=not self.suggestions)
        if query:
            self._results[key] = found
            if len(self._results) > self.maxsize:
                self._results.popitem(last=False)
        return found


class Validate(SchemaExtension):
    """Runs `Validator` for each operation (Strawberry then skips its own validation)."""

    def __init__(self, validator: Validator, *, execution_context: Any = None) -> None:
        self.validator = validator
        if execution_context is not None:
            self.execution_context = execution_context

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and context.validation_rules:
            context.pre_execution_errors = self.validator.errors(
                context.schema._schema, context.graphql_document, context.query,
                context.validation_rules)
        yield
