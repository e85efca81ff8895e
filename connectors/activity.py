"""When each source last answered and last failed: the catalogue's `lastSuccess`.

Sits beside the fan-out: `fetch_one` reports every live outcome here (an answer served from
the cache is not the upstream answering, so it is not a success). Kept in memory per process;
with N replicas each knows what it saw itself, which is what an operator debugging that
replica wants. No patient data: a source name, a time and an error code.

>>> activity = SourceActivity()
>>> activity.record_failure("pll", "UPSTREAM_TIMEOUT")
>>> activity.get("pll").last_error
'UPSTREAM_TIMEOUT'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Activity:
    """One source's recent history as this process saw it."""

    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_error: str | None = None  # the failure's extensions.code, e.g. UPSTREAM_TIMEOUT


class SourceActivity:
    """Per-source `Activity`, updated by the fan-out and read by the catalogue."""

    def __init__(self) -> None:
        self._seen: dict[str, Activity] = {}

    def record_success(self, source: str, at: datetime | None = None) -> None:
        current = self._seen.get(source, Activity())
        self._seen[source] = replace(current, last_success=at or datetime.now(UTC))

    def record_failure(self, source: str, code: str, at: datetime | None = None) -> None:
        current = self._seen.get(source, Activity())
        self._seen[source] = replace(current, last_failure=at or datetime.now(UTC),
                                     last_error=code)

    def get(self, source: str) -> Activity:
        return self._seen.get(source, Activity())
