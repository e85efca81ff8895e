"""The per-request context resolvers receive, and the long-lived services it points to.

The gateway builds `Services` once in its lifespan and a `Context` per request (after
authentication). Resolvers add response errors and start patient requests
(`schema.pipeline.request`); when execution is over the gateway calls `finish()`, which stops
what is still running and returns the request's `Ledger` (what was delivered, denied and
read), the one thing the gateway reads back to audit and count before the response leaves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from connectors.activity import SourceActivity
from connectors.credentials import NO_CREDENTIALS, Credentials
from connectors.registry import Registry
from connectors.writing import Writer
from policies.model import Principal, Rules
from schema.pipeline.ledger import Denial, Ledger, LogRead, Notice
from schema.shape.terminology import Terminology, load_terminology

if TYPE_CHECKING:
    from schema.pipeline.request import PatientRequest
    from schema.write.idempotency import IdempotencyStore
    from schema.write.record import Evict, WriteAudit

__all__ = ["AccessLogReader", "ChangeFeed", "ChangePublisher", "ChangeWatcher", "Context",
           "Denial", "FreshLimiter", "Health", "LogRead", "Services"]


class AccessLogReader(Protocol):
    """What the schema needs of the audit store (implemented by gateway.audit sinks)."""

    async def query(
        self, *, patient_nin: str | None, start: datetime | None, end: datetime | None,
        first: int, after: str | None, actor_municipality: str | None = None,
        emergency_only: bool = False, municipality: str | None = None,
    ) -> Any: ...

    async def usage(self, *, start: date | None, end: date | None,
                    municipality: str | None = None) -> Sequence[Any]: ...

    async def holds_data_of(self, *, patient_nin: str, municipality: str) -> bool: ...


class LaunchReader(Protocol):
    """Redeems a launch context once (gateway.launch.LaunchStore): the context, or None."""

    async def redeem(self, principal: Principal, launch: str) -> Any: ...


class Health(Protocol):
    def source_health(self, name: str) -> str: ...


class FreshLimiter(Protocol):
    """May this principal bypass the cache now? (gateway.freshness; over the limit: cache)."""

    async def allow(self, principal_id: str) -> bool: ...


class ChangePublisher(Protocol):
    """Tells live subscribers that a patient's data changed (gateway.live.ChangeBus): here and,
    through Redis, on every replica. Never raises for Redis trouble.

    >>> await ctx.services.changes.publish(nin=nin, source="municipal",  # doctest: +SKIP
    ...     categories=("treatment_limitations",), origin="kilde")
    """

    async def publish(self, *, nin: str, source: str | None, categories: Sequence[str] = (),
                      origin: str = "kilde", municipality: str | None = None) -> Any: ...


class ChangeWatcher(Protocol):
    """A patient's changes from now on (gateway.live.ChangeBus.watch): an async context
    manager giving an async iterator of changes."""

    def watch(self, nin: str) -> Any: ...


class ChangeFeed(ChangePublisher, ChangeWatcher, Protocol):
    """Both: what `Services.changes` is."""


@dataclass(frozen=True)
class Services:
    """Built once at start; read-only afterwards."""

    registry: Registry
    rules: Rules
    tenants: tuple[str, ...]
    access_log: AccessLogReader
    deadline_seconds: float = 3.0
    health: Health | None = None
    activity: SourceActivity | None = None  # when each source last answered (the catalogue)
    fresh_limiter: FreshLimiter | None = None
    # what treatment-limitation codes and words mean (schema/shape/limitations.toml + file)
    terminology: Terminology = field(default_factory=load_terminology)
    launches: LaunchReader | None = None  # patient-context handover (launchContext)
    # writes (schema/write/record.py): the connectors that record, by name; the audit of each
    # write's attempt and outcome; the Idempotency-Key memory; the cache eviction after a write
    writers: Mapping[str, Writer] = field(default_factory=dict)
    write_audit: WriteAudit | None = None
    idempotency: IdempotencyStore | None = None
    evict: Evict | None = None
    # live updates (gateway/live): writes publish a change, patientUpdates watches for them
    changes: ChangeFeed | None = None


@dataclass
class Context:
    """One request's context: who asks, its deadline, and what resolvers recorded."""

    services: Services
    principal: Principal
    request_id: str
    started: float = field(default_factory=time.monotonic)
    fresh: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    patients: list[PatientRequest] = field(default_factory=list)
    denials: list[Denial] = field(default_factory=list)
    log_reads: list[LogRead] = field(default_factory=list)
    document: Any = None  # the query, parsed and measured by the gateway (gateway/limits.py)
    # the caller's token towards upstreams (FetchRequest.credentials); its repr shows no token
    credentials: Credentials = NO_CREDENTIALS
    idempotency_key: str | None = None  # the request's Idempotency-Key header (mutations)
    notices: list[Notice] = field(default_factory=list)  # live updates sent (patientUpdates)
    watching: asyncio.Event = field(default_factory=asyncio.Event)  # a subscription started
    # set by the audit extension (gateway/auditing.py): it wrote this execution's events, or
    # the audit store failed and the data was withheld
    audited: bool = False
    audit_unavailable: bool = False
    _finished: Ledger | None = field(default=None, init=False, repr=False)

    def remaining(self) -> float:
        """Seconds left before the request deadline (never negative)."""
        return max(0.0, self.services.deadline_seconds - (time.monotonic() - self.started))

    def finish(self) -> Ledger:
        """End the request: cancel fetches nobody awaited and return what was delivered.

        Once ended, the same ledger again: the audit extension ends the execution and
        `run_operation` asks after it, and what it summarises is what was audited."""
        if self._finished is not None:
            return self._finished
        for patient in self.patients:
            patient.cancel()
        self._finished = Ledger(
            principal=self.principal,
            request_id=self.request_id,
            patients=tuple(patient.ledger() for patient in self.patients),
            denials=tuple(self.denials),
            log_reads=tuple(self.log_reads),
            notices=tuple(self.notices),
        )
        return self._finished

    def drain(self) -> Ledger:
        """A subscription's account since the last drain: the updates it sent and the lookups
        it was denied (each update is audited before it leaves)."""
        ledger = Ledger(principal=self.principal, request_id=self.request_id,
                        denials=tuple(self.denials), notices=tuple(self.notices))
        self.denials.clear()
        self.notices.clear()
        return ledger
