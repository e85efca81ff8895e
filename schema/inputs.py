"""Text input rules: one validator for every string a client sends, now and in later fields.

Sits in the schema, before any resolver runs: `ValidateInputs` (a schema extension, so every
transport that executes the schema gets it) checks every string in the operation, each string
literal in the document and every string inside the variables, with `check_text`. An
argument may have a tighter limit (`ARGUMENT_LIMITS`: `emergencyReason` 500), applied to its
literal or to the variable passed to it; resolvers call `free_text` with the same limit, for a
caller that runs the schema without this extension.

The rule: letters, marks, digits, punctuation, symbols and spaces of any script; TAB, LF and
CR (a multi-line reason or note); nothing else. Refused, as BAD_USER_INPUT naming the
argument or variable: the other C0 controls (NUL, ESC, ...), DEL and the C1 controls, lone
UTF-16 surrogates, the Unicode noncharacters, and any string longer than `MAX_TEXT`. A NUL
cannot be stored in PostgreSQL text, an ESC or a C1 control rewrites a terminal that prints
it, and neither belongs in a clinical record.

>>> check_text("Bevisstløs, trenger kritisk informasjon\\n", "emergencyReason")
>>> check_text("x\\x00y", "emergencyReason")
Traceback (most recent call last):
schema.errors.BadUserInputError: 'emergencyReason' contains a character that is not allowed in text (U+0000); ...
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    Node,
    StringValueNode,
    VariableDefinitionNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

from schema.errors import BadUserInputError

MAX_TEXT = 10_000  # characters in any one string; arguments may set less (free_text)
# Arguments with a tighter limit, by name wherever they appear (a new free-text argument
# gets its line here; the resolver passes the same number to free_text)
ARGUMENT_LIMITS: dict[str, int] = {"emergencyReason": 500}
# C0 but TAB/LF/CR, DEL, C1, surrogates, noncharacters (U+FDD0..FDEF and U+nFFFE/nFFFF)
_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
                      + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF)
                                for plane in range(17)) + "]")


def check_text(value: str, name: str, max_length: int = MAX_TEXT) -> None:
    """Refuse `value` (BAD_USER_INPUT naming `name`) unless it follows the module's rule."""
    if len(value) > max_length:
        raise BadUserInputError(f"{name!r} is longer than {max_length} characters.",
                                argument=name, maximum=max_length)
    bad = _REFUSED.search(value)
    if bad is not None:
        raise BadUserInputError(
            f"{name!r} contains a character that is not allowed in text (U+{ord(bad.group()):04X}); send "
            "printable text (tab and line breaks are allowed).", argument=name)


def free_text(value: str | None, name: str, max_length: int) -> str | None:
    """A free-text argument checked and trimmed; None when it is absent or blank."""
    if value is None:
        return None
    check_text(value, name, max_length)
    return value.strip() or None


def strings_in(value: Any, name: str) -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value, with the name of where it sits (`$why`, `$in.a`)."""
    stack: list[tuple[Any, str]] = [(value, name)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                if isinstance(key, str):
                    yield f"{where} key", key
                stack.append((sub, f"{where}.{key}" if isinstance(key, str) else where))
        elif isinstance(item, list | tuple):
            stack.extend((sub, where) for sub in item)


def literals_in(document: DocumentNode) -> Iterator[tuple[str, str]]:
    """Every string literal in the document (argument values, variable defaults, directive
    arguments), with the name of the argument or variable it belongs to."""
    stack: list[tuple[Any, str]] = [(document, "query")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, StringValueNode):
            yield where, node.value
        elif isinstance(node, list | tuple):
            stack.extend((child, where) for child in node)
        elif isinstance(node, Node):
            if isinstance(node, ArgumentNode):
                where = node.name.value
            elif isinstance(node, VariableDefinitionNode):
                where = f"${node.variable.name.value}"
            stack.extend((getattr(node, key, None), where) for key in node.keys
                         if key != "loc")


def check_operation(document: DocumentNode | None, variables: Mapping[str, Any] | None) -> None:
    """Apply `check_text` to every string in `variables` and every string literal in
    `document`, each argument's value (literal or variable) with its own limit."""
    values = dict(variables or {})
    if document is not None:
        for argument, name, limit in _document_rules(document):
            given = values.get(name)
            if isinstance(given, str):
                check_text(given, argument, limit)
    for name, text in strings_in(values, "variables"):
        check_text(text, name.replace("variables.", "$", 1))


# A document's literals pass or fail the rule the same way every time, so each document (the
# parser cache hands out the same object for the same text) is walked once: what stays is the
# list of variables passed to arguments with a tighter limit. Keyed by id() with the document
# kept, so a reused id is never mistaken for another document; failures are not remembered.
_RULES: dict[int, tuple[DocumentNode, tuple[tuple[str, str, int], ...]]] = {}
_RULES_MAX = 512


def _document_rules(document: DocumentNode) -> tuple[tuple[str, str, int], ...]:
    """Check the document's own literals (raises BadUserInputError); return (argument,
    variable, limit) for each variable passed to an argument with a limit below MAX_TEXT."""
    known = _RULES.get(id(document))
    if known is not None and known[0] is document:
        return known[1]
    rules: list[tuple[str, str, int]] = []
    for argument, value in _argument_values(document):
        limit = ARGUMENT_LIMITS.get(argument, MAX_TEXT)
        if isinstance(value, VariableNode):
            if limit < MAX_TEXT:
                rules.append((argument, value.name.value, limit))
        elif isinstance(value, StringValueNode):
            check_text(value.value, argument, limit)
    for name, text in literals_in(document):  # lists, input objects, defaults
        check_text(text, name)
    if len(_RULES) >= _RULES_MAX:
        _RULES.clear()
    _RULES[id(document)] = (document, tuple(rules))
    return _RULES[id(document)][1]


def _argument_values(document: DocumentNode) -> Iterator[tuple[str, Any]]:
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, ArgumentNode):
            yield node.name.value, node.value
        if isinstance(node, list | tuple):
            stack.extend(node)
        elif isinstance(node, Node):
            stack.extend(getattr(node, key, None) for key in node.keys if key != "loc")


class ValidateInputs(SchemaExtension):
    """Refuse an operation with a string that breaks the text rule, before execution: the
    response is a request error (no `data`) with BAD_USER_INPUT."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        try:
            check_operation(context.graphql_document, context.variables)
        except BadUserInputError as exc:
            context.result = ExecutionResult(data=None, errors=[
                GraphQLError(exc.message, original_error=exc)])
        yield
