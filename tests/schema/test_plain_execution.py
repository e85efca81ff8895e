"""Plain-data completion (schema/execution.py) gives graphql-core's answer, errors included.

Each case runs the same operation twice, once with `PlainDataExecutor` and once with
Strawberry's own execution context, and compares data and errors (message, path) exactly:
nulls in non-null fields at every depth, exceptions as values, resolvers that raise,
coercions that fail, enums, scalars, aliases, fragments, `__typename`, `@skip`/`@include`,
and an extension that wraps every resolver (nothing may bypass it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import gc
import weakref
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.execution import PlainDataExecutor


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class _Text(str):
    """A str subclass: not the exact type the generated plans keep as is."""


@dataclasses.dataclass
class Leaf:
    name: Any
    colour: Any = Colour.RED
    at: Any = None
    count: Any = 1
    flag: Any = True


@dataclasses.dataclass
class Node:
    title: Any
    leaves: Any
    best: Any = None
    tags: Any = ()
    colours: Any = ()


@strawberry.type
class LeafType:
    name: str
    colour: Colour
    at: datetime | None
    count: int
    flag: bool

    @strawberry.field
    def shout(self) -> str:
        if self.name == "boom":
            raise ValueError("resolver failed")
        return str(self.name).upper()


@strawberry.type
class NodeType:
    title: str | None
    leaves: list[LeafType]
    best: LeafType | None
    tags: list[str | None]
    colours: list[Colour]


AT = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
CASES: dict[str, list[Any]] = {
    "clean": [Node("a", [Leaf("x", at=AT), Leaf("y", Colour.BLUE)], Leaf("z"), ("t", None))],
    "null in a non-null leaf": [Node("a", [Leaf("x"), Leaf(None)])],
    "null in a non-null list": [Node("a", None)],
    "null title (nullable)": [Node(None, [Leaf("x")])],
    "an exception as a value": [Node("a", [Leaf(ValueError("as value"))])],
    "a resolver that raises": [Node("a", [Leaf("boom")])],
    "a coercion that fails": [Node("a", [Leaf("x", count="many")])],
    "a bad enum value": [Node("a", [Leaf("x", colour="green")])],
    "not a list": [Node("a", Leaf("x"))],
    "a tuple is a list": [Node("a", (Leaf("x"), Leaf("y")))],
    "null in a nullable item list": [Node("a", [Leaf("x")], None, (None, "u"))],
    "several nodes, one bad": [Node("a", [Leaf("x")]), Node("b", [Leaf(None)]), Node("c", [])],
    # the generated plans keep an exact str (String) or bool (Boolean) as is; anything else
    # goes through the coercion, as graphql-core's completion does
    "a String given an int, a bool, a str subclass": [
        Node(_Text("t"), [Leaf(7), Leaf(True), Leaf(_Text("s"))], Leaf(2.5), (3, _Text("u")))],
    "a Boolean given an int": [Node("a", [Leaf("x", flag=0), Leaf("y", flag=1)])],
    "null in a non-null Boolean": [Node("a", [Leaf("x", flag=None)])],
    "a Boolean given a str": [Node("a", [Leaf("x", flag="yes")])],
    "an exception as a nested object": [Node("a", [], ValueError("as value"))],
    "a list of enums": [Node("a", [], colours=[Colour.BLUE, Colour.RED])],
    "a bad value in a list of enums": [Node("a", [], colours=[Colour.BLUE, "red"])],
    "null in a list of non-null enums": [Node("a", [], colours=[None])],
    "a str where a list of leaves is due": [Node("a", [], tags="abc")],
    "null in a non-null list of objects": [Node("a", [Leaf("x"), None])],
}
CURRENT: list[Any] = []


@strawberry.type
class Query:
    @strawberry.field
    async def nodes(self) -> list[NodeType]:
        return CURRENT  # type: ignore[return-value]

    @strawberry.field
    def sync_nodes(self) -> list[NodeType | None]:
        return CURRENT  # type: ignore[return-value]


QUERY = """query($yes: Boolean!) {
  nodes { __typename title tags colours leaves { name colour at count flag shout ...L } best { n: name } }
  syncNodes { title alias: leaves { name @skip(if: $yes) count @include(if: $yes) } }
}
fragment L on LeafType { again: name __typename }"""


def _run(executor: type, extensions: list[Any], case: str) -> tuple[Any, list[Any]]:
    CURRENT[:] = CASES[case]
    schema = strawberry.Schema(query=Query, execution_context_class=executor,
                               extensions=extensions)
    result = asyncio.run(schema.execute(QUERY, variable_values={"yes": True}))
    errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or [])
    return result.data, errors


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_answer_and_its_errors_are_graphql_cores(case: str) -> None:
    assert _run(PlainDataExecutor, [], case) == _run(StrawberryGraphQLCoreExecutionContext, [],
                                                     case)


class _Upper(SchemaExtension):
    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        value = _next(root, info, *args, **kwargs)
        return value.upper() if isinstance(value, str) else value


@pytest.mark.parametrize("case", ["clean", "null in a non-null leaf"])
def test_an_extension_that_wraps_every_resolver_still_sees_every_field(case: str) -> None:
    data, errors = _run(PlainDataExecutor, [_Upper], case)
    assert (data, errors) == _run(StrawberryGraphQLCoreExecutionContext, [_Upper], case)
    if case == "clean":
        assert data["nodes"][0]["leaves"][0]["name"] == "X"  # the extension ran on the leaf


PLAIN_QUERY = """{
  nodes { __typename title tags colours leaves { name colour at count flag shout ...L } best { n: name } }
  syncNodes { title alias: leaves { name count } }
}
fragment L on LeafType { again: name __typename }"""


def _schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    """A PlainDataExecutor schema and Strawberry's, each parsing a text once (as Kilde's)."""
    return tuple(strawberry.Schema(query=Query, execution_context_class=executor,  # type: ignore[return-value]
                                   extensions=[lambda: ParserCache(maxsize=8)])
                 for executor in (PlainDataExecutor, StrawberryGraphQLCoreExecutionContext))


def _answer(schema: strawberry.Schema, query: str, case: str,
            variables: dict[str, Any] | None = None) -> tuple[Any, list[Any]]:
    CURRENT[:] = CASES[case]
    result = asyncio.run(schema.execute(query, variable_values=variables))
    return result.data, sorted((e.message, tuple(e.path or ())) for e in result.errors or [])


def test_plans_are_compiled_once_per_document_and_serve_every_later_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    plain, core = _schemas()
    compiled: list[str] = []
    compile_object = PlainDataExecutor._compile_object

    def counting(self: PlainDataExecutor, return_type: Any, details: Any) -> Any:
        compiled.append(return_type.name)
        return compile_object(self, return_type, details)

    monkeypatch.setattr(PlainDataExecutor, "_compile_object", counting)
    order = ["clean", "null in a non-null leaf", "a coercion that fails", "several nodes, one bad",
             "clean", "not a list", "clean"]
    for i, case in enumerate(order):
        assert _answer(plain, PLAIN_QUERY, case) == _answer(core, PLAIN_QUERY, case), case
        if i == 0:
            first = len(compiled)
            assert first > 0
    assert len(compiled) == first  # every later request reused the first one's plans


def test_a_directive_on_a_variable_keeps_its_plans_to_each_request() -> None:
    plain, core = _schemas()
    for yes in (True, False, True, False):
        variables = {"yes": yes}
        got = _answer(plain, QUERY, "clean", variables)
        assert got == _answer(core, QUERY, "clean", variables)
        leaf = got[0]["syncNodes"][0]["alias"][0]
        assert ("count" in leaf, "name" in leaf) == (yes, not yes)


class _Watched:
    """A context value whose end the test can see (a weak reference to it)."""


def test_an_execution_leaves_no_cycle_that_holds_its_context() -> None:
    """The request's context (and through it the whole answer) is freed by reference count
    when the execution ends, not left for the cyclic collector: graphql-core's resolver
    helpers were bound methods of the executor, a cycle that held it (bench.cpu: ~12,000
    objects and a 30-50 ms pause per young collection on the cold path)."""
    CURRENT[:] = CASES["clean"]
    plain, _ = _schemas()

    async def run() -> weakref.ref[_Watched]:
        watched = _Watched()
        result = await plain.execute(PLAIN_QUERY, context_value=watched)
        assert not result.errors
        return weakref.ref(watched)

    asyncio.run(run())  # the parser cache and the shared plans filled once
    gc.collect()
    gc.disable()
    try:
        ref = asyncio.run(run())
        assert ref() is None
    finally:
        gc.enable()


def test_the_shared_plans_belong_to_their_schema_not_to_the_module() -> None:
    """Two schemas keep their own plans (STYLE: no module globals where the schema can hold
    the state); dropping a schema drops its plans."""
    from schema.execution import SharedPlans

    first, _ = _schemas()
    second, _ = _schemas()
    _answer(first, PLAIN_QUERY, "clean")
    kept = SharedPlans.of(first._schema)
    assert kept.plans and kept.directive_free
    assert not SharedPlans.of(second._schema).plans
    _answer(second, PLAIN_QUERY, "clean")
    assert SharedPlans.of(second._schema) is not kept and SharedPlans.of(second._schema).plans
    ref = weakref.ref(kept)
    del first, kept
    gc.collect()
    assert ref() is None


@strawberry.type
class Shelf:
    @strawberry.field
    def books(self, first: int | None = None) -> list[str]:
        return ["a", "b", "c"][:first]

    @strawberry.field
    def titled(self, word: str = "x") -> str:
        return word


@strawberry.type
class ShelfQuery:
    @strawberry.field
    def shelf(self) -> Shelf:
        return Shelf()


@pytest.mark.parametrize(("query", "planned"), [
    ("{ shelf { books } }", True),  # left out, null by default: what graphql-core passes
    ("{ shelf { books(first: 1) } }", False),
    ("{ shelf { titled } }", False),  # a default other than null: graphql-core's way
])
def test_a_field_whose_arguments_are_left_out_and_null_by_default_is_plain(
        monkeypatch: pytest.MonkeyPatch, query: str, planned: bool) -> None:
    fields: list[str] = []
    execute_field = StrawberryGraphQLCoreExecutionContext.execute_field

    def counting(self: Any, parent_type: Any, source: Any, details: Any, path: Any,
                 *args: Any) -> Any:
        fields.append(details[0].node.name.value)
        return execute_field(self, parent_type, source, details, path, *args)

    answers = []
    for executor in (PlainDataExecutor, StrawberryGraphQLCoreExecutionContext):
        schema = strawberry.Schema(query=ShelfQuery, execution_context_class=executor)
        result = asyncio.run(schema.execute(query))
        assert result.errors is None
        answers.append(result.data)
    assert answers[0] == answers[1]
    monkeypatch.setattr(PlainDataExecutor, "execute_field", counting)
    schema = strawberry.Schema(query=ShelfQuery, execution_context_class=PlainDataExecutor)
    asyncio.run(schema.execute(query))
    assert fields == (["shelf"] if planned else ["shelf", fields[-1]])
