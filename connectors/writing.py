"""The write contract: a connector that can record to its upstream says so, and how it is asked.

Sits beside `connectors.base` (the read contract). Kilde keeps no copy: a mutation is
forwarded to the store that owns the record, through the connector that reads it. A
connector that can write adds `writes` (the categories it records) and `write()` to the
read contract; `writer_of` finds that ability behind the gateway's wrappers (cache,
resilience, boundary), which are for reads only: a write is never cached and never retried
by them.

>>> class Notes:
...     name = "notes"
...     categories = frozenset({Category.DOCUMENTS})
...     writes = frozenset({Category.DOCUMENTS})
...     async def fetch(self, request): ...
...     async def write(self, request: WriteRequest) -> WriteResult: ...
...     async def aclose(self) -> None: ...
>>> isinstance(Notes(), Writer)
True

The request says who writes (`requester`), for which patient, to which municipality's store,
and carries a `Draft`: what to record, already validated by the schema. `identifier` is the
record's business identifier (system and value): the store's conditional create
(`If-None-Exist: identifier=system|value`) makes the same write twice create one record, so a
writer must send it and must not create a second record under it. A writer raises
`ConnectorError`s like a reader; a store's refusal with an `OperationOutcome` is
`UpstreamRejectedError` with the outcome's issue codes in `issues` (never its text: it may
quote the record). An error raised before the record was sent (reading what the store
supports, finding the patient) carries `sent = False`: nothing can have been written. Any
other failure leaves the outcome unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from connectors.base import Requester
from connectors.credentials.upstream import NO_CREDENTIALS, Credentials
from connectors.model import Category, Coding, DocumentReference, Medication, TreatmentLimitation


@dataclass(frozen=True, slots=True)
class TreatmentLimitationDraft:
    """A treatment limitation (behandlingsavklaring) to record, e.g. HLR-minus.

    `code` is a SNOMED CT or Norwegian code (system, code, display); `decided_by` the
    responsible physician as the record names them; `reason` why (free text).
    """

    code: Coding
    decided_by: str
    decided_at: datetime
    reason: str
    description: str | None = None
    valid_until: date | None = None
    category: Category = field(default=Category.TREATMENT_LIMITATIONS, init=False)


@dataclass(frozen=True, slots=True)
class ClinicalNoteDraft:
    """A clinical note to record, e.g. a legevakt visit note for the home municipality's care
    services (a FHIR DocumentReference with the note as text)."""

    type: Coding
    title: str
    text: str
    author: str
    date: datetime
    category: Category = field(default=Category.DOCUMENTS, init=False)


@dataclass(frozen=True, slots=True)
class MedicationAdministrationDraft:
    """One administration of a medicine in municipal care (a FHIR MedicationAdministration)."""

    medication: Coding  # ATC preferred
    name: str
    dose: str
    administered_at: datetime
    administered_by: str
    route: Coding | None = None
    reason: str | None = None
    category: Category = field(default=Category.MEDICATIONS, init=False)


Draft = TreatmentLimitationDraft | ClinicalNoteDraft | MedicationAdministrationDraft
Written = TreatmentLimitation | DocumentReference | Medication


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One record to write for one patient to one municipality's store.

    `identifier` is (system, value), the record's business identifier and the conditional
    create's key. `timeout` is the budget in seconds; `credentials` the caller's token towards
    upstreams, exchanged per upstream like a read's (not in `repr` or equality).
    """

    patient_nin: str
    municipality: str
    draft: Draft
    identifier: tuple[str, str]
    requester: Requester = field(default_factory=Requester)
    request_id: str = ""
    timeout: float = 5.0
    credentials: Credentials = field(default=NO_CREDENTIALS, repr=False, compare=False)

    def __repr__(self) -> str:  # never the identity number or the record's text
        return (f"WriteRequest(category={self.draft.category.value!r}, "
                f"municipality={self.municipality!r}, request_id={self.request_id!r})")

    @property
    def category(self) -> Category:
        return self.draft.category


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What the store recorded, read back as the item a query would show (with the store's
    provenance); `created` is False when the store already held a record under the request's
    identifier (conditional create matched) and answered with that one."""

    item: Written
    created: bool


@runtime_checkable
class Writer(Protocol):
    """A connector that can record to its upstream, for the categories in `writes`.

    `write` sends the draft once (no retries: only the conditional create makes a repeat
    safe), honours `request.timeout`, and never logs or raises personal data.
    """

    name: str
    writes: frozenset[Category]

    async def write(self, request: WriteRequest) -> WriteResult: ...


def writer_of(connector: Any) -> Writer | None:
    """The `Writer` behind `connector` and the gateway's wrappers (each keeps the wrapped
    connector in `inner`), or None when it cannot write. Only a connector's own attributes
    count: a wrapper that delegates unknown names (`__getattr__`) is looked through."""
    for _ in range(16):  # wrappers are few; a cycle is not followed forever
        if connector is None:
            return None
        writes, write = _own(connector, "writes"), _own(connector, "write")
        if isinstance(writes, frozenset) and writes and callable(write):
            return connector  # type: ignore[no-any-return]
        connector = _own(connector, "inner") or _own(connector, "_inner")
    return None


def _own(obj: Any, name: str) -> Any:
    try:
        return object.__getattribute__(obj, name)  # never a wrapper's __getattr__
    except AttributeError:
        return None
