"""The audit trail: every delivery recorded, durably and hash-chained, before data leaves.

Sits at the gateway's edge: the lifespan opens the sink (`open_audit_sink`), resolvers write
one `AuditEvent` per delivery, innsyn and the privacy officer read it back (`query`, `usage`),
and `kilde audit verify` checks the chain (`verify_url`). `retention` purges beyond
`KILDE_AUDIT__RETENTION_DAYS` at start and daily.
"""

from __future__ import annotations

from gateway.audit.chain import VerifyResult
from gateway.audit.events import AuditEvent, Delivery, canonical_bytes
from gateway.audit.fhir import to_fhir_audit_event
from gateway.audit.sink import (
    AuditCursorError,
    AuditPage,
    AuditSink,
    AuditUnavailableError,
    UsageRow,
    open_audit_sink,
    verify_url,
)

__all__ = [
    "AuditCursorError",
    "AuditEvent",
    "AuditPage",
    "AuditSink",
    "AuditUnavailableError",
    "Delivery",
    "UsageRow",
    "VerifyResult",
    "canonical_bytes",
    "open_audit_sink",
    "to_fhir_audit_event",
    "verify_url",
]
