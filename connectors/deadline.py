"""The one deadline mechanism: a source's share of the request deadline, asked by every layer.

The fetch stage (`schema/pipeline/fetch.py`) makes one `Budget` per planned source, cut to what
is left of the request deadline, and hands it down inside the `FetchRequest`
(`request.budget`; `request.timeout` is the same budget in seconds, for code that needs only
a number). Every layer below asks that budget and none keeps a clock of its own:

    fan-out       budget.outer().enforce()  the outer bound, whatever the connector does
                                            (a little after the budget: the layers below,
                                            which stop at the budget, come first); none
                                            in front of the resilience layer, which bounds
                                            all it awaits by the budget (`enforces_budget`)
    cache         budget.cut(sliver)        ends early to leave time for a stale answer
    resilience    budget.left()             retries only while time is left;
                  budget.enforce()          each attempt, so the breaker sees the timeout
    connector     Budget.of(request)        its calls share the rest (`enforce()`, `left()`;
                                            inside resilience's block of the same budget
                                            its `enforce()` sets no timer of its own)
    HTTP          timed_out(source, s)      httpx's or aiohttp's own timeout fired
    HelseID       budget.enforce("a HelseID token")   waiting for the upstream's token

This module is the only maker of `UpstreamTimeoutError` (tests/connectors/test_deadline.py
reads the source to keep it so). A request made without a budget (a connector's own tests,
the contract kit) gets one from its `timeout` when a layer first asks.

>>> budget = Budget("pll", 2.0)
>>> request = budget.request(FetchRequest("14033841389", frozenset()))  # doctest: +SKIP
>>> async with Budget.of(request).enforce():                            # doctest: +SKIP
...     answer = await call_upstream(timeout=Budget.of(request).left())
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from connectors.errors import UpstreamTimeoutError

if TYPE_CHECKING:
    from connectors.base import FetchRequest

MIN_SECONDS = 0.001  # a budget already spent still gives its call a (failing) moment
GRACE_SECONDS = 0.01  # the outer bound's lead over the layers below (at most a tenth)


def timed_out(source: str, seconds: float | None = None, *, waiting_for: str | None = None,
              cause: str | None = None) -> UpstreamTimeoutError:
    """The error of a source that ran out of time: one sentence naming the source and the
    budget (or what it waited for, or why it could not be called: `cause`, a sentence without
    personal data), never a URL, an identity number or a token."""
    within = "in time" if seconds is None else f"within {seconds:.2f} s"
    if cause is not None:
        return UpstreamTimeoutError(source, f"Source {source!r} could not be called: {cause}")
    if waiting_for is not None:
        return UpstreamTimeoutError(
            source, f"Source {source!r} could not be called: no {waiting_for} in time"
                    + ("." if seconds is None else f" ({seconds:.2f} s)."))
    return UpstreamTimeoutError(source, f"Source {source!r} did not answer {within}.")


class Budget:
    """Time left for one source in one request: a point on the monotonic clock.

    `seconds` is the budget it was given (named in the error), `deadline` when it ends."""

    __slots__ = ("_bound", "deadline", "seconds", "source")

    def __init__(self, source: str, seconds: float, *, deadline: float | None = None) -> None:
        self.source = source
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds if deadline is None else deadline
        self._bound: _Enforced | None = None  # the block whose timer enforces this budget

    @classmethod
    def of(cls, request: FetchRequest, source: str = "") -> Budget:
        """The budget `request` carries, or one of `request.timeout` seconds from now."""
        budget = request.budget
        if budget is not None:
            return budget
        return cls(source, request.timeout)

    def left(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def spent(self) -> bool:
        return time.monotonic() >= self.deadline

    def cut(self, seconds: float) -> Budget:
        """A budget for the layer below that ends `seconds` before this one (time kept back
        to answer with what arrived); its error still names this budget's seconds."""
        return Budget(self.source, self.seconds, deadline=self.deadline - seconds)

    def outer(self) -> Budget:
        """The bound for the outermost layer: `GRACE_SECONDS` (at most a tenth) after this
        budget, so that the layers below, which stop at the budget itself, end a hanging call
        first (the breaker sees the timeout) and the outer one catches only a connector that
        overruns."""
        return self.cut(-min(GRACE_SECONDS, self.seconds * 0.1))

    def within(self, seconds: float) -> Budget:
        """A budget ending `seconds` from now, or with this one if that is sooner."""
        return Budget(self.source, min(self.seconds, seconds),
                      deadline=min(self.deadline, time.monotonic() + seconds))

    def request(self, request: FetchRequest, **changes: Any) -> FetchRequest:
        """`request` carrying this budget, its `timeout` what is left."""
        if not changes:  # every layer's copy: FetchRequest.carrying, not dataclasses.replace
            return request.carrying(self, max(MIN_SECONDS, self.deadline - time.monotonic()))
        timeout = changes.pop("timeout") if "timeout" in changes else max(MIN_SECONDS,
                                                                           self.left())
        if changes.keys() <= {"credentials"}:  # the fetch stage's
            return request.carrying(self, timeout, changes.get("credentials"))
        return dataclasses.replace(request, budget=self, timeout=timeout, **changes)

    def expired(self, waiting_for: str | None = None) -> UpstreamTimeoutError:
        """The error for this budget running out."""
        return timed_out(self.source, self.seconds, waiting_for=waiting_for)

    def check(self) -> None:
        """Raise the timeout error when nothing is left."""
        if self.spent():
            raise self.expired()

    def enforce(self, waiting_for: str | None = None) -> _Enforced:
        """Run the block (`async with`) within what is left; running out (or a
        `TimeoutError` from inside) raises `UpstreamTimeoutError` for this source. Cancels the
        block's work cleanly. A block nested in one that already enforces this budget in the
        same task (a connector's inside the resilience layer's) sets no second timer: the
        enclosing one ends both at the same moment, with the same error."""
        return _Enforced(self, waiting_for)

    def __repr__(self) -> str:
        return f"Budget({self.source!r}, {self.seconds:.3f}, left={self.left():.3f})"


class _Enforced:
    """One `Budget.enforce()` block: an `asyncio.timeout` at the budget's deadline, or none
    when an enclosing block of the same budget bounds this task already."""

    __slots__ = ("_budget", "_task", "_timeout", "_waiting_for")

    def __init__(self, budget: Budget, waiting_for: str | None) -> None:
        self._budget = budget
        self._waiting_for = waiting_for
        self._timeout: asyncio.Timeout | None = None
        self._task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> None:
        budget = self._budget
        bound = budget._bound
        task = asyncio.current_task()
        if (bound is not None and bound._task is task and task is not None
                and bound._waiting_for == self._waiting_for):
            return  # the enclosing block's timer fires at this deadline, for this task
        self._timeout = timeout = asyncio.timeout(
            max(MIN_SECONDS, budget.deadline - time.monotonic()))
        await timeout.__aenter__()
        if bound is None:
            self._task = task
            budget._bound = self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        budget = self._budget
        if budget._bound is self:
            budget._bound = None
        timeout = self._timeout
        try:
            if timeout is not None:
                await timeout.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            raise budget.expired(self._waiting_for) from None
        if exc_type is not None and issubclass(exc_type, TimeoutError):
            raise budget.expired(self._waiting_for) from None
