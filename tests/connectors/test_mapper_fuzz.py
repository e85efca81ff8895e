"""Every connector, fed mutated versions of the sandbox's real answers, either returns a valid
result or raises UpstreamInvalidError: never a TypeError, never UNAVAILABLE for a body it got.

The sandbox's answers for every scenario patient are recorded once per connector (as the
gateway loads it: `load_connectors`, with the boundary check). Then, for every distinct JSON
path in those answers (array indices folded) and every mutation - each wrong JSON type, the key
removed, a huge string, a huge number, deep nesting - one answer is replayed with that one
change. Cases are drawn with a fixed seed, `KILDE_TEST__FUZZ_CASES` per connector (default 300;
0 runs them all), so the suite is fast and the same on every run. A new connector gets this
suite by being enabled; a new answer shape gets it by appearing in the sandbox.
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from connectors.base import AccessBasis, FetchRequest, Requester, SourceResult
from connectors.boundary import RESULT_STATUSES, result_problem
from connectors.errors import ConnectorError, UpstreamInvalidError
from connectors.model import Status
from connectors.registry import load_connectors
from gateway.settings import BUILTIN_CONNECTORS, Settings
from sandbox.app import create_app as create_sandbox
from sandbox.world import PATIENTS

SANDBOX = "http://sandbox.test"
SEED = 20261201
CASES = int(os.environ.get("KILDE_TEST__FUZZ_CASES", "300"))
MUTATIONS: dict[str, Any] = {
    "null": None, "true": True, "false": False, "zero": 0, "negative": -1, "float": 1.5,
    "huge number": 10**30, "empty string": "", "string": "x", "huge string": "x" * 200_000,
    "list": [], "list of junk": [1, "x", None, {}], "object": {}, "object of junk": {"x": [1]},
    "deep nesting": json.loads("[" * 200 + "]" * 200),
}
DELETE = "key removed"
REQUESTER = Requester(hpr_number="565501872", role_code="LE", orgnr="910000004",
                      point_of_care="974589095", purpose_of_use="TREAT")
Key = tuple[str, str, bytes]  # method, URL, body


class Replay(httpx.AsyncBaseTransport):
    """The sandbox, recorded; one request's answer can be swapped for a mutated body."""

    def __init__(self) -> None:
        # the fakes check HelseID tokens by default; this suite is about what the mappers read
        self.sandbox = httpx.ASGITransport(create_sandbox({"KILDE_SANDBOX__REQUIRE_TOKENS": "false"}))
        self.recorded: list[tuple[Key, int, bytes]] = []
        self.swap: tuple[Key, bytes] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, str(request.url), request.content)
        if self.swap is not None and self.swap[0] == key:
            return httpx.Response(200, content=self.swap[1],
                                  headers={"content-type": "application/fhir+json"})
        response = await self.sandbox.handle_async_request(request)
        content = await response.aread()
        self.recorded.append((key, response.status_code, content))
        return httpx.Response(response.status_code, content=content, headers=response.headers)


@dataclass(frozen=True)
class Case:
    patient: str
    key: Key
    document: Any
    path: tuple[str | int, ...]
    mutation: str

    def body(self) -> bytes:
        if not self.path:
            return json.dumps(MUTATIONS[self.mutation]).encode()
        doc = copy.deepcopy(self.document)
        parent = doc
        for step in self.path[:-1]:
            parent = parent[step]
        if self.mutation == DELETE:
            del parent[self.path[-1]]
        else:
            parent[self.path[-1]] = MUTATIONS[self.mutation]
        return json.dumps(doc).encode()

    def describe(self) -> str:
        shown = "/".join("*" if isinstance(p, int) else p for p in self.path) or "(body)"
        return f"{shown} {self.mutation}"


def _paths(node: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _request(connector: Any, nin: str) -> FetchRequest:
    return FetchRequest(nin, frozenset(connector.categories), REQUESTER,
                        access_basis=AccessBasis.UNNTAK,
                        municipalities=frozenset({"0301", "4601", "5001"}), timeout=10)


async def _cases(connector: Any, replay: Replay) -> list[Case]:
    """One case per (folded path, mutation), from the first answer that has the path."""
    found: dict[tuple[Any, str], Case] = {}
    for patient in PATIENTS:
        replay.recorded.clear()
        try:
            await connector.fetch(_request(connector, patient.nin))
        except ConnectorError:
            pass  # e.g. a scenario the source refuses: its answers are still recorded
        for key, status, content in list(replay.recorded):
            if status != 200:
                continue
            try:
                document = json.loads(content)
            except ValueError:
                continue
            for path in _paths(document):
                folded = tuple("*" if isinstance(p, int) else p for p in path)
                names = [*MUTATIONS, DELETE] if path and not isinstance(path[-1], int) \
                    else list(MUTATIONS)
                for mutation in names:
                    found.setdefault((folded, mutation),
                                     Case(patient.nin, key, document, path, mutation))
    cases = sorted(found.values(), key=Case.describe)
    if CASES and len(cases) > CASES:
        cases = random.Random(SEED).sample(cases, CASES)
    return cases


@pytest.mark.parametrize("source", BUILTIN_CONNECTORS)
async def test_a_mutated_answer_is_a_valid_result_or_upstream_invalid(source: str) -> None:
    settings = Settings.from_env({"KILDE_MODE": "demo"}).with_sandbox(SANDBOX)
    replay = Replay()
    async with httpx.AsyncClient(transport=replay) as http:
        registry = load_connectors([source], settings.connectors, http)
        connector = registry.get(source).connector  # type: ignore[union-attr]
        cases = await _cases(connector, replay)
        assert len(cases) >= min(CASES or 50, 50), "the sandbox answered too little to fuzz"
        wrong: dict[str, str] = {}
        baseline = {p: await _counts(connector, p) for p in {c.patient for c in cases}}
        invalid = 0  # cases refused as a whole
        reported = 0  # cases that lost records and said so in a category's status
        for case in cases:
            replay.swap = (case.key, case.body())
            try:
                result = await connector.fetch(_request(connector, case.patient))
            except UpstreamInvalidError:
                invalid += 1
                continue
            except Exception as exc:  # the point: nothing else may escape
                wrong.setdefault(f"{type(exc).__name__}: {exc}"[:120], case.describe())
                continue
            finally:
                replay.swap = None
            problem = _invalid_result(result, connector.categories)
            if problem:
                wrong.setdefault(problem, case.describe())
                continue
            lost = _silently_lost(result, baseline[case.patient])
            if lost:
                wrong.setdefault(f"records lost without a word ({lost})", case.describe())
            elif _lost(result, baseline[case.patient]):
                reported += 1
        await registry.aclose()
    assert not wrong, f"{source}: {len(wrong)} kinds of wrong outcome, e.g. " + "; ".join(
        f"{what} <- {how}" for what, how in list(wrong.items())[:8])
    # mutations that break records were seen: refused whole, or reported where they lost records
    assert invalid + reported > 0, (f"{source}: no mutation was ever refused or reported; is the "
                                    "body read at all?")


Counts = dict[Any, int] | None  # items per category of the unmutated answer (None: refused)


async def _counts(connector: Any, patient: str) -> Counts:
    try:
        result = await connector.fetch(_request(connector, patient))
    except ConnectorError:
        return None
    return {c: len(found) for c, found in result.items.items()}


def _lost(result: SourceResult, baseline: Counts) -> list[Any]:
    """The categories with fewer items than the unmutated answer had."""
    if baseline is None:
        return []
    return [c for c, n in baseline.items() if len(result.items.get(c, ())) < n]


def _silently_lost(result: SourceResult, baseline: Counts) -> str | None:
    """A category that lost records (a mutation broke one) but reads OK or EMPTY: a record
    Kilde could not read was dropped without a word. Reported is PARTIAL, INVALID, ... (or the
    whole answer refused)."""
    quiet = [c for c in _lost(result, baseline)
             if result.status_for(c) in (Status.OK, Status.EMPTY)]
    return ", ".join(sorted(getattr(c, "value", str(c)) for c in quiet)) or None


def _invalid_result(result: Any, categories: frozenset[Any]) -> str | None:
    if not isinstance(result, SourceResult):
        return f"not a SourceResult but a {type(result).__name__}"
    if result.status not in RESULT_STATUSES:
        return f"status {result.status}"
    return result_problem(result, categories)
