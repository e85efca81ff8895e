"""Ledger, the last stage: what a request delivered, as one frozen value the gateway reads.

Sits at the end of the patient pipeline and at the edge of the schema. When execution is over,
`Context.finish()` closes every patient request and returns a `Ledger`: per patient, what each
source delivered per category (status and item count), which categories the policies denied,
whether an emergency opened restricted data, how each fetch went, and every status row the
delivered fields rested on; plus the request's denied patient lookups and access-log reads.
The gateway turns it into audit events (`gateway/recording.py`), metrics
(`gateway/telemetry.py`) and the response's completeness summary (`completeness()`, in
`extensions`), and reads nothing else of the pipeline.

Completeness: a row is incomplete when its status is anything but OK or EMPTY (a timeout, a
source not asked, withheld data, a stale cache entry...), or when fresh data was asked for,
refused by its rate limit, and the cache answered (reason FRESH_REFUSED). A client that
selects only `alerts` still learns from the summary what the alerts may lack.

>>> ledger = ctx.finish()                         # doctest: +SKIP
>>> [d.source for p in ledger.patients for d in p.deliveries]  # doctest: +SKIP
['kjernejournal', 'municipal']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.model import AnyCategory, Status
from policies.model import Decision, Principal
from schema.pipeline.fetch import FetchRecord
from schema.pipeline.plan import StatusRow

COMPLETE = frozenset({Status.OK, Status.EMPTY})
FRESH_REFUSED = "FRESH_REFUSED"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one source handed over for one category: its status and how many items; for a
    municipal source one per store that delivered (`municipality`, None: a national source)."""

    category: AnyCategory
    source: str
    status: Status
    count: int
    municipality: str | None = None


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
    blocked_by: str | None = None  # a source said the patient has blocked this caller
    fetches: tuple[FetchRecord, ...] = ()
    answers: tuple[StatusRow, ...] = ()  # every row the delivered fields rested on
    path: tuple[str | int, ...] = ("patient",)  # where the patient is in the response
    fresh_refused: bool = False  # fresh data asked for, refused by its rate limit
    home_municipality: str | None = None  # the registry's, when the planner learnt it

    def incomplete(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """The rows that did not answer completely, as the summary lists them."""
        moment = now or datetime.now(UTC)
        out = []
        for row in self.answers:
            reason = row.reason
            if row.status in COMPLETE:
                if not (self.fresh_refused and row.from_cache):
                    continue
                reason = FRESH_REFUSED
            age = None
            if row.fetched_at is not None and (row.from_cache or row.status is Status.STALE):
                age = round(max(0.0, (moment - row.fetched_at).total_seconds()), 1)
            out.append({"source": row.source, "municipality": row.municipality,
                        "category": row.category.name, "status": row.status.value,
                        "reason": reason, "detail": row.detail, "ageSeconds": age})
        return out


@dataclass(frozen=True, slots=True)
class Denial:
    """A patient lookup (or an access-log read) the policies refused: audited."""

    nin: str
    decision: Decision
    home_municipality: str | None = None  # the registry's, when the decision looked it up


@dataclass(frozen=True, slots=True)
class LogRead:
    """Somebody other than the patient read `nin`'s access log (the privacy officer): audited."""

    nin: str
    decision: Decision
    home_municipality: str | None = None  # the registry's, when the decision looked it up


@dataclass(frozen=True)
class Notice:
    """A live update sent to a subscriber (`patientUpdates`): this patient's `categories` at
    `source` (None: every source, a resync) changed. Nothing of the data itself was sent, but
    that a caller was told is an access the audit trail records."""

    nin: str
    reason: str
    source: str | None
    categories: tuple[AnyCategory, ...]


@dataclass(frozen=True)
class Ledger:
    """Everything one request (or one subscription update) owes the audit trail and the
    metrics."""

    principal: Principal
    request_id: str
    patients: tuple[PatientLedger, ...] = ()
    denials: tuple[Denial, ...] = ()
    log_reads: tuple[LogRead, ...] = ()
    notices: tuple[Notice, ...] = ()


def completeness(ledger: Ledger, now: datetime | None = None) -> dict[str, Any] | None:
    """The response-level completeness summary (None when no patient was read).

    >>> completeness(Ledger(principal, "r1"))  # doctest: +SKIP
    """
    if not ledger.patients:
        return None
    patients = []
    for patient in ledger.patients:
        incomplete = patient.incomplete(now)
        patients.append({"path": list(patient.path), "complete": not incomplete,
                         "freshRefused": patient.fresh_refused, "incomplete": incomplete})
    return {"complete": all(p["complete"] for p in patients), "patients": patients}
