"""The patient pipeline's stages as values: plan -> fetch -> judge -> ledger, without HTTP.

Each stage is checked on its own output; the gateway's side (it reads only the ledger) is
checked by import: nothing under gateway/ imports a stage other than the ledger.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import weakref
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from connectors import (
    Category,
    ConnectorSettings,
    FetchRequest,
    PrivacyState,
    SourceResult,
    Status,
    UpstreamTimeoutError,
)
from connectors.fanout import Outcome
from connectors.registry import Registered, Registry
from schema.context import Context, Services
from schema.pipeline.fetch import Fetches
from schema.pipeline.judge import judge
from schema.pipeline.plan import plan_patient
from schema.pipeline.request import PatientRequest
from tests.policies.people import HLR_PATIENT, RULES_NO_AGREEMENTS, clinician

TL, CI, LAB = (Category.TREATMENT_LIMITATIONS, Category.CRITICAL_INFORMATION,
               Category.LAB_RESULTS)
ROOT = Path(__file__).resolve().parents[2]


class Source:
    """A connector answering `result`, after `delay` seconds; remembers what it was asked."""

    def __init__(self, name: str, categories: Iterable[Category], result: Any = None,
                 delay: float = 0.0) -> None:
        self.name = name
        self.categories = frozenset(categories)
        self.result = result
        self.delay = delay
        self.asked: list[FetchRequest] = []
        self.cancelled = asyncio.Event()

    async def fetch(self, request: FetchRequest) -> SourceResult:
        self.asked.append(request)
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return self.result or SourceResult.empty(self.name, request.categories)

    async def aclose(self) -> None: ...


def services(*sources: Source, stores: dict[str, dict[str, str]] | None = None,
             timeout: float = 2.0) -> Services:
    entries = [Registered(s, ConnectorSettings(s.name, timeout=timeout,
                                               stores=(stores or {}).get(s.name, {})))
               for s in sources]
    return Services(registry=Registry(entries), rules=RULES_NO_AGREEMENTS,
                    tenants=("0301", "4601"), access_log=None)  # type: ignore[arg-type]


def test_the_plan_never_fetches_a_denied_category_and_says_so_per_source() -> None:
    hf = clinician(profession="HF")  # a helsefagarbeider may not see lab results
    plan = plan_patient(hf, HLR_PATIENT, frozenset({TL, LAB}),
                        services=services(Source("kj", {TL}), Source("pps", {LAB})))
    assert set(plan.denied) == {LAB}
    assert list(plan.fetches) == ["kj"]
    assert [(r.source, r.category, r.status, r.detail) for r in plan.not_asked] == [
        ("pps", LAB, Status.DENIED, "PROFESSION_NOT_PERMITTED")]


def test_the_plan_asks_a_store_source_only_for_the_stores_the_caller_may_see() -> None:
    plan = plan_patient(clinician(), HLR_PATIENT, frozenset({TL}), services=services(
        Source("municipal", {TL}), stores={"municipal": {"0301": "x", "4601": "y"}}))
    assert plan.fetches["municipal"].request.municipalities == {"0301"}
    bergen = plan_patient(clinician(municipality="5001"), HLR_PATIENT, frozenset({TL}),
                          services=services(Source("municipal", {TL}),
                                            stores={"municipal": {"0301": "x"}}))
    assert bergen.fetches == {}
    assert [r.status for r in bergen.not_asked] == [Status.DENIED]


async def test_the_fetch_stage_cuts_every_timeout_to_what_is_left_of_the_deadline() -> None:
    slow, quick = Source("slow", {TL}), Source("quick", {CI})
    plan = plan_patient(clinician(), HLR_PATIENT, frozenset({TL, CI}),
                        services=services(slow, quick, timeout=5.0))
    fetches = Fetches.start(plan, remaining=0.25)
    await asyncio.gather(fetches.outcome("slow"), fetches.outcome("quick"))
    assert [r.timeout for r in slow.asked + quick.asked] == [0.25, 0.25]
    assert {r.source: r.code for r in fetches.records()} == {"slow": "OK", "quick": "OK"}


async def test_a_source_past_the_deadline_is_a_timeout_outcome_not_an_exception() -> None:
    plan = plan_patient(clinician(), HLR_PATIENT, frozenset({TL}),
                        services=services(Source("kj", {TL}, delay=5.0)))
    fetches = Fetches.start(plan, remaining=0.05)
    outcome = await fetches.outcome("kj")
    assert isinstance(outcome.error, UpstreamTimeoutError)
    assert judge(outcome, plan, rules=RULES_NO_AGREEMENTS).status == {TL: Status.TIMEOUT}


def test_judging_a_blocked_answer_withholds_every_item() -> None:
    plan = plan_patient(clinician(), HLR_PATIENT, frozenset({TL}),
                        services=services(Source("kj", {TL})))
    blocked = SourceResult.of("kj", {TL: ()}, privacy=PrivacyState(blocked_requester=True))
    judgement = judge(Outcome("kj", blocked, None, 1.0), plan, rules=RULES_NO_AGREEMENTS)
    assert (judgement.status, judgement.items, judgement.detail) == (
        {TL: Status.BLOCKED}, {TL: ()}, "PATIENT_BLOCKED_REQUESTER")


async def test_the_ledger_holds_what_the_fields_handed_over_and_how_each_fetch_went() -> None:
    ctx = Context(services=services(Source("kj", {TL, CI}), Source("pps", {LAB})),
                  principal=clinician(profession="HF"), request_id="r1")
    patient = PatientRequest.start(ctx, HLR_PATIENT, frozenset({TL, LAB}),
                                   reason="CARE_RELATIONSHIP")
    ctx.patients.append(patient)
    assert await patient.items(TL) == []
    assert await patient.items(LAB) == []
    ledger = ctx.finish()
    [one] = ledger.patients
    assert [(d.category, d.source, d.status, d.count) for d in one.deliveries] == [
        (LAB, "pps", Status.DENIED, 0), (TL, "kj", Status.EMPTY, 0)]
    assert [(f.source, f.code, f.from_cache) for f in one.fetches] == [("kj", "OK", False)]
    assert (ledger.principal, ledger.request_id, one.reason) == (
        ctx.principal, "r1", "CARE_RELATIONSHIP")
    assert [e["extensions"]["code"] for e in ctx.errors] == ["FORBIDDEN"]
    # ended once: run_operation's summary is the ledger the audit extension wrote
    assert ctx.finish() is ledger


async def test_finishing_the_request_stops_the_fetches_nobody_awaited() -> None:
    hanging = Source("kj", {TL}, delay=30)
    ctx = Context(services=services(hanging), principal=clinician(), request_id="r2")
    ctx.patients.append(PatientRequest.start(ctx, HLR_PATIENT, frozenset({TL})))
    await asyncio.sleep(0)  # the fetch task starts and waits on its upstream
    ledger = ctx.finish()
    assert ledger.patients[0].fetches == ()
    await asyncio.wait_for(hanging.cancelled.wait(), timeout=5)


@pytest.mark.parametrize("everywhere", [True, False])
async def test_a_block_reported_by_one_source_withholds_every_source(everywhere: bool) -> None:
    blocked = SourceResult.of("kj", {TL: ()}, privacy=PrivacyState(blocked_requester=True))
    kj, pps = Source("kj", {TL}, blocked), Source("pps", {LAB})
    item = SimpleNamespace(provenance=SimpleNamespace(municipality=None), security=())
    pps.result = SourceResult.of("pps", {LAB: (item,)})
    rules = replace(RULES_NO_AGREEMENTS, block_everywhere=everywhere,
                    block_sources=frozenset({"kj"}))
    ctx = Context(services=replace(services(kj, pps), rules=rules), principal=clinician(),
                  request_id="r3")
    patient = PatientRequest.start(ctx, HLR_PATIENT, frozenset({LAB}))
    ctx.patients.append(patient)
    found = await patient.items(LAB)
    # asked for its blocks though LAB is all we want, when blocks hold everywhere
    assert [r.privacy_probe for r in kj.asked] == ([True] if everywhere else [])
    rows = {(r.source, r.status, r.reason) for r in await patient.statuses()}
    ledger = ctx.finish().patients[0]
    if everywhere:
        assert found == []
        assert rows == {("pps", Status.BLOCKED, "PATIENT_BLOCKED_REQUESTER")}
        assert ledger.blocked_by == "kj"
    else:
        assert found == [item]
        assert rows == {("pps", Status.OK, None)}
        assert ledger.blocked_by is None
    assert not any(e["extensions"].get("source") == "kj" for e in ctx.errors)


@pytest.mark.parametrize("module", sorted(str(p.relative_to(ROOT))
                                          for p in (ROOT / "gateway").rglob("*.py")))
def test_the_gateway_reads_no_stage_but_the_ledger(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    stages = {name for name in imported
              if name.startswith(("schema.pipeline", "schema.shape", "schema.view"))}
    # the ledger is what the gateway reads; the terminology is data it loads once at start
    assert stages <= {"schema.pipeline.ledger", "schema.shape.terminology"}, (
        f"{module} imports {sorted(stages)}")


async def test_a_finished_request_is_freed_without_the_cyclic_collector() -> None:
    """The Context holds its patients; a patient holding the Context back was a cycle that
    left every request's answer (items, judgements, rows) to the cyclic collector."""
    ctx = Context(services=services(Source("kj", {TL, CI})), principal=clinician(),
                  request_id="r3")
    ctx.patients.append(PatientRequest.start(ctx, HLR_PATIENT, frozenset({TL})))
    assert await ctx.patients[0].items(TL) == []
    ctx.finish()
    ref = weakref.ref(ctx)
    gc.collect()
    gc.disable()
    try:
        del ctx
        assert ref() is None
    finally:
        gc.enable()


async def test_the_patient_fields_read_settled_fetches_without_a_task_each() -> None:
    """The answer is one document: the `patient` resolver awaits every fetch once, and the
    `Patient` fields read their items synchronously; graphql-core then makes no task, gather
    or completion callback per field. The only tasks of the request are the fetches."""
    from schema.query import build_schema

    kj, pps = Source("kj", {TL, CI}, delay=0.01), Source("pps", {LAB})
    attested = clinician(attested_at=datetime.now(UTC) - timedelta(minutes=5))
    ctx = Context(services=services(kj, pps), principal=attested, request_id="r4")
    loop = asyncio.get_running_loop()
    made: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    query = """query($nin: String!) { patient(nin: $nin) { nin
        alerts { kind } treatmentLimitations { id } criticalInformation { id }
        labResults { id } sources { source status } } }"""
    loop.set_task_factory(factory)  # type: ignore[arg-type]
    try:
        result = await build_schema().execute(query, variable_values={"nin": HLR_PATIENT},
                                              context_value=ctx)
    finally:
        loop.set_task_factory(None)
    ctx.finish()
    assert result.errors is None, result.errors
    assert result.data is not None
    assert {row["source"] for row in result.data["patient"]["sources"]} == {"kj", "pps"}
    assert len(made) == 2, made  # kj's fetch and pps's
