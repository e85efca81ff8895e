"""Ledger, the last stage: what a request delivered, as one frozen value the gateway reads.

Sits at the end of the patient pipeline and at the edge of the schema. When execution is over,
`Context.finish()` closes every patient request and returns a `Ledger`: per patient, what each
source delivered per category (status and item count), which categories the policies denied,
whether an emergency opened restricted data, and how each fetch went; plus the request's
denied patient lookups and access-log reads. The gateway turns it into audit events
(`gateway/recording.py`) and metrics (`gateway/telemetry.py`) and reads nothing else of the
pipeline.

>>> ledger = ctx.finish()                         # doctest: +SKIP
>>> [d.source for p in ledger.patients for d in p.deliveries]  # doctest: +SKIP
['kjernejournal', 'municipal']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.model import AnyCategory, Status
from policies.model import Decision, Principal
from schema.pipeline.fetch import FetchRecord


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one source handed over for one category: its status and how many items."""

    category: AnyCategory
    source: str
    status: Status
    count: int


@dataclass(frozen=True)
class PatientLedger:
    """One patient's account: deliveries sorted by (category, source), denied categories with
    their decisions, the emergency opening and its reason, and the finished fetches."""

    nin: str
    reason: str
    deliveries: tuple[Delivery, ...] = ()
    denied: Mapping[AnyCategory, Decision] = field(default_factory=dict)
    emergency: bool = False
    emergency_reason: str | None = None
    fetches: tuple[FetchRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Denial:
    """A patient lookup (or an access-log read) the policies refused: audited."""

    nin: str
    decision: Decision


@dataclass(frozen=True, slots=True)
class LogRead:
    """Somebody other than the patient read `nin`'s access log (the privacy officer): audited."""

    nin: str
    decision: Decision


@dataclass(frozen=True)
class Ledger:
    """Everything one request owes the audit trail and the metrics."""

    principal: Principal
    request_id: str
    patients: tuple[PatientLedger, ...] = ()
    denials: tuple[Denial, ...] = ()
    log_reads: tuple[LogRead, ...] = ()
