"""The document bounds that keep parsing and validation cheap: what they count, and where."""

from __future__ import annotations

import pytest
from graphql import get_introspection_query, parse

from gateway.bounds import BoundError, measure, scan
from gateway.cli import EXAMPLE_QUERY
from gateway.limits import MAX_NESTING, Limiter
from gateway.settings import LimitsSettings
from schema.errors import QueryTooComplexError
from schema.query import build_schema

SCHEMA = build_schema()._schema


def _measure(query: str, **bounds: int) -> object:
    options = {"max_selections": 1000, "max_overlaps": 10_000, "max_nesting": 64, **bounds}
    return measure(parse(query), **options)


def test_scan_counts_tokens_and_the_deepest_nesting() -> None:
    assert scan('{ a(b: [[1]]) { c } }', max_tokens=100, max_nesting=10) == (15, 4)
    assert scan('{ a(b: "{{{{[[[[") }', max_tokens=100, max_nesting=2) == (8, 2)  # in a string


@pytest.mark.parametrize(("text", "limit"), [
    ("{ a " * 2000, "depth"),  # unclosed, past any parser recursion: the scan stops it
    ("{ a(b: " + "[" * 500 + " }", "depth"),
    ("{ " + "a " * 5000 + "}", "tokens"),
])
def test_scan_stops_at_the_first_token_past_a_bound(text: str, limit: str) -> None:
    with pytest.raises(BoundError) as caught:
        scan(text, max_tokens=3000, max_nesting=64)
    assert caught.value.limit == limit


def test_a_lexical_error_is_left_to_the_parser() -> None:
    assert scan('{ a(b: "unterminated', max_tokens=100, max_nesting=10) == (5, 2)


def test_overlaps_are_pairs_of_fields_under_one_response_path() -> None:
    assert _measure("{ me { kind kind kind } }").overlaps == 3  # kind: C(3, 2)
    assert _measure("{ a: me { kind } a: me { kind } }").overlaps == 2  # a, and a.kind
    assert _measure("{ me { kind name } sources { name } }").overlaps == 0


def test_fragments_count_where_they_are_spread_and_once_per_selection_set() -> None:
    query = "{ me { kind ...F ...F } } fragment F on Principal { kind name }"
    assert _measure(query).overlaps == 1  # kind twice; F spread twice counts once
    query = "{ a: me { ...F } b: me { ...F } } fragment F on Principal { kind }"
    assert _measure(query).overlaps == 0  # different paths are never compared
    size = _measure("{ me { ...A ...B } } fragment A on Principal { kind } "
                    "fragment B on Principal { kind }")
    assert (size.selections, size.overlaps) == (5, 1)


def test_a_same_named_tree_is_counted_by_paths_not_by_levels() -> None:
    tree = "a { b } a { b }"  # 2 fields at every path; 4 levels on: 32 at the deepest
    for _ in range(4):
        tree = f"a {{ {tree} }} a {{ {tree} }}"
    with pytest.raises(BoundError) as caught:
        _measure("{ " + tree + " }", max_overlaps=300)
    assert caught.value.limit == "overlaps"


@pytest.mark.parametrize(("query", "limit"), [
    ("{ me { " + "kind " * 201 + "} }", "selections"),
    ("{ me { " + "kind " * 30 + "} }", "overlaps"),
    (" ".join(f"query Q{i} {{ me {{ kind }} }}" for i in range(11)), "operations"),
    ("{ me { kind } } " + " ".join(f"fragment F{i} on Query {{ me {{ kind }} }}"
                                   for i in range(21)), "fragments"),
    ("query(" + " ".join(f"$v{i}: Int" for i in range(31)) + ") { me { kind } }", "variables"),
    ("{ me { kind" + " @skip(if: false)" * 31 + " } }", "directives"),
    ('{ patient(' + ", ".join(['nin: "x"'] * 51) + ") { nin } }", "arguments"),
    ("{ ...F0 } " + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(19))
     + " fragment F19 on Query { " + "... on Query { " * 60 + "me { kind }" + " }" * 60
     + " }", "depth"),
])
def test_each_document_bound_refuses_and_names_itself(query: str, limit: str) -> None:
    limiter = Limiter(LimitsSettings())
    with pytest.raises(QueryTooComplexError) as caught:
        limiter.check(limiter.parse(query), SCHEMA)
    assert caught.value.extensions["limit"] == limit


def test_the_real_queries_are_far_inside_the_bounds() -> None:
    for query in (EXAMPLE_QUERY, get_introspection_query(descriptions=True)):
        size = _measure(query)
        assert size.selections < 100
        assert size.overlaps == 0


def test_standard_introspection_is_admitted_and_deeper_introspection_is_not() -> None:
    limiter = Limiter(LimitsSettings(), introspection=True)
    limiter.check(limiter.parse(get_introspection_query(descriptions=True)), SCHEMA)
    deep = '{ __type(name: "Query") { ' + "ofType { " * 16 + "name" + " }" * 16 + " } }"
    with pytest.raises(QueryTooComplexError) as caught:
        limiter.check(limiter.parse(deep), SCHEMA)
    assert caught.value.extensions["limit"] == "depth"
    many = "{ " + " ".join(f"s{i}: __schema {{ queryType {{ name }} }}" for i in range(4)) + " }"
    with pytest.raises(QueryTooComplexError) as caught:
        limiter.check(limiter.parse(many), SCHEMA)
    assert caught.value.extensions["limit"] == "introspection"


def test_nesting_past_the_parser_is_refused_before_it_parses() -> None:
    limiter = Limiter(LimitsSettings())
    text = "{ me " + "{ kind " * (MAX_NESTING + 1) + "}" * (MAX_NESTING + 1) + " }"
    with pytest.raises(QueryTooComplexError) as caught:
        limiter.parse(text)
    assert caught.value.extensions["limit"] == "depth"
