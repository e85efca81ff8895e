"""Fetch, the second stage: start every planned fetch at once, each within the request deadline.

Sits between the plan (`schema.pipeline.plan`) and the judge stage. `Fetches.start()` makes
each source's `Budget` (`connectors.deadline`): its own timeout cut to what is left of the
request deadline; the budget travels in the source's `FetchRequest` and every layer below
(fan-out, cache, resilience, connector) asks it. It launches one task per source
(`connectors.fanout`), so the slowest source sets the latency, not the sum; this is the one
place the patient request's deadline is applied. Awaiting `outcome(source)` never raises:
a failed source is an `Outcome` with its `ConnectorError`. When the request ends, `cancel()`
stops what nobody awaited and `records()` says how each finished fetch went, for telemetry.

>>> fetches = Fetches.start(plan, remaining=2.5)   # doctest: +SKIP
>>> outcome = await fetches.outcome("municipal")   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from connectors.activity import SourceActivity
from connectors.base import Connector, FetchRequest
from connectors.credentials import NO_CREDENTIALS, Credentials
from connectors.deadline import MIN_SECONDS, Budget
from connectors.fanout import Outcome, fetch_one, start_fetches
from schema.pipeline.home import home_of
from schema.pipeline.plan import Plan, stores_after_home

MIN_TIMEOUT = MIN_SECONDS  # a source planned after the deadline still gets a (failing) task


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
        requests = {}
        for name, planned in plan.fetches.items():
            budget = Budget(name, max(MIN_TIMEOUT, min(planned.request.timeout, remaining)))
            requests[name] = (planned.connector, budget.request(
                planned.request, credentials=credentials, timeout=budget.seconds))
        later = {name for name, planned in plan.fetches.items()
                 if planned.after_home and plan.home_source in requests}
        tasks = start_fetches({n: r for n, r in requests.items() if n not in later}, activity)
        for name in later:
            # an emergency-only agreement may add the home store: this source waits for the
            # registry (only then), and gets what is left of its budget after it
            connector, request = requests[name]
            tasks[name] = asyncio.ensure_future(_after_home(
                plan, name, connector, request, tasks[str(plan.home_source)], activity))
        return cls(tasks)

    async def outcome(self, source: str) -> Outcome:
        """The outcome of `source`'s fetch, once it has one (never raises but cancellation)."""
        return await self._tasks[source]

    async def outcomes(self, sources: list[str]) -> list[Outcome]:
        """The outcomes of `sources`' fetches, in that order, once all have one. Waits on the
        fetch tasks without wrapping each in a task of its own; a cancelled caller leaves the
        fetches running (other fields share them; `cancel()` ends them with the request)."""
        tasks = [self._tasks[source] for source in sources]
        pending = [task for task in tasks if not task.done()]
        if pending:
            await asyncio.wait(pending)
        return [task.result() for task in tasks]

    async def settled(self) -> None:
        """Once every fetch has its outcome (each is bounded by its own budget, so this is
        bounded by the request deadline; never raises but cancellation)."""
        await self.outcomes(list(self._tasks))

    def outcome_now(self, source: str) -> Outcome:
        """The outcome of `source`'s finished fetch (`InvalidStateError` while it runs)."""
        return self._tasks[source].result()

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


async def _after_home(plan: Plan, name: str, connector: Connector, request: FetchRequest,
                      registry: asyncio.Task[Outcome],
                      activity: SourceActivity | None) -> Outcome:
    """`connector`'s fetch once the registry has said where the patient lives (shielded: the
    registry's task is shared with the demographics field)."""
    home = home_of(await asyncio.shield(registry))
    budget = Budget.of(request, name)
    request = budget.request(request, municipalities=stores_after_home(plan, name, home))
    return await fetch_one(connector, request, activity)
