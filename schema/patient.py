"""The `Patient` type: one field per category, each a thin resolver: items from the pipeline
(`schema.pipeline.request.PatientRequest`), shaped by `schema.shape`."""

from __future__ import annotations

import asyncio
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

    @strawberry.field(description="Cross-source warnings, clinically ordered: a conflict "
                      "between treatment-limitation decisions first, then HLR-minus.")
    async def alerts(self) -> list[Alert]:
        limitations, critical = await asyncio.gather(self._limitations(), self._critical())
        return build_alerts(limitations, critical)

    @strawberry.field(description="HLR-minus and other treatment limitations from ANY source, "
                      "each with its meaning and the decisions it contradicts.")
    async def treatment_limitations(self) -> list[TreatmentLimitation]:
        return ordering.order_limitations(await self._limitations())

    @strawberry.field(description="Allergies/CAVE and other critical information from every "
                      "source; the same information from two sources is one item.")
    async def critical_information(self) -> list[CriticalInformation]:
        return ordering.order_critical(await self._critical())

    async def _limitations(self) -> list[Any]:
        items = await self.pipeline.items(Category.TREATMENT_LIMITATIONS)
        return annotate(items, self.pipeline.terminology)

    async def _critical(self) -> list[Any]:
        return merge_critical(await self.pipeline.items(Category.CRITICAL_INFORMATION))

    @strawberry.field(description="PLL, e-resept and municipal records linked per treatment.")
    async def medications(self) -> list[Medication]:
        return link_medications(await self.pipeline.items(Category.MEDICATIONS))

    @strawberry.field
    async def lab_results(
        self, since: date | None = None, first: int | None = None
    ) -> list[LabReport]:
        reports = ordering.order_labs(await self.pipeline.items(Category.LAB_RESULTS))
        if since is not None:
            reports = [r for r in reports if (r.issued_at or r.effective_at)
                       and (r.issued_at or r.effective_at).date() >= since]
        return reports[:first] if first is not None and first >= 0 else reports

    @strawberry.field
    async def municipal_services(self) -> list[MunicipalService]:
        return ordering.order_services(await self.pipeline.items(Category.MUNICIPAL_SERVICES))

    @strawberry.field
    async def conditions(self) -> list[Condition]:
        return ordering.order_conditions(await self.pipeline.items(Category.CONDITIONS))

    @strawberry.field
    async def documents(self) -> list[DocumentReference]:
        return ordering.order_documents(await self.pipeline.items(Category.DOCUMENTS))

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
    async def demographics(self) -> Demographics | None:
        found = await self.pipeline.items(Category.DEMOGRAPHICS)
        return found[0] if found else None

    @strawberry.field(description="Every source consulted for this patient in this request.")
    async def sources(self) -> list[SourceStatus]:
        return await self.pipeline.statuses()  # type: ignore[return-value]
