"""Bad input gets the right answer over HTTP, before anything runs: malformed requests are 4xx
JSON GraphQL errors with a request id and the security headers; hostile text, wrongly typed
variables, bad dates and cursors are BAD_USER_INPUT; every kind of "too deep" and "too big"
is QUERY_TOO_COMPLEX. None reaches an upstream, none is an INTERNAL_SERVER_ERROR, and none
writes an ERROR line to the log."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.gateway.inprocess import LEGEVAKT_PATIENT, Harness, gateway

NIN = LEGEVAKT_PATIENT
GRAPHQL_JSON = "application/graphql-response+json"
PATIENT = "query($n: String!, $why: String) { patient(nin: $n, emergencyReason: $why) { nin } }"
LOG = "query($n: String!, $f: DateTime, $t: DateTime, $a: String) { accessLog(nin: $n, from: $f, " \
      "to: $t, after: $a) { totalCount } }"
LAB = "query($n: String!, $s: Date) { patient(nin: $n) { labResults(since: $s) { id } } }"


@pytest.fixture
async def kilde(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Harness]:
    caplog.set_level(logging.INFO)
    async with gateway() as harness:
        yield harness
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"a client's mistake was logged as an error: {errors[0].getMessage()}"


def assert_refused(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(("application/json", GRAPHQL_JSON))
    body = r.json()
    assert body["errors"][0]["extensions"]["code"] == code, body
    uuid.UUID(r.headers["x-request-id"])
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert NIN not in r.text.replace(f'"{NIN}"', "")  # never echoed in a message
    return body


@pytest.mark.parametrize("body", [
    {"query": "{ me { kind } }", "operationName": {"obj": "ect"}},
    {"query": "{ me { kind } }", "operationName": 0},
    {"query": "{ me { kind } }", "operationName": False},
    {"query": "{ me { kind } }", "operationName": ["Q"]},
    {"query": "{ me { kind } }", "variables": "string"},
    {"query": "{ me { kind } }", "variables": 0},
    {"query": "{ me { kind } }", "variables": False},
    {"query": "{ me { kind } }", "variables": ["array"]},
    {"query": "{ me { kind } }", "extensions": "string"},
    {"query": "{ me { kind } }", "extensions": 0},
    {"query": "{ me { kind } }", "extensions": False},
    {"query": "{ me { kind } }", "extensions": ["array"]},
    {"query": {"obj": "ect"}},
    {"query": 0},
    {"query": ["{ me { kind } }"]},
    {"qeury": "{ me { kind } }"},
    [{"query": "{ me { kind } }"}],
    "{ me { kind } }",
])
async def test_a_parameter_of_the_wrong_type_is_a_400_json_error(kilde: Harness,
                                                                   body: Any) -> None:
    for accept in ("application/json", GRAPHQL_JSON):
        r = await kilde.post(body, headers={"accept": accept})
        assert_refused(r, 400, "BAD_USER_INPUT")
    assert await kilde.upstream_calls() == 0


@pytest.mark.parametrize("params", [
    {"query": "{ me { kind } }", "variables": "[1]"},
    {"query": "{ me { kind } }", "variables": "0"},
    {"query": "{ me { kind } }", "variables": "not json"},
    {"query": "{ me { kind } }", "extensions": '"string"'},
    {"query": "{ me { kind } }", "extensions": "{"},
    {"query": "{ me { kind } }", "operationName": "A", "variables": "true"},
])
async def test_get_parameters_are_checked_the_same_way(kilde: Harness,
                                                       params: dict[str, str]) -> None:
    assert_refused(await kilde.get(params), 400, "BAD_USER_INPUT")


async def test_a_get_parameter_given_twice_is_ambiguous(kilde: Harness) -> None:
    r = await kilde.client.get("/graphql?query=%7Bme%7Bkind%7D%7D&query=%7Bme%7Bname%7D%7D",
                               headers=kilde.auth())
    assert_refused(r, 400, "BAD_USER_INPUT")


@pytest.mark.parametrize(("content", "content_type", "status"), [
    (b"\xff\xfe{}", "application/json", 400),  # not UTF-8
    (b'{"query": "{ me { kind } }", "x": "\\ud800"}', "application/json", 400),  # lone surrogate
    (b'{"query": "{ me', "application/json", 400),
    (b"", "application/json", 400),
    (b"\xff{ me { kind } }", "application/graphql", 400),
    (b'{"query": "{ me { kind } }"}', "", 415),
    (b'{"query": "{ me { kind } }"}', "text/plain", 415),
    (b'{"query": "{ me { kind } }"}', "application/json; charset=latin-1", 415),
])
async def test_a_body_that_is_not_one_utf8_json_object_is_refused(
        kilde: Harness, content: bytes, content_type: str, status: int) -> None:
    headers = {**kilde.auth(), **({"content-type": content_type} if content_type else {})}
    r = await kilde.client.post("/graphql", content=content, headers=headers)
    assert_refused(r, status, "BAD_USER_INPUT")


async def test_other_methods_get_a_json_405_with_allow(kilde: Harness) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        r = await kilde.client.request(method, "/graphql", json={"query": "{ me { kind } }"},
                                       headers=kilde.auth())
        assert_refused(r, 405, "BAD_USER_INPUT")
        assert r.headers["allow"] == "GET, POST"


async def test_the_utf8_charset_is_accepted(kilde: Harness) -> None:
    r = await kilde.client.post("/graphql", content=b'{"query": "{ me { kind } }"}', headers={
        **kilde.auth(), "content-type": "application/json; charset=UTF-8"})
    assert r.json()["data"]["me"]["kind"] == "CLINICIAN"


@pytest.mark.parametrize("reason", [
    "nul\x00", "esc \x1b[2J", "bell\x07", "c1 \x85", "del \x7f", "\ufffe", "x" * 501,
    "  " + "y" * 501,
])
async def test_hostile_or_long_free_text_is_bad_user_input_and_reaches_no_upstream(
        kilde: Harness, reason: str) -> None:
    for accept, status in (("application/json", 200), (GRAPHQL_JSON, 400)):
        r = await kilde.post({"query": PATIENT, "variables": {"n": NIN, "why": reason}},
                             headers={"accept": accept})
        body = assert_refused(r, status, "BAD_USER_INPUT")
        assert "data" not in body or body["data"] is None
    assert await kilde.upstream_calls() == 0


@pytest.mark.parametrize("literal", ['"nul\\u0000"', '"lone \\ud800"', '"esc \\u001b"',
                                     '"""block\u0007"""'])
async def test_a_hostile_string_literal_in_the_query_is_refused_too(kilde: Harness,
                                                                      literal: str) -> None:
    query = f'{{ patient(nin: "{NIN}", emergencyReason: {literal}) {{ nin }} }}'
    assert_refused(await kilde.post({"query": query}), 200, "BAD_USER_INPUT")
    assert await kilde.upstream_calls() == 0


async def test_any_other_string_argument_gets_the_same_rule(kilde: Harness) -> None:
    token = kilde.token("personvernombud", None)
    for value in (f"{NIN}\x00", "x" * 10_001):
        r = await kilde.post({"query": LOG, "variables": {"n": NIN, "a": value}},
                             headers={"authorization": f"Bearer {token}"})
        assert_refused(r, 200, "BAD_USER_INPUT")


async def test_line_breaks_and_tabs_in_a_reason_are_fine(kilde: Harness) -> None:
    r = await kilde.post({"query": PATIENT, "variables": {
        "n": NIN, "why": "Bevisstløs ved ankomst.\r\n\tPårørende ikke tilgjengelig."}})
    assert r.json()["data"]["patient"]["nin"] == NIN


@pytest.mark.parametrize("variables", [
    {"n": {"nin": NIN}}, {"n": 14033841389}, {"n": True}, {"n": [NIN]}, {"n": None}, {},
    {"n": NIN, "why": 5}, {"n": NIN, "why": {"a": 1}},
])
async def test_a_wrongly_typed_variable_is_bad_user_input_without_the_value(
        kilde: Harness, variables: dict[str, Any]) -> None:
    body = assert_refused(await kilde.post({"query": PATIENT, "variables": variables}), 200,
                          "BAD_USER_INPUT")
    assert "14033841389" not in body["errors"][0]["message"]


@pytest.mark.parametrize("variables", [
    {"f": "2026-01-31T08:00:00"},  # naive: which time zone?
    {"t": "2026-01-31T08:00:00"},
    {"f": "garbage"}, {"f": "2026-13-01T00:00:00Z"}, {"f": 1700000000}, {"f": True},
    {"f": "0001-01-01T00:00:00+14:00"},
    {"a": "not-a-cursor"}, {"a": "!!!"}, {"a": "x" * 5000},
    {"a": base64.urlsafe_b64encode(b"a1:99999999999999999999999999:1").decode()},
    {"a": base64.urlsafe_b64encode(b"a1:-5:1").decode()},
    {"a": base64.urlsafe_b64encode(b"a1:1:2:3").decode()},
])
async def test_bad_dates_and_cursors_on_the_access_log_are_bad_user_input(
        kilde: Harness, variables: dict[str, Any]) -> None:
    token = kilde.token("personvernombud", None)
    r = await kilde.post({"query": LOG, "variables": {"n": NIN, **variables}},
                         headers={"authorization": f"Bearer {token}"})
    assert_refused(r, 200, "BAD_USER_INPUT")


async def test_an_aware_datetime_and_an_issued_cursor_work(kilde: Harness) -> None:
    token = kilde.token("personvernombud", None)
    r = await kilde.post({"query": LOG, "variables": {
        "n": NIN, "f": "2020-01-31T08:00:00+01:00", "t": "2099-01-01T00:00:00Z"}},
        headers={"authorization": f"Bearer {token}"})
    assert r.json()["data"]["accessLog"]["totalCount"] >= 0, r.text


@pytest.mark.parametrize("since", ["2026-02-30", "yesterday", "2026-01-31T00:00:00", 20260131])
async def test_a_bad_lab_results_since_date_is_bad_user_input(kilde: Harness,
                                                               since: Any) -> None:
    r = await kilde.post({"query": LAB, "variables": {"n": NIN, "s": since}})
    assert_refused(r, 200, "BAD_USER_INPUT")
    assert await kilde.upstream_calls() == 0


def _deep_fragments(n: int) -> str:
    frags = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(n))
    return f"{{ ...F0 }} {frags} fragment F{n} on Query {{ me {{ kind }} }}"


@pytest.mark.parametrize(("query", "limit"), [
    ("{ me " + "{ kind " * 1400 + "}" * 1400 + " }", "depth"),  # past the parser's recursion
    ('{ usage(from: ' + "[" * 1400 + '"x"' + "]" * 1400 + ") { day } }", "depth"),
    ("{ " + "... on Query { " * 100 + "me { kind }" + " }" * 100 + " }", "depth"),
    (_deep_fragments(19), None),  # 20 fragments in a chain: allowed, and measured
    ('{ __type(name: "Query") { ' + "ofType { " * 30 + "name" + " }" * 30 + " } }", "depth"),
    ("{ __schema { types { fields { type { " + "ofType { " * 14 + "name" + " }" * 14 +
     " } } } } }", "depth"),
    ("{ me { " + "kind " * 700 + "} }", None),  # the ~700 duplicate fields of the attack run
    ("{ " + " ".join(f"a{i}: me {{ kind }}" for i in range(30)) + " " + "me { kind } " * 100
     + "}", None),
    ("query(" + " ".join(f"$v{i}: String" for i in range(100)) + ") { me { kind } }",
     "variables"),
    ("{ me { kind " + "@include(if: true) " * 100 + "} }", "directives"),
    (" ".join(f"query Q{i} {{ me {{ kind }} }}" for i in range(30)), "operations"),
])
async def test_every_kind_of_too_deep_or_too_big_is_query_too_complex(
        kilde: Harness, query: str, limit: str | None) -> None:
    body: dict[str, Any] = {"query": query}
    if query.startswith("query Q0"):
        body["operationName"] = "Q0"
    r = await kilde.post(body, headers={"accept": GRAPHQL_JSON})
    if limit is None and r.status_code == 200:  # admitted: then it must be cheap and correct
        assert "errors" not in r.json() or r.json()["errors"][0]["extensions"]["code"] != (
            "INTERNAL_SERVER_ERROR")
        return
    body = assert_refused(r, 400, "QUERY_TOO_COMPLEX")
    if limit is not None:
        assert body["errors"][0]["extensions"]["limit"] == limit
    assert await kilde.upstream_calls() == 0
