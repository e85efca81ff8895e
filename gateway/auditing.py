"""Audit in the execution path: what an execution delivered is recorded before it leaves.

Sits inside every execution as a Strawberry schema extension, added by the app factory, so no
transport can run an operation unaudited: POST and GET /graphql, CDS Hooks (both through
`run_operation`), and queries, mutations and subscriptions over the WebSocket. A query or
mutation is audited once its execution ends (`Context.finish()` -> `Ledger` -> audit events,
gateway/recording.py); a subscription for each update it yields, before the update is sent
(`Context.drain()`: the updates and denials since the last one). When the audit store cannot
take the events, the result's data is withheld: `data` null and one AUDIT_UNAVAILABLE error
(DESIGN.md principle 5), and `Context.audit_unavailable` tells the HTTP door to answer 503.
Metrics count only what the audit trail holds.

>>> schema = build_schema(lambda: AuditAccess(audit, metrics, telemetry))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from gateway.audit import AuditSink, AuditUnavailableError
from gateway.metrics import Metrics
from gateway.recording import events_for
from gateway.telemetry import RequestMetrics
from schema.context import Context
from schema.errors import AuditUnavailableError as AuditUnavailable
from schema.pipeline.ledger import Ledger

log = logging.getLogger("kilde.graphql")

WITHHELD = ("The access could not be recorded, so no patient data is delivered; "
            "try again shortly.")


def withhold(result: Any) -> None:
    """Replace `result`'s data with the one AUDIT_UNAVAILABLE error, in place."""
    result.data = None
    result.errors = [GraphQLError(WITHHELD, original_error=AuditUnavailable(WITHHELD))]


class AuditAccess(SchemaExtension):
    """Writes each execution's audit events; see the module docstring."""

    def __init__(self, audit: AuditSink, metrics: Metrics | None = None,
                 telemetry: RequestMetrics | None = None, *,
                 execution_context: Any = None) -> None:
        self.audit = audit
        self.metrics = metrics
        self.telemetry = telemetry
        if execution_context is not None:
            self.execution_context = execution_context

    def _context(self) -> Context | None:
        ctx = self.execution_context.context
        return ctx if isinstance(ctx, Context) else None

    def _streaming(self) -> bool:
        return self.execution_context.operation_type is OperationType.SUBSCRIPTION

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        yield
        ctx = self._context()
        if ctx is None or self._streaming():
            return
        if not await self.record(ctx, ctx.finish()):
            withhold(self.execution_context.result)

    async def on_stream_result(self, result: Any) -> AsyncIterator[None]:  # type: ignore[override]
        ctx = self._context()
        if ctx is not None and self._streaming() and not await self.record(ctx, ctx.drain()):
            withhold(result)
        yield

    async def record(self, ctx: Context, ledger: Ledger) -> bool:
        """Write the ledger's events; False (and `ctx.audit_unavailable`) when that failed."""
        if self.telemetry is not None:
            self.telemetry.sources(ledger)
        events = events_for(ledger)
        try:
            if len(events) == 1:  # the usual case: awaited as is, not wrapped in a task
                await self.audit.write(events[0])
            elif events:
                await asyncio.gather(*(self.audit.write(e) for e in events))
        except AuditUnavailableError:
            log.error("audit write failed; withholding patient data",
                      extra={"request_id": ctx.request_id})
            ctx.audit_unavailable = True
            return False
        ctx.audited = True
        if self.metrics is not None:
            self.metrics.record(events)  # only what the audit trail holds is counted
        return True
