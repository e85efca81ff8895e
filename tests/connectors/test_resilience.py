"""Resilience per source: retries on transient errors within the budget, breaker, bulkhead."""

from __future__ import annotations

import asyncio
import time

import pytest

from connectors.base import Connector
from connectors.errors import (
    ConnectorError,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from connectors.model import Status
from connectors.resilience import (
    BreakerOpenError,
    BreakerState,
    ResilienceSettings,
    ResilientConnector,
)
from tests.connectors.cache_support import Clock, FakeSource, request

FAST = ResilienceSettings(attempts=3, backoff_initial=0.001, backoff_max=0.002, jitter=0.001,
                          failure_threshold=3, reset_seconds=10)


class Flaky(FakeSource):
    """Fails the first `failures` calls with `error`, then answers."""

    def __init__(self, failures: int, error: type[ConnectorError] = UpstreamUnavailableError,
                 ) -> None:
        super().__init__()
        self.failures = failures
        self.fail = lambda: error("kjernejournal", "Source failed.")

    async def fetch(self, request):  # type: ignore[no-untyped-def]
        if self.calls >= self.failures:
            self.fail = None
        return await super().fetch(request)


def test_the_wrapper_looks_like_the_connector_it_wraps() -> None:
    source = FakeSource()
    wrapped = ResilientConnector(source, FAST)
    assert isinstance(wrapped, Connector)
    assert (wrapped.name, wrapped.categories, wrapped.standard) == (
        source.name, source.categories, source.standard)


async def test_a_transient_error_is_retried_until_the_source_answers() -> None:
    source = Flaky(2)
    result = await ResilientConnector(source, FAST).fetch(request())
    assert result.status is Status.OK
    assert source.calls == 3


async def test_retries_stop_after_the_configured_attempts() -> None:
    source = Flaky(10)
    with pytest.raises(UpstreamUnavailableError):
        await ResilientConnector(source, FAST).fetch(request())
    assert source.calls == 3


@pytest.mark.parametrize("error", [UpstreamInvalidError, UpstreamRejectedError])
async def test_invalid_or_rejected_answers_are_not_retried(error: type[ConnectorError]) -> None:
    source = Flaky(1, error)
    with pytest.raises(error):
        await ResilientConnector(source, FAST).fetch(request())
    assert source.calls == 1


async def test_a_connector_that_is_not_idempotent_is_never_retried() -> None:
    source = Flaky(1)
    source.idempotent = False  # type: ignore[attr-defined]
    with pytest.raises(UpstreamUnavailableError):
        await ResilientConnector(source, FAST).fetch(request())
    assert source.calls == 1


async def test_retries_never_run_past_the_request_budget() -> None:
    source = FakeSource(delay=10)
    settings = ResilienceSettings(attempts=5, backoff_initial=0.001, jitter=0.001)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        await ResilientConnector(source, settings).fetch(request(timeout=0.2))
    assert time.monotonic() - started < 0.4
    assert source.calls == 1  # the first attempt used the whole budget


async def test_the_breaker_opens_after_consecutive_failures_and_then_fails_fast() -> None:
    source = Flaky(100)
    clock = Clock(0)
    wrapped = ResilientConnector(source, ResilienceSettings(
        attempts=1, failure_threshold=3, reset_seconds=10), clock=clock)
    for _ in range(3):
        with pytest.raises(UpstreamUnavailableError):
            await wrapped.fetch(request())
    assert wrapped.breaker.state is BreakerState.OPEN
    assert wrapped.health == "open"
    with pytest.raises(BreakerOpenError, match="circuit breaker is open"):
        await wrapped.fetch(request())
    assert source.calls == 3  # the open breaker did not call the source


async def test_a_half_open_probe_that_succeeds_closes_the_breaker() -> None:
    source = Flaky(3)
    clock = Clock(0)
    wrapped = ResilientConnector(source, ResilienceSettings(
        attempts=1, failure_threshold=3, reset_seconds=10), clock=clock)
    for _ in range(3):
        with pytest.raises(UpstreamUnavailableError):
            await wrapped.fetch(request())
    clock.advance(10)
    assert wrapped.breaker.state is BreakerState.HALF_OPEN
    assert (await wrapped.fetch(request())).status is Status.OK
    assert wrapped.breaker.state is BreakerState.CLOSED


async def test_a_failed_probe_opens_the_breaker_again() -> None:
    source = Flaky(100)
    clock = Clock(0)
    wrapped = ResilientConnector(source, ResilienceSettings(
        attempts=1, failure_threshold=2, reset_seconds=10), clock=clock)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailableError):
            await wrapped.fetch(request())
    clock.advance(10)
    with pytest.raises(UpstreamUnavailableError):
        await wrapped.fetch(request())
    assert wrapped.breaker.state is BreakerState.OPEN
    assert source.calls == 3


async def test_only_one_probe_at_a_time_when_half_open() -> None:
    source = FakeSource(delay=0.05)
    clock = Clock(0)
    wrapped = ResilientConnector(source, ResilienceSettings(
        attempts=1, failure_threshold=1, reset_seconds=10), clock=clock)
    source.fail = lambda: UpstreamUnavailableError("kjernejournal", "Source failed.")
    with pytest.raises(UpstreamUnavailableError):
        await wrapped.fetch(request())
    source.fail = None
    clock.advance(10)
    outcomes = await asyncio.gather(*(wrapped.fetch(request()) for _ in range(5)),
                                    return_exceptions=True)
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert all(isinstance(o, BreakerOpenError) for o in outcomes if isinstance(o, Exception))
    assert wrapped.breaker.state is BreakerState.CLOSED


async def test_a_rejected_answer_does_not_trip_the_breaker() -> None:
    source = Flaky(100, UpstreamRejectedError)
    wrapped = ResilientConnector(source, ResilienceSettings(attempts=1, failure_threshold=1))
    for _ in range(3):
        with pytest.raises(UpstreamRejectedError):
            await wrapped.fetch(request())
    assert wrapped.breaker.state is BreakerState.CLOSED


async def test_the_bulkhead_caps_concurrent_calls_to_one_source() -> None:
    source = FakeSource(delay=0.02)
    wrapped = ResilientConnector(source, ResilienceSettings(max_concurrency=3))
    await asyncio.gather(*(wrapped.fetch(request()) for _ in range(12)))
    assert source.calls == 12
    assert source.max_in_flight == 3


async def test_a_full_bulkhead_fails_within_the_budget_without_tripping_the_breaker() -> None:
    source = FakeSource(delay=1)
    wrapped = ResilientConnector(source, ResilienceSettings(
        attempts=1, max_concurrency=1, failure_threshold=1))
    hog = asyncio.ensure_future(wrapped.fetch(request(timeout=2)))
    await asyncio.sleep(0.01)
    with pytest.raises(UpstreamUnavailableError, match="too many calls"):
        await wrapped.fetch(request(timeout=0.1))
    assert wrapped.breaker.state is BreakerState.CLOSED
    hog.cancel()
