"""Resilience per source: bulkhead, circuit breaker and retries, as a Connector wrapper.

Sits between the cache wrapper and the connector (cache -> resilience -> connector). A
bulkhead caps concurrent calls to one source, so a slow source cannot take every connection.
The breaker counts transient failures (timeouts, 5xx, refused connections): after
`failure_threshold` in a row it opens and calls fail at once with UPSTREAM_UNAVAILABLE; after
`reset_seconds` it lets one probe through (half-open) and closes when that succeeds. Retries
(tenacity) are for reads only - every Connector is read-only unless it says `idempotent =
False` - on transient errors, with jittered exponential backoff, and never past the source's
budget (`request.budget`, `connectors.deadline`): every attempt runs within what is left of
it, so a timed-out attempt is the breaker's failure.

>>> pll = ResilientConnector(inner, ResilienceSettings())  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)

from connectors.base import Connector, FetchRequest, SourceResult
from connectors.deadline import Budget
from connectors.errors import ConnectorError, UpstreamTimeoutError, UpstreamUnavailableError

log = logging.getLogger("kilde.resilience")


@dataclass(frozen=True)
class ResilienceSettings:
    """Per-source resilience knobs (`KILDE_RESILIENCE__*`); the same for every source."""

    attempts: int = 2  # 1 = no retry
    backoff_initial: float = 0.05
    backoff_max: float = 0.5
    jitter: float = 0.05
    failure_threshold: int = 5
    reset_seconds: float = 10.0
    max_concurrency: int = 100
    enabled: bool = True


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpenError(UpstreamUnavailableError):
    """The source's breaker is open: failing fast, no call was made (and none is retried)."""


class CircuitBreaker:
    """Consecutive transient failures open it; one probe at a time when half-open."""

    def __init__(self, name: str, threshold: int, reset_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.failures = 0
        self._opened_at = 0.0
        self._open = False
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if not self._open:
            return BreakerState.CLOSED
        if self.clock() - self._opened_at >= self.reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def before(self) -> bool:
        """Admit a call or raise BreakerOpenError; True when the call is the half-open probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        wait = max(0.0, self.reset_seconds - (self.clock() - self._opened_at))
        raise BreakerOpenError(self.name, f"Source {self.name!r} is failing; its circuit "
                               f"breaker is open, next try in {wait:.0f} s.")

    def success(self, probe: bool) -> None:
        if probe or self._open:
            log.warning("circuit breaker for %s closed", self.name)
        self.failures = 0
        self._open = False
        self._probing = False

    def failure(self, probe: bool) -> None:
        self.failures += 1
        if probe or (not self._open and self.failures >= self.threshold):
            if not self._open:
                log.warning("circuit breaker for %s opened after %d failures", self.name,
                            self.failures)
            self._open = True
            self._opened_at = self.clock()
        if probe:
            self._probing = False

    def release(self, probe: bool) -> None:
        """A call ended without a verdict (cancelled, or not transient): free the probe slot."""
        if probe:
            self._probing = False


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConnectorError) and exc.transient and not isinstance(
        exc, BreakerOpenError)


class ResilientConnector:
    """A Connector with a bulkhead, a circuit breaker and retries around `inner`."""

    # everything `fetch` awaits runs within the request's budget (the bulkhead wait, each
    # attempt, the backoff), so the fan-out sets no outer bound of its own in front of it
    enforces_budget = True

    def __init__(self, inner: Connector, settings: ResilienceSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.name = inner.name
        self.categories = inner.categories
        if hasattr(inner, "standard"):
            self.standard = inner.standard
        self.settings = settings
        self.breaker = CircuitBreaker(inner.name, settings.failure_threshold,
                                      settings.reset_seconds, clock)
        self.bulkhead = asyncio.Semaphore(settings.max_concurrency)
        idempotent = bool(getattr(inner, "idempotent", True))
        self.attempts = settings.attempts if idempotent else 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def health(self) -> str:
        return self.breaker.state.value

    async def fetch(self, request: FetchRequest) -> SourceResult:
        budget = Budget.of(request, self.name)
        # The first attempt runs without tenacity: building its retry state on every call
        # showed in the benchmark profile, and most calls succeed the first time.
        try:
            return await self._attempt(request, budget)
        except ConnectorError as exc:
            if self.attempts <= 1 or not _retryable(exc):
                raise
        s = self.settings
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.attempts - 1) | stop_before_delay(budget.left()),
            wait=wait_exponential(multiplier=s.backoff_initial, max=s.backoff_max)
            + wait_random(0, s.jitter),
            reraise=True,
        )
        await asyncio.sleep(min(s.backoff_initial + random.uniform(0, s.jitter), budget.left()))
        async for attempt in retrying:
            with attempt:
                budget.check()
                return await self._attempt(request, budget)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _attempt(self, request: FetchRequest, budget: Budget) -> SourceResult:
        # one coroutine per attempt: bulkhead, breaker and the budget around the inner fetch
        bulkhead = self.bulkhead
        try:
            if bulkhead.locked():  # wait for a place only when there is a queue
                async with budget.enforce():
                    await bulkhead.acquire()
            else:
                await bulkhead.acquire()
        except UpstreamTimeoutError:
            # a full bulkhead is our own queue, not the upstream failing: no breaker verdict
            raise UpstreamUnavailableError(self.name, f"Source {self.name!r} has too many "
                                           "calls in flight; try again shortly.") from None
        breaker = self.breaker
        try:
            probe = breaker.before()
        except BreakerOpenError:
            bulkhead.release()
            raise
        verdict = False
        try:
            async with budget.enforce():  # a TimeoutError escaping the inner layer counts too
                result = await self.inner.fetch(budget.request(request))
            breaker.success(probe)
            verdict = True
            return result
        except UpstreamTimeoutError:
            breaker.failure(probe)
            verdict = True
            raise
        except ConnectorError as exc:
            if exc.transient:
                breaker.failure(probe)
                verdict = True
            raise
        finally:
            if not verdict:
                breaker.release(probe)
            bulkhead.release()

    async def aclose(self) -> None:
        await self.inner.aclose()
