"""Plain-data completion: the part of an answer that is only attributes, built without the
per-field machinery.

Sits under the schema (`build_schema` hands `PlainDataExecutor` to Strawberry). After the
patient's resolvers return their items, most of an answer is plain data: dataclass
attributes (a Medication's name, its dosage's text, every provenance's source), about 190
fields for the legevakt query. graphql-core completes each with a resolve-info object, a
path, a resolver call through Strawberry's wrapper and a recursive `complete_value`
(bench/RESULTS.md: a third of a warm request's CPU). Here an object whose selected fields are
all plain — no arguments, a Strawberry attribute or a synchronous resolver that takes only
`self`, no field extensions, no directives that defer — is completed by a plan compiled once
per operation, type and selection (a field with arguments is plain when the query gives
none and each defaults to null): read the attribute, coerce the leaf with the type's own
`coerce_output_value`, recurse into lists and objects. Each object's plan is one generated
function (`_generate`): attributes read in line, a str in a String field or a bool in a
Boolean kept without a call, nested objects' plans called directly; only other values go
through the completer closures.

The answer is the same, field for field, and errors are too: anything the plan does not
expect (a null in a non-null field, an exception as a value, a coercion that fails, a
resolver that raises, something not a list where a list is due) makes that object fall back
to graphql-core's own completion, which then reports it exactly as before. Only pure reads
are taken this way, so completing an object again on a fall-back does no harm. With a
schema extension or middleware that wraps resolvers (`resolve` hook), nothing takes the fast
path: every field then goes through it as before.

Plans are shared between requests: the same operation text is the same parsed document (the
parser cache), so a plan is kept by its type and the identity of its field nodes (held, so an
id cannot be reused while its plan is kept), bounded, in a `SharedPlans` that belongs to the
schema (made with it on first use, held by graphql-core's schema object): no module state. Compiling them per request, and the
closures' cycles it left for the collector, were a third of a warm request's instructions
(bench/RESULTS.md, issue 16 item 3). An operation with any directive keeps its plans to itself:
`@skip`/`@include` may read variables, so its selection can differ from one request to the next.

>>> schema = strawberry.Schema(query=Query, execution_context_class=PlainDataExecutor)  # doctest: +SKIP
"""

from __future__ import annotations

import keyword
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from graphql import (
    DirectiveNode,
    GraphQLBoolean,
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfoHelpers,
    GraphQLString,
    Node,
    OperationDefinitionNode,
    Undefined,
    is_leaf_type,
)
from graphql.pyutils import gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import CustomGraphQLEnumType

Completer = Callable[[Any], Any]


class _NotPlainError(Exception):
    """This object is not plain after all: complete it the ordinary way."""


_NOT_PLAIN = object()  # memo marker: this (type, selection) cannot be planned
SHARED_PLANS = 4096  # (type, field nodes) plans kept between requests, oldest out first


class SharedPlans:
    """One schema's plans kept between requests, and which operations may share them."""

    __slots__ = ("__weakref__", "directive_free", "plans")

    def __init__(self) -> None:
        # (type, ids of the field nodes) -> (the nodes, kept alive; plan or _NOT_PLAIN)
        self.plans: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        # id(operation) -> (the operation, kept alive; True when it and its fragments carry
        # no directive)
        self.directive_free: dict[int, tuple[OperationDefinitionNode, bool]] = {}

    @staticmethod
    def of(schema: Any) -> SharedPlans:
        """The plans of `schema` (graphql-core's schema object), made on first use."""
        shared: SharedPlans | None = schema.__dict__.get("kilde_shared_plans")
        if shared is None:
            shared = schema.__dict__.setdefault("kilde_shared_plans", SharedPlans())
        return shared

    def shareable(self, operation: OperationDefinitionNode, fragments: Any) -> bool:
        """True when `operation` and its document's fragments carry no directive, so its
        plans are the same for every request (remembered per operation node)."""
        known = self.directive_free.get(id(operation))
        if known is not None and known[0] is operation:
            return known[1]
        free = not _has_directive(operation) and not any(
            _has_directive(getattr(f, "definition", f)) for f in (fragments or {}).values())
        self.directive_free[id(operation)] = (operation, free)
        if len(self.directive_free) > SHARED_PLANS:
            del self.directive_free[next(iter(self.directive_free))]
        return free


class PlainDataExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with plain objects completed by compiled plans."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = _helpers(self)
        manager = self.middleware_manager
        self._plain = not (manager is not None and getattr(
            manager, "_middleware_resolvers", None))
        # (type, id(field details)) -> (field details kept alive, plan or _NOT_PLAIN)
        self._plans: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        shared = SharedPlans.of(self.schema)
        self._shared = shared.plans
        self._share = self._plain and shared.shareable(self.operation, self.fragments)

    def complete_object_value(self, return_type: GraphQLObjectType, field_details_list: Any,
                              info: Any, path: Any, result: Any, position_context: Any) -> Any:
        if self._plain:
            plan = self._object_plan(return_type, field_details_list)
            if plan is not None:
                try:
                    return plan(result)
                except Exception:  # _NotPlainError, a failed coercion, a raising resolver
                    pass
        return super().complete_object_value(return_type, field_details_list, info, path,
                                             result, position_context)

    # -- compiling ------------------------------------------------------------------------

    def _object_plan(self, return_type: GraphQLObjectType,
                     field_details_list: Any) -> Completer | None:
        plans: dict[tuple[Any, ...], tuple[Any, Any]]
        if self._share and not any(d.fragment_variable_values for d in field_details_list):
            plans, held = self._shared, tuple(d.node for d in field_details_list)
            key: tuple[Any, ...] = (return_type, *map(id, held))
        else:
            plans, held = self._plans, field_details_list
            key = (return_type, id(field_details_list))
        known = plans.get(key)
        if known is not None:
            return None if known[1] is _NOT_PLAIN else known[1]
        plans[key] = (held, _NOT_PLAIN)  # a cycle is not plain
        try:
            plan = self._compile_object(return_type, field_details_list)
        except BaseException:
            plans.pop(key, None)
            raise
        plans[key] = (held, _NOT_PLAIN if plan is None else plan)
        if plans is self._shared and len(plans) > SHARED_PLANS:
            del plans[next(iter(plans))]
        return plan

    def _compile_object(self, return_type: GraphQLObjectType,
                        field_details_list: Any) -> Completer | None:
        if return_type.is_type_of is not None:
            return None
        grouped, defers, _ = self.collect_subfields(return_type, field_details_list)
        if defers:
            return None
        steps: list[_Step] = []
        for response_name, details in grouped.items():
            first = details[0]
            node = first.node
            name = node.name.value
            if name == "__typename":
                steps.append(_Step(response_name, None, None, return_type.name))
                continue
            field_def = self.schema.get_field(return_type, name)
            if field_def is None:
                continue  # graphql-core leaves it out of the answer too
            if node.arguments or getattr(first, "fragment_variable_values", None):
                return None
            read = _reader(field_def)
            if read is None:
                return None
            complete = self._completer(field_def.type, details)
            if complete is None:
                return None
            steps.append(_Step(response_name, read, complete, None,
                               attribute=_attribute(field_def),
                               **self._shortcut(field_def.type, details)))
        return _generate(return_type.name, steps)

    def _shortcut(self, type_: GraphQLOutputType, details: Any) -> dict[str, Any]:
        """What lets the generated plan complete a field of `type_` in line (`_Step`)."""
        nullable = not isinstance(type_, GraphQLNonNull)
        inner = type_ if nullable else type_.of_type  # type: ignore[union-attr]
        if isinstance(inner, GraphQLObjectType):  # its own plan, called from this one
            return {"nullable": nullable, "nested": self._object_plan(inner, details)}
        if isinstance(inner, GraphQLList):
            item = inner.of_type
            item_nullable = not isinstance(item, GraphQLNonNull)
            item = item if item_nullable else item.of_type
            if isinstance(item, GraphQLObjectType):
                return {"nullable": nullable, "items": (
                    self._object_plan(item, details), item_nullable)}
            shortcut = _leaf_shortcut(item)
            each = self._completer(inner.of_type, details)
            if shortcut is None or each is None:
                return {"nullable": nullable}
            return {"nullable": nullable, "list_leaf": (*shortcut, each)}
        return {"nullable": nullable, "leaf": _leaf_shortcut(inner)}

    def _completer(self, type_: GraphQLOutputType, details: Any) -> Completer | None:
        if isinstance(type_, GraphQLNonNull):
            inner = self._completer(type_.of_type, details)
            if inner is None:
                return None

            def non_null(value: Any) -> Any:
                done = inner(value)
                if done is None:
                    raise _NotPlainError
                return done
            return non_null
        if isinstance(type_, GraphQLList):
            item = self._completer(type_.of_type, details)
            if item is None:
                return None

            def list_(value: Any) -> Any:
                if value is None:
                    return None
                if not isinstance(value, list | tuple):
                    raise _NotPlainError
                return [item(v) for v in value]
            return list_
        if is_leaf_type(type_):
            coerce = type_.coerce_output_value  # type: ignore[union-attr]

            def leaf(value: Any) -> Any:
                if value is None:
                    return None
                if isinstance(value, Exception):
                    raise _NotPlainError
                done = coerce(value)
                if done is None or done is Undefined:
                    raise _NotPlainError
                return done
            return leaf
        if isinstance(type_, GraphQLObjectType):
            plan = self._object_plan(type_, details)
            if plan is None:
                return None

            def object_(value: Any) -> Any:
                if value is None:
                    return None
                if isinstance(value, Exception):
                    raise _NotPlainError
                return plan(value)
            return object_
        return None  # interfaces and unions: graphql-core resolves their runtime type


class _Step:
    """One field of a compiled object: its response name, how to read it from the parent,
    how to complete it (`complete`, the closure), and what lets the generated code complete
    it in line instead (see `PlainDataExecutor._shortcut`)."""

    __slots__ = ("attribute", "complete", "constant", "items", "leaf", "list_leaf", "nested",
                 "nullable", "read", "response_name")

    def __init__(self, response_name: str, read: Callable[[Any], Any] | None,
                 complete: Completer | None, constant: str | None, *,
                 attribute: str | None = None, nullable: bool = True,
                 leaf: tuple[type, dict[str, Any] | None] | None = None,
                 list_leaf: tuple[type, dict[str, Any] | None, Completer] | None = None,
                 nested: Completer | None = None,
                 items: tuple[Completer | None, bool] | None = None) -> None:
        self.response_name = response_name
        self.read = read
        self.complete = complete
        self.constant = constant
        self.attribute = attribute  # read as `source.<attribute>` (Strawberry's getattr)
        self.nullable = nullable
        self.leaf = leaf  # (exact type, None: kept as is | {member name: enum value name})
        self.list_leaf = list_leaf  # the same and the item's completer, for a list of leaves
        self.nested = nested  # an object field's own plan
        self.items = items  # a list of objects: their plan, and whether an item may be null


# Leaf types whose coercion returns a value of exactly this Python type unchanged (String and
# ID return a str as it is, Boolean a bool): the generated plan keeps such a value without
# calling the coercion; any other value (an int for a String, a str subclass, an Exception)
# goes through the completer as before. Int is not here: its coercion checks the range.
_FAST_LEAF: dict[Any, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


def _leaf_shortcut(type_: Any) -> tuple[type, dict[str, Any] | None] | None:
    """(exact Python type, table) for a leaf the generated plan completes in line: a
    String/ID/Boolean keeps a value of exactly that type; a Strawberry enum maps a member of
    its class by the member's name to what `coerce_output_value` gives for that member
    (asked once per member here, so the answer is the same). None: call the completer."""
    fast = _FAST_LEAF.get(type_)
    if fast is not None:
        return fast, None
    if (isinstance(type_, CustomGraphQLEnumType) and type(type_).coerce_output_value
            is CustomGraphQLEnumType.coerce_output_value):
        table: dict[str, Any] = {}
        for member in type_.wrapped_cls:
            try:
                table[member._name_] = type_.coerce_output_value(member)
            except Exception:  # left out: the completer reports it, as graphql-core does
                continue
        return type_.wrapped_cls, table
    return None


def _attribute(field_def: Any) -> str | None:
    """The attribute a plain Strawberry field reads with `getattr` (the default resolver),
    when it can be written as `source.<name>` in generated code; else None."""
    field = (field_def.extensions or {}).get("strawberry-definition")
    if (field is None or field.base_resolver is not None
            or not getattr(field_def.resolve, "_is_default", False)
            or field.default_resolver is not getattr):
        return None
    name = field.python_name
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__"):
        return None  # `__x` would be name-mangled; read it through `_reader`'s getattr
    return name


def _generate(type_name: str, steps: list[_Step]) -> Completer:
    """The plan for one object as one generated function (as `dataclasses` generates
    `__init__`): each field read, checked and completed in line, the answer's dict built in
    one expression. Per leaf it saves the calls of reader, non-null check, leaf check and
    coercion the closures made (~190 leaves per legevakt answer); it does exactly what they
    did, and hands any other value to the same completer closures."""
    names: dict[str, Any] = {"_NotPlainError": _NotPlainError, "Exception": Exception,
                             "_LISTS": (list, tuple)}
    lines = ["def plan(source):"]
    values: list[str] = []

    def leaf(v: str, i: int, shortcut: tuple[type, dict[str, Any] | None], complete: str,
             indent: str) -> None:
        names[f"f{i}"], table = shortcut
        if table is None:
            lines.append(f"{indent}if {v}.__class__ is not f{i}:")
            lines.append(f"{indent}    {v} = {complete}({v})")
        else:
            names[f"n{i}"] = table
            lines.append(f"{indent}if {v}.__class__ is f{i}:")
            lines.append(f"{indent}    {v} = n{i}[{v}._name_]")
            lines.append(f"{indent}else:")
            lines.append(f"{indent}    {v} = {complete}({v})")

    for i, step in enumerate(steps):
        v = f"v{i}"
        values.append(f"{step.response_name!r}: {v}")
        if step.read is None:  # __typename
            names[f"t{i}"] = step.constant
            lines.append(f"    {v} = t{i}")
            continue
        if step.attribute is not None:
            lines.append(f"    {v} = source.{step.attribute}")
        else:
            names[f"r{i}"] = step.read
            lines.append(f"    {v} = r{i}(source)")
        names[f"c{i}"] = step.complete
        if step.leaf is not None:  # the completer handles a null (None, or not plain)
            leaf(v, i, step.leaf, f"c{i}", "    ")
        elif (step.nested is not None or step.list_leaf is not None
              or (step.items is not None and step.items[0] is not None)):
            if step.nullable:
                lines.append(f"    if {v} is not None:")
            else:
                lines.append(f"    if {v} is None:")
                lines.append("        raise _NotPlainError")
                lines.append("    else:")
            if step.nested is not None:
                names[f"p{i}"] = step.nested
                lines.append(f"        if isinstance({v}, Exception):")
                lines.append("            raise _NotPlainError")
                lines.append(f"        {v} = p{i}({v})")
            elif step.list_leaf is not None:
                names[f"f{i}"], table, names[f"e{i}"] = step.list_leaf
                lines.append(f"        if not isinstance({v}, _LISTS):")
                lines.append("            raise _NotPlainError")
                if table is None:
                    lines.append(f"        {v} = [x if x.__class__ is f{i} else e{i}(x) for x in {v}]")
                else:
                    names[f"n{i}"] = table
                    lines.append(f"        {v} = [n{i}[x._name_] if x.__class__ is f{i} else e{i}(x)"
                                 f" for x in {v}]")
            else:
                assert step.items is not None
                names[f"p{i}"], item_nullable = step.items
                lines.append(f"        if not isinstance({v}, _LISTS):")
                lines.append("            raise _NotPlainError")
                lines.append(f"        for x in {v}:")
                check = ("x is not None and isinstance(x, Exception)" if item_nullable
                         else "x is None or isinstance(x, Exception)")
                lines.append(f"            if {check}:")
                lines.append("                raise _NotPlainError")
                each = f"None if x is None else p{i}(x)" if item_nullable else f"p{i}(x)"
                lines.append(f"        {v} = [{each} for x in {v}]")
        else:
            lines.append(f"    {v} = c{i}({v})")
    lines.append("    return {" + ", ".join(values) + "}")
    exec(compile("\n".join(lines), f"<plan of {type_name}>", "exec"), names)
    plan: Completer = names["plan"]
    return plan


def _helpers(executor: PlainDataExecutor) -> GraphQLResolveInfoHelpers:
    """graphql-core's resolver helpers (`info.async_helpers`) without a reference back to the
    executor. graphql-core builds them from the executor's bound methods, a cycle (executor ->
    helpers -> executor) through which the executor's context, the request's `Context`, kept
    the whole answer (items, judgements, rows) alive until the cyclic collector found it:
    ~12,000 objects per young collection on the cold path, pauses of 30-50 ms on a slow
    machine (bench.cpu, gc.callbacks, 2026-12-02). The same behaviour: `gather` is what
    `gather_async_work` calls; `track` is `track_async_work` while the executor lives, which
    it does for as long as the execution that hands out `info` runs."""
    ref = weakref.ref(executor)

    def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return gather_with_cancel(*values)

    def track(values: Sequence[Any]) -> None:
        live = ref()
        if live is not None:
            live.track_async_work(values)

    return GraphQLResolveInfoHelpers(gather=gather, track=track)


def _reader(field_def: Any) -> Callable[[Any], Any] | None:
    """How to read a plain field from its parent: the attribute, or a synchronous resolver
    that takes only `self`; None when the field needs graphql-core's machinery."""
    field = (field_def.extensions or {}).get("strawberry-definition")
    if field is None or field.extensions:
        return None
    resolve = field_def.resolve
    if getattr(resolve, "_is_default", False):  # Strawberry's attribute fast path
        default, attribute = field.default_resolver, field.python_name
        return lambda source: default(source, attribute)
    if any(arg.default_value is not None for arg in field_def.args.values()):
        return None  # only arguments left out, each null by default (see _defaults_none)
    resolver = field.base_resolver
    if (resolver is None or field.is_async or not _defaults_none(resolver)
            or resolver.info_parameter is not None or resolver.root_parameter is not None
            or resolver.parent_parameter is not None
            or getattr(field, "permission_classes", None)):
        return None
    if resolver.self_parameter is None:
        return lambda source: resolver()
    return lambda source: resolver(source)


def _defaults_none(resolver: Any) -> bool:
    """True when every argument of `resolver` defaults to None (in Python, and so in the
    schema Strawberry derives): a field selected without arguments then gets exactly what
    graphql-core would pass (each argument's default, None) when called with `self` alone.
    `Patient.labResults(since:, first:)` in the legevakt query is one."""
    return all(arg.default is None for arg in resolver.arguments)


def _has_directive(node: Any) -> bool:
    """True when `node` or anything below it is a directive (or carries one)."""
    if isinstance(node, DirectiveNode):
        return True
    if isinstance(node, Node):
        return any(_has_directive(getattr(node, key, None)) for key in node.keys
                   if key != "loc")
    if isinstance(node, tuple | list):
        return any(_has_directive(item) for item in node)
    return False
