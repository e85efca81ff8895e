"""Fetch, the second stage: start every planned fetch at once, each within the request deadline.

Sits between the plan (`schema.pipeline.plan`) and the judge stage. `Fetches.start()` cuts
each source's own timeout to what is left of the request deadline and launches one task per
source (`connectors.fanout`), so the slowest source sets the latency, not the sum; this is the
one place the patient request's deadline is applied. Awaiting `outcome(source)` never raises:
a failed source is an `Outcome` with its `ConnectorError`. When the request ends, `cancel()`
stops what nobody awaited and `records()` says how each finished fetch went, for telemetry.

>>> fetches = Fetches.start(plan, remaining=2.5)   # doctest: +SKIP
>>> outcome = await fetches.outcome("municipal")   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from connectors.activity import SourceActivity
from connectors.credentials import NO_CREDENTIALS, Credentials
from connectors.fanout import Outcome, start_fetches
from schema.pipeline.plan import Plan

MIN_TIMEOUT = 0.001  # a source planned after the deadline passed still gets a (failing) task


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """How one finished fetch went: its latency, `OK` or the `UPSTREAM_*` code, and whether
    the cache answered (None when there was no result)."""

    source: str
    latency_ms: float
    code: str
    from_cache: bool | None


class Fetches:
    """The running fetches of one plan: one task per source."""

    def __init__(self, tasks: dict[str, asyncio.Task[Outcome]]) -> None:
        self._tasks = tasks

    @classmethod
    def start(cls, plan: Plan, *, remaining: float, activity: SourceActivity | None = None,
              credentials: Credentials = NO_CREDENTIALS) -> Fetches:
        """Start every fetch of `plan` now; `remaining` is what is left of the deadline (s);
        `credentials` (the caller's, for the upstreams' tokens) go with every request."""
        requests = {
            name: (planned.connector, dataclasses.replace(
                planned.request, credentials=credentials,
                timeout=max(MIN_TIMEOUT, min(planned.request.timeout, remaining))))
            for name, planned in plan.fetches.items()
        }
        return cls(start_fetches(requests, activity))

    async def outcome(self, source: str) -> Outcome:
        """The outcome of `source`'s fetch, once it has one (never raises but cancellation)."""
        return await self._tasks[source]

    def cancel(self) -> None:
        """Stop every fetch still running (the request is over)."""
        for task in self._tasks.values():
            task.cancel()

    def records(self) -> tuple[FetchRecord, ...]:
        """The fetches that finished, in start order."""
        out = []
        for task in self._tasks.values():
            if not task.done() or task.cancelled():
                continue
            outcome = task.result()
            out.append(FetchRecord(
                source=outcome.source,
                latency_ms=outcome.latency_ms,
                code=outcome.error.code if outcome.error is not None else "OK",
                from_cache=None if outcome.result is None else outcome.result.from_cache,
            ))
        return tuple(out)
