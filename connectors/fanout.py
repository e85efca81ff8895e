"""Concurrent fan-out: ask several sources at once, each within its own timeout.

Sits between the schema and the connectors. `start_fetches()` launches one task per source
immediately, so the slowest source sets the latency, not the sum; each task turns any failure
into an `Outcome` with a `ConnectorError`, so one source never hides the others. The
source's budget (`request.budget`, `connectors.deadline`) is enforced here too, whatever the
connector does, unless the connector is one that enforces it around everything it awaits
itself (`enforces_budget`: the resilience layer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from connectors.activity import SourceActivity
from connectors.base import Connector, FetchRequest, SourceResult
from connectors.deadline import Budget
from connectors.errors import ConnectorError, UpstreamUnavailableError
from connectors.frozen import quick_init

log = logging.getLogger("kilde.fanout")


@quick_init
@dataclass(frozen=True, slots=True)
class Outcome:
    """What one source gave in this request: a result, or the error it failed with."""

    source: str
    result: SourceResult | None
    error: ConnectorError | None
    latency_ms: float


async def fetch_one(
    connector: Connector, request: FetchRequest, activity: SourceActivity | None = None
) -> Outcome:
    """Run one connector's fetch within its budget; never raises (except cancellation).

    `activity`, when given, learns of every live success and failure (for the catalogue)."""
    started = time.perf_counter()
    name = connector.name
    result: SourceResult | None
    error: ConnectorError | None
    budget = Budget.of(request, name)
    try:
        if request.budget is None:  # asked without the fetch stage (tests, tools)
            request = budget.request(request)
        if getattr(type(connector), "enforces_budget", False):
            # the resilience layer runs everything it awaits within this very budget (and
            # the contract kit holds every connector to letting a cancellation through), so
            # an outer bound a grace later could never fire: one timer per source, not two
            result = await connector.fetch(request)
        else:
            async with budget.outer().enforce():
                result = await connector.fetch(request)
        error = None
    except ConnectorError as exc:
        result, error = None, exc
    except Exception as exc:  # a buggy connector fails its own source only
        log.warning("connector %s raised %s", name, type(exc).__name__,
                    extra={"request_id": request.request_id})
        result, error = None, UpstreamUnavailableError(
            name, f"Source {name!r} failed unexpectedly ({type(exc).__name__})."
        )
    latency = (time.perf_counter() - started) * 1000
    if activity is not None:
        if error is not None:
            activity.record_failure(name, error.code)
        elif result is not None and not result.from_cache:
            activity.record_success(name)
    return Outcome(name, result, error, latency)


def start_fetches(
    requests: Mapping[str, tuple[Connector, FetchRequest]],
    activity: SourceActivity | None = None,
) -> dict[str, asyncio.Task[Outcome]]:
    """Start every fetch now, concurrently; the caller awaits the tasks it needs."""
    return {
        name: asyncio.ensure_future(fetch_one(connector, request, activity))
        for name, (connector, request) in requests.items()
    }
