"""The `Patient` type: one field per category, each a thin resolver: items from the pipeline
(`schema.pipeline.request.PatientRequest`), shaped by `schema.shape`.

The fields are synchronous: the `patient` resolver has awaited every fetch of the plan
(`PatientRequest.fetched()`) before it returns a `Patient`, so the items are there to read.
An async field costs graphql-core a coroutine, a task, a gather and a completion callback
each (~10 per legevakt answer) only to wait for what the one document waits for anyway."""

from __future__ import annotations

from dataclasses import field
from datetime import UTC, date, datetime
from typing import Any

import strawberry
from strawberry.types import Info

from connectors.model import Category
from policies import decide_write
from schema.context import Context
from schema.pipeline.request import PatientRequest
from schema.shape import ordering
from schema.shape.alerts import build_alerts
from schema.shape.conflicts import annotate
from schema.shape.critical import merge_critical
from schema.shape.linking import link_medications
from schema.types import (
    Alert,
    Condition,
    CriticalInformation,
    Demographics,
    DocumentReference,
    LabReport,
    Medication,
    MunicipalService,
    SourceStatus,
    TreatmentLimitation,
)


@strawberry.type(description="One patient, fetched live from every source the caller may see.")
class Patient:
    nin: str
    pipeline: strawberry.Private[PatientRequest]
    # the shaped limitations and critical information, made once: `alerts` and their own
    # fields read the same lists (shaping is pure, and reading the items again notes the
    # same deliveries), so the second field does not judge, annotate and merge them again
    _shaped: strawberry.Private[dict[str, list[Any]]] = field(default_factory=dict)

    @strawberry.field(description="Cross-source warnings, clinically ordered: a conflict "
                      "between treatment-limitation decisions first, then HLR-minus.")
    def alerts(self) -> list[Alert]:
        return build_alerts(self._limitations(), self._critical())

    @strawberry.field(description="HLR-minus and other treatment limitations from ANY source, "
                      "each with its meaning and the decisions it contradicts.")
    def treatment_limitations(self) -> list[TreatmentLimitation]:
        return ordering.order_limitations(self._limitations())

    @strawberry.field(description="Allergies/CAVE and other critical information from every "
                      "source; the same information from two sources is one item.")
    def critical_information(self) -> list[CriticalInformation]:
        return ordering.order_critical(self._critical())

    def _limitations(self) -> list[Any]:
        shaped = self._shaped.get("limitations")
        if shaped is None:
            items = self.pipeline.items_now(Category.TREATMENT_LIMITATIONS)
            shaped = self._shaped["limitations"] = annotate(items, self.pipeline.terminology)
        return shaped

    def _critical(self) -> list[Any]:
        shaped = self._shaped.get("critical")
        if shaped is None:
            shaped = self._shaped["critical"] = merge_critical(
                self.pipeline.items_now(Category.CRITICAL_INFORMATION))
        return shaped

    @strawberry.field(description="PLL, e-resept and municipal records linked per treatment.")
    def medications(self) -> list[Medication]:
        return link_medications(self.pipeline.items_now(Category.MEDICATIONS))

    @strawberry.field
    def lab_results(
        self, since: date | None = None, first: int | None = None
    ) -> list[LabReport]:
        reports = ordering.order_labs(self.pipeline.items_now(Category.LAB_RESULTS))
        if since is not None:
            reports = [r for r in reports if (r.issued_at or r.effective_at)
                       and (r.issued_at or r.effective_at).date() >= since]
        return reports[:first] if first is not None and first >= 0 else reports

    @strawberry.field
    def municipal_services(self) -> list[MunicipalService]:
        return ordering.order_services(self.pipeline.items_now(Category.MUNICIPAL_SERVICES))

    @strawberry.field
    def conditions(self) -> list[Condition]:
        return ordering.order_conditions(self.pipeline.items_now(Category.CONDITIONS))

    @strawberry.field
    def documents(self) -> list[DocumentReference]:
        return ordering.order_documents(self.pipeline.items_now(Category.DOCUMENTS))

    @strawberry.field(description="What the caller may record for this patient in their own "
                      "municipality's store (the write policy; e.g. offer 'Registrer HLR-minus' "
                      "only when TREATMENT_LIMITATIONS is here). Asks no source.")
    def may_record(self, info: Info[Context, None]) -> list[Category]:
        ctx = info.context
        principal, services = ctx.principal, ctx.services
        now = datetime.now(UTC)
        kinds = {c for w in services.writers.values() for c in w.writes}
        return [c for c in Category if c in kinds and decide_write(
            principal, self.nin, c.value, principal.municipality or "", now=now,
            rules=services.rules).allowed]

    @strawberry.field(description="Who the patient is (name, birth date and age, home "
                      "municipality, deceased), from the population registry; null when the "
                      "registry does not know the number or did not answer (see `sources`).")
    def demographics(self) -> Demographics | None:
        found = self.pipeline.items_now(Category.DEMOGRAPHICS)
        return found[0] if found else None

    @strawberry.field(description="Every source consulted for this patient in this request.")
    def sources(self) -> list[SourceStatus]:
        return self.pipeline.statuses_now()  # type: ignore[return-value]
