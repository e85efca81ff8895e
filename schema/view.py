"""One patient, one request: decide, fan out, filter, and remember what was delivered.

Sits under the `patient` resolver. `PatientView.start()` asks the policies per requested
category *before* any fetch (a denied section is never fetched), then starts one task per
source that serves an allowed category. Category fields await only the sources they need;
each source's outcome is judged once (privacy state, item labels, municipal border) and the
view records, per category and source, what it delivered: that becomes the audit event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from connectors.base import AccessBasis, FetchRequest, Requester
from connectors.fanout import Outcome, start_fetches
from connectors.model import AnyCategory, Category, CategorySpec, Item, Status
from policies import (
    access_basis,
    allowed_municipalities,
    decide_category,
    decide_item,
    decide_privacy,
)
from policies.model import Decision, ItemFacts, Principal, PrincipalKind, PrivacyFacts
from schema.context import Context
from schema.errors import ForbiddenError, error_dict

_ERROR_STATUS = {
    "UPSTREAM_TIMEOUT": Status.TIMEOUT,
    "UPSTREAM_UNAVAILABLE": Status.UNAVAILABLE,
    "UPSTREAM_INVALID": Status.INVALID,
    "UPSTREAM_REJECTED": Status.UNAVAILABLE,
}


@dataclass
class Judged:
    """A source's outcome after policy: items per category and a status per category."""

    items: dict[Category, list[Item]]
    status: dict[Category, Status]
    outcome: Outcome
    detail: str | None = None
    emergency: bool = False


@dataclass
class StatusRow:
    source: str
    category: Category
    status: Status
    latency_ms: float | None = None
    fetched_at: datetime | None = None
    from_cache: bool = False
    detail: str | None = None


@dataclass
class PatientView:
    ctx: Context
    nin: str
    requested: frozenset[Category]
    emergency_reason: str | None = None
    since: date | None = None
    reason: str = "PERMITTED"  # why the patient was permitted (audited), e.g. CARE_RELATIONSHIP
    denied: dict[Category, Decision] = field(default_factory=dict)
    skipped: list[StatusRow] = field(default_factory=list)
    tasks: dict[str, asyncio.Task[Outcome]] = field(default_factory=dict)
    categories_by_source: dict[str, frozenset[Category]] = field(default_factory=dict)
    delivered: dict[tuple[Category, str], tuple[Status, int]] = field(default_factory=dict)
    emergency: bool = False
    municipalities: frozenset[str] = frozenset()
    _judged: dict[str, Judged] = field(default_factory=dict)
    _reported: set[str] = field(default_factory=set)

    @property
    def principal(self) -> Principal:
        return self.ctx.principal

    def start(self) -> None:
        """Decide per category, then start every allowed fetch concurrently."""
        services = self.ctx.services
        principal = self.principal
        allowed: set[Category] = set()
        for category in self.requested:
            decision = decide_category(principal, category.value, rules=services.rules)
            if decision.allowed:
                allowed.add(category)
                continue
            self.denied[category] = decision
            self.ctx.errors.append(error_dict(ForbiddenError(
                f"You may not see {category.value!r} for this patient.",
                category=category.value, reason=decision.reason,
            )))
            for entry in services.registry.serving(category):
                if in_use(entry.settings.municipalities, principal):
                    self.skipped.append(StatusRow(entry.connector.name, category,
                                                  Status.DENIED, detail=decision.reason))
        municipalities = self.municipalities = allowed_municipalities(
            principal, rules=services.rules, tenants=services.tenants
        )
        basis = AccessBasis(access_basis(principal, self.emergency_reason))
        requester = _requester(principal)
        requests = {}
        timeout_left = self.ctx.remaining()
        for entry in services.registry:
            connector = entry.connector
            wanted = frozenset(allowed & connector.categories)
            if not wanted or not in_use(entry.settings.municipalities, principal):
                continue
            stores = frozenset(entry.settings.stores)
            reachable = municipalities & stores if stores else municipalities
            if stores and not reachable:
                for category in wanted:
                    self.skipped.append(StatusRow(
                        connector.name, category, Status.DENIED,
                        detail="MUNICIPAL_BORDER: no store you may see without an agreement",
                    ))
                continue
            request = FetchRequest(
                patient_nin=self.nin,
                categories=wanted,
                requester=requester,
                access_basis=basis,
                municipalities=reachable,
                timeout=max(0.001, min(entry.settings.timeout, timeout_left)),
                request_id=self.ctx.request_id,
                since=self.since,
                fresh=self.ctx.fresh,
            )
            requests[connector.name] = (connector, request)
            self.categories_by_source[connector.name] = wanted
        self.tasks = start_fetches(requests, services.activity)

    def cancel(self) -> None:
        for task in self.tasks.values():
            task.cancel()

    async def _judge(self, source: str) -> Judged:
        outcome = await self.tasks[source]
        if source in self._judged:
            return self._judged[source]
        wanted = self.categories_by_source[source]
        if outcome.error is not None:
            status = _ERROR_STATUS.get(outcome.error.code, Status.UNAVAILABLE)
            if source not in self._reported:
                self._reported.add(source)
                self.ctx.errors.append(error_dict(outcome.error))
            judged = Judged({c: [] for c in wanted}, {c: status for c in wanted}, outcome,
                            detail=outcome.error.message)
        else:
            judged = self._judge_result(source, outcome)
        self._judged[source] = judged
        if judged.emergency:
            self.emergency = True
        return judged

    def _judge_result(self, source: str, outcome: Outcome) -> Judged:
        result = outcome.result
        assert result is not None
        wanted = self.categories_by_source[source]
        privacy = result.privacy
        decision = decide_privacy(
            self.principal,
            PrivacyFacts(source, privacy.reserved, privacy.restricted,
                         privacy.restriction_opened, privacy.blocked_requester,
                         privacy.any_blocked),
            emergency_reason=self.emergency_reason,
        )
        if not decision.allowed:
            status = Status(decision.status)
            return Judged({c: [] for c in wanted}, {c: status for c in wanted}, outcome,
                          detail=decision.reason)
        services = self.ctx.services
        emergency = decision.emergency
        items: dict[Category, list[Item]] = {}
        statuses: dict[Category, Status] = {}
        for category in wanted:
            kept = []
            for item in result.items.get(category, ()):
                verdict = decide_item(
                    self.principal,
                    ItemFacts(source, category.value, item.provenance.municipality,
                              frozenset(label.code for label in item.security)),
                    rules=services.rules, municipalities=self.municipalities,
                    emergency_reason=self.emergency_reason,
                )
                if verdict.allowed:
                    kept.append(item)
                    emergency = emergency or verdict.emergency
            items[category] = kept
            status = result.status_for(category)
            if status is Status.OK and not kept:
                status = Status.EMPTY  # everything hidden: say nothing more than "empty"
            statuses[category] = status
        return Judged(items, statuses, outcome, detail=result.detail, emergency=emergency)

    async def items(self, category: Category) -> list[Any]:
        """The permitted items of one category from every source that serves it."""
        if category in self.denied:
            self.record_denied(category)
            return []
        sources = [s for s, cats in self.categories_by_source.items() if category in cats]
        judged = await asyncio.gather(*(self._judge(s) for s in sources))
        collected: list[Any] = []
        for source, j in zip(sources, judged, strict=True):
            found = j.items.get(category, [])
            self.delivered[(category, source)] = (j.status[category], len(found))
            collected.extend(found)
        return collected

    def record_denied(self, category: Category) -> None:
        for row in self.skipped:
            if row.category == category:
                self.delivered.setdefault((category, row.source), (row.status, 0))

    async def statuses(self) -> list[StatusRow]:
        """Every source consulted (or deliberately not consulted) for this patient."""
        rows = list(self.skipped)
        for source in self.categories_by_source:
            judged = await self._judge(source)
            outcome = judged.outcome
            result = outcome.result
            for category in sorted(self.categories_by_source[source], key=lambda c: c.value):
                rows.append(StatusRow(
                    source=source,
                    category=category,
                    status=judged.status[category],
                    latency_ms=round(outcome.latency_ms, 1),
                    fetched_at=result.fetched_at if result else datetime.now(UTC),
                    from_cache=bool(result and result.from_cache),
                    detail=judged.detail,
                ))
        return rows


def in_use(municipalities: frozenset[str], principal: Principal) -> bool:
    """Is a source rolled out to `municipalities` (empty: everywhere) used for this caller?

    A clinician's request consults it only when their own municipality is listed (what it
    may return is still the policy's business: border, agreements). A citizen's innsyn covers
    their data wherever it is kept, so a citizen's request consults it wherever it is in use.
    """
    if not municipalities or principal.kind is PrincipalKind.CITIZEN:
        return True
    return principal.municipality in municipalities


def _requester(principal: Principal) -> Requester:
    return Requester(
        hpr_number=principal.hpr_number,
        role_code=principal.profession or None,
        orgnr=principal.legal_entity,
        point_of_care=principal.point_of_care,
        purpose_of_use=principal.purpose_of_use.value if principal.purpose_of_use else "TREAT",
        citizen=principal.kind is PrincipalKind.CITIZEN,
    )


def requested_categories(
    names: Sequence[str], plugins: Sequence[CategorySpec] = ()
) -> frozenset[AnyCategory]:
    """The categories a selection of Patient fields needs (alerts need two); `plugins` are
    the plugin categories, each behind its own field."""
    fields: dict[str, frozenset[AnyCategory]] = {**FIELD_CATEGORIES}
    fields.update((spec.field_name, frozenset({spec})) for spec in plugins)
    out: set[AnyCategory] = set()
    for name in names:
        out |= fields.get(name, frozenset())
    return frozenset(out)


FIELD_CATEGORIES: dict[str, frozenset[AnyCategory]] = {
    "alerts": frozenset({Category.TREATMENT_LIMITATIONS, Category.CRITICAL_INFORMATION}),
    "treatmentLimitations": frozenset({Category.TREATMENT_LIMITATIONS}),
    "criticalInformation": frozenset({Category.CRITICAL_INFORMATION}),
    "medications": frozenset({Category.MEDICATIONS}),
    "labResults": frozenset({Category.LAB_RESULTS}),
    "municipalServices": frozenset({Category.MUNICIPAL_SERVICES}),
    "conditions": frozenset({Category.CONDITIONS}),
    "documents": frozenset({Category.DOCUMENTS}),
}
