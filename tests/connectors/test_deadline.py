"""One deadline mechanism (connectors/deadline.py): the fetch stage's budget for a source is the
one every layer asks, and the module is the only maker of UpstreamTimeoutError."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from connectors import Budget, Category, FetchRequest, SourceResult, UpstreamTimeoutError
from connectors.deadline import timed_out
from connectors.errors import UpstreamUnavailableError
from connectors.fanout import fetch_one
from connectors.resilience import ResilienceSettings, ResilientConnector

ROOT = Path(__file__).resolve().parents[2]
NIN = "14033841389"
# asyncio timeouts that are not a source's deadline: the cache store's own Redis operations
# (they fail as CacheUnavailableError), and the contract kit's guard around a connector
# under test
OTHER_TIMEOUTS = {"connectors/cachestore.py", "connectors/testing/checks.py"}


def _calls(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if (isinstance(func, ast.Attribute)
                                      and isinstance(func.value, ast.Name)) else ""
            found.append((node.lineno, f"{owner}.{name}" if owner else name))
    return found


def _sources() -> list[Path]:
    return [p for package in ("connectors", "schema", "gateway")
            for p in sorted((ROOT / package).rglob("*.py"))]


def test_only_the_deadline_module_makes_a_timeout_error() -> None:
    makers = [f"{p.relative_to(ROOT)}:{line}" for p in _sources()
              for line, name in _calls(p) if name.endswith("UpstreamTimeoutError")
              and p.relative_to(ROOT).as_posix() != "connectors/deadline.py"]
    assert makers == []


def test_no_layer_of_the_fetch_path_keeps_its_own_clock() -> None:
    """No asyncio.timeout / timeout_at / wait_for in connectors/ or schema/ but in the
    deadline module (and the two timeouts that are not a source's deadline)."""
    clocks = [f"{rel}:{line} {name}" for p in _sources()
              if (rel := p.relative_to(ROOT).as_posix()).startswith(("connectors/", "schema/"))
              and rel != "connectors/deadline.py" and rel not in OTHER_TIMEOUTS
              for line, name in _calls(p)
              if name in {"asyncio.timeout", "asyncio.timeout_at", "asyncio.wait_for"}]
    assert clocks == []


def test_the_source_scan_finds_a_stray_maker(tmp_path: Path) -> None:
    stray = tmp_path / "stray.py"
    stray.write_text("def f(s):\n    raise errors.UpstreamTimeoutError(s, 'late')\n"
                     "async def g():\n    async with asyncio.timeout(1):\n        pass\n")
    names = [name for _, name in _calls(stray)]
    assert "errors.UpstreamTimeoutError" in names
    assert "asyncio.timeout" in names


def test_a_budget_counts_down_and_cuts() -> None:
    budget = Budget("pll", 2.0)
    assert 1.9 < budget.left() <= 2.0
    assert not budget.spent()
    early = budget.cut(0.5)
    assert early.deadline == pytest.approx(budget.deadline - 0.5)
    assert early.seconds == 2.0  # its error names the source's budget
    assert budget.within(0.25).deadline < budget.deadline
    assert budget.within(10.0).deadline == budget.deadline
    assert budget.outer().deadline == pytest.approx(budget.deadline + 0.01)
    assert Budget("pll", 0.05).outer().seconds == 0.05
    spent = Budget("pll", 1.0, deadline=budget.deadline - 5)
    assert spent.spent()
    assert spent.left() == 0.0
    with pytest.raises(UpstreamTimeoutError, match=r"'pll' did not answer within 1.00 s"):
        spent.check()


def test_a_request_carries_its_budget() -> None:
    budget = Budget("pll", 2.0)
    request = budget.request(FetchRequest(NIN, frozenset({Category.MEDICATIONS})), fresh=True)
    assert request.budget is budget
    assert request.fresh
    assert 0 < request.timeout <= 2.0
    assert Budget.of(request) is budget
    bare = FetchRequest(NIN, frozenset(), timeout=0.7)
    assert Budget.of(bare, "x").seconds == 0.7
    assert Budget.of(bare, "x").source == "x"
    # the budget is no part of the request's identity (nor its repr)
    assert request == budget.request(FetchRequest(NIN, frozenset({Category.MEDICATIONS})),
                                     fresh=True, timeout=request.timeout)
    assert "Budget" not in repr(request)


def test_carrying_copies_every_field_of_the_request() -> None:
    import dataclasses
    from datetime import date

    from connectors import AccessBasis, Requester
    from connectors.credentials import Credentials

    values = {"patient_nin": NIN, "categories": frozenset({Category.MEDICATIONS}),
              "requester": Requester(hpr_number="1", role_code="LE"),
              "access_basis": AccessBasis.AKUTT, "municipalities": frozenset({"0301"}),
              "timeout": 1.5, "request_id": "r-1", "since": date(2026, 1, 1), "fresh": True,
              "privacy_probe": True, "credentials": Credentials(), "budget": Budget("x", 1.0)}
    # a field added to FetchRequest must be added here and to `carrying`
    assert [f.name for f in dataclasses.fields(FetchRequest)] == list(values)
    request = FetchRequest(**values)  # type: ignore[arg-type]
    budget, credentials = Budget("pll", 2.0), Credentials()
    for carried, changed in [(request.carrying(budget, 0.5), {}),
                             (request.carrying(budget, 0.5, credentials),
                              {"credentials": credentials})]:
        expected = {**values, "timeout": 0.5, "budget": budget, **changed}
        assert {name: getattr(carried, name) for name in values} == expected
        assert carried.credentials is expected["credentials"]
        assert carried.budget is budget
    assert budget.request(request, credentials=credentials).credentials is credentials
    assert budget.request(request, municipalities=frozenset()).municipalities == frozenset()


async def test_a_block_nested_in_its_own_budget_sets_no_second_timer() -> None:
    timers: list[float | None] = []
    real = asyncio.timeout

    def counting(delay: float | None) -> asyncio.Timeout:
        timers.append(delay)
        return real(delay)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncio, "timeout", counting)
        with pytest.raises(UpstreamTimeoutError, match=r"'kj' did not answer within 0\.05 s"):
            await _nested(Budget("kj", 0.05), hang=True)  # the connector's in resilience's
        assert len(timers) == 1
        # a stray TimeoutError still becomes the source's error in the nested block
        timers.clear()
        with pytest.raises(UpstreamTimeoutError, match="'kj'"):
            await _nested(Budget("kj", 5.0), hang=False)
        assert len(timers) == 1
        # another task, another wait (`waiting_for`) or another budget: a timer of its own
        timers.clear()
        other = Budget("kj", 5.0)
        async with other.enforce():
            await asyncio.ensure_future(_enforced(other))
            async with other.enforce("HelseID token"), other.cut(0.001).enforce():
                pass
        assert len(timers) == 4
        assert other._bound is None


async def _nested(budget: Budget, *, hang: bool) -> None:
    async with budget.enforce(), budget.enforce():
        if hang:
            await asyncio.Event().wait()
        raise TimeoutError


async def _enforced(budget: Budget) -> None:
    async with budget.enforce():
        pass


@pytest.mark.parametrize(("error", "expected"), [
    (timed_out("pll", 1.5), "Source 'pll' did not answer within 1.50 s."),
    (timed_out("pll"), "Source 'pll' did not answer in time."),
    (timed_out("pll", 1.5, waiting_for="HelseID token"),
     "Source 'pll' could not be called: no HelseID token in time (1.50 s)."),
    (timed_out("pll", cause="HelseID did not answer."),
     "Source 'pll' could not be called: HelseID did not answer."),
])
def test_one_sentence_per_timeout(error: UpstreamTimeoutError, expected: str) -> None:
    assert str(error) == expected
    assert error.source == "pll"
    assert error.code == "UPSTREAM_TIMEOUT"
    assert error.transient


async def _hang(budget: Budget, waiting_for: str | None = None) -> None:
    async with budget.enforce(waiting_for):
        await asyncio.Event().wait()


async def _stray_timeout() -> None:
    async with Budget("kj", 30.0).enforce():
        raise TimeoutError  # e.g. a library's own timeout escaping a connector


async def test_enforce_turns_running_out_and_a_stray_timeout_into_the_sources_error() -> None:
    with pytest.raises(UpstreamTimeoutError, match=r"'kj' did not answer within 0\.05 s"):
        await _hang(Budget("kj", 0.05))
    with pytest.raises(UpstreamTimeoutError, match="'kj'"):
        await _stray_timeout()
    with pytest.raises(UpstreamTimeoutError, match="no HelseID token in time"):
        await _hang(Budget("kj", 0.01), "HelseID token")


class Recording:
    """Records the budget and timeout each call was given; fails the first `fail` calls."""

    name = "rec"
    categories = frozenset({Category.MEDICATIONS})

    def __init__(self, fail: int = 0, hang: bool = False) -> None:
        self.seen: list[tuple[Budget | None, float]] = []
        self.fail = fail
        self.hang = hang
        self.called = asyncio.Event()

    async def fetch(self, request: FetchRequest) -> SourceResult:
        self.seen.append((request.budget, request.timeout))
        self.called.set()
        if len(self.seen) <= self.fail:
            raise UpstreamUnavailableError(self.name, "Source 'rec' failed with HTTP 503.")
        if self.hang:
            await asyncio.Event().wait()
        return SourceResult.empty(self.name, request.categories)

    async def aclose(self) -> None: ...


async def test_every_layer_asks_the_one_budget_the_fetch_stage_made() -> None:
    inner = Recording(fail=1)
    connector = ResilientConnector(inner, ResilienceSettings(attempts=2, backoff_initial=0.001,
                                                             jitter=0.0))
    budget = Budget("rec", 5.0)
    outcome = await fetch_one(connector, budget.request(
        FetchRequest(NIN, frozenset({Category.MEDICATIONS}))))
    assert outcome.error is None
    # the retry too asks the stage's budget: the same deadline, never a fresh one
    assert [b for b, _ in inner.seen] == [budget, budget]
    first, second = (t for _, t in inner.seen)
    assert second < first <= 5.0  # the retry gets what is left


async def test_a_hanging_source_fails_on_its_budget_and_counts_for_the_breaker() -> None:
    inner = Recording(hang=True)
    connector = ResilientConnector(inner, ResilienceSettings(attempts=1, failure_threshold=1))
    expected = r"^Source 'rec' did not answer within 0\.05 s\.$"
    with pytest.raises(UpstreamTimeoutError, match=expected):
        await connector.fetch(Budget("rec", 0.05).request(
            FetchRequest(NIN, frozenset({Category.MEDICATIONS}))))
    assert connector.health == "open"


async def test_in_front_of_the_resilience_layer_the_fan_out_sets_no_timer_of_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Resilience bounds everything it awaits by the budget; the fan-out's outer bound, a grace
    later, could never fire: one timer per source, and the breaker still sees the timeout."""
    timers: list[float | None] = []
    real = asyncio.timeout

    def counting(delay: float | None) -> asyncio.Timeout:
        timers.append(delay)
        return real(delay)

    monkeypatch.setattr(asyncio, "timeout", counting)
    connector = ResilientConnector(Recording(hang=True),
                                   ResilienceSettings(attempts=1, failure_threshold=1))
    outcome = await fetch_one(connector, Budget("rec", 0.05).request(
        FetchRequest(NIN, frozenset({Category.MEDICATIONS}))))
    assert str(outcome.error) == "Source 'rec' did not answer within 0.05 s."
    assert connector.health == "open"
    assert len(timers) == 1
    timers.clear()
    await fetch_one(Recording(), Budget("rec", 1.0).request(
        FetchRequest(NIN, frozenset({Category.MEDICATIONS}))))
    assert len(timers) == 1  # any other connector: the fan-out's outer bound


async def test_the_fan_out_bound_comes_after_the_budget() -> None:
    """The fan-out's outer bound ends a connector that overruns its budget, a grace after it
    (the layers below, which stop at the budget itself, come first)."""
    inner = Recording(hang=True)
    budget = Budget("rec", 0.05)
    outcome = await fetch_one(inner, budget.request(
        FetchRequest(NIN, frozenset({Category.MEDICATIONS}))))
    assert isinstance(outcome.error, UpstreamTimeoutError)
    assert str(outcome.error) == "Source 'rec' did not answer within 0.05 s."
    assert budget.spent()
