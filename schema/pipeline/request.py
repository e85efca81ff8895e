"""One patient in one request: the stages wired together, lazily, for the field resolvers.

Sits under the `patient` resolver and behind the `Patient` fields. `PatientRequest.start()`
makes the `Plan` and starts the `Fetches`; the `patient` resolver awaits `fetched()` (every
source's outcome, within the deadline: the answer is one document and waits for them anyway),
then each field reads `items_now(category)`, which judges each outcome once (`judge`) and
notes what it handed over (`items(category)` awaits only that category's sources first);
`statuses_now()` gives the `sources` rows; `ledger()` returns what was delivered as a
`PatientLedger`. The logic of each stage lives in its own module; this one
only keeps the order and remembers each source's judgement for the other fields.

>>> patient = PatientRequest.start(ctx, nin, requested, reason="CARE_RELATIONSHIP")  # doctest: +SKIP
>>> await patient.fetched()                                                            # doctest: +SKIP
>>> patient.items_now(Category.TREATMENT_LIMITATIONS)                                 # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from connectors.fanout import Outcome
from connectors.model import AnyCategory, Category, Status
from schema.errors import ForbiddenError, error_dict
from schema.pipeline.fetch import Fetches
from schema.pipeline.home import Home, home_of
from schema.pipeline.judge import Judgement, blocked_everywhere, judge
from schema.pipeline.ledger import Delivery, PatientLedger
from schema.pipeline.plan import Plan, StatusRow, border_rows, plan_patient
from schema.shape.terminology import Terminology

if TYPE_CHECKING:
    from schema.context import Context


class PatientRequest:
    """The plan, its running fetches, the judgements made so far and what was delivered."""

    def __init__(self, ctx: Context, plan: Plan, fetches: Fetches, *,
                 path: tuple[str | int, ...] = ("patient",), fresh_refused: bool = False) -> None:
        self.plan = plan
        # what the stages need from the request, not the Context itself: the Context holds
        # this object (`ctx.patients`), so a reference back would make a cycle, and with it
        # the request's whole answer (items, judgements, rows) garbage that only the cyclic
        # collector frees, in pauses of tens of ms (bench.cpu, gc.callbacks, 2026-12-02)
        self._services = ctx.services
        self._errors = ctx.errors
        self._fetches = fetches
        self._path = path
        self._fresh_refused = fresh_refused
        self._judged: dict[str, Judgement] = {}
        self._probes = sorted(plan.block_sources)
        # (category, source, store municipality or "") -> (status, items)
        self._delivered: dict[tuple[AnyCategory, str, str], tuple[Status, int]] = {}
        self._answers: dict[tuple[str, str, str, str, str], StatusRow] = {}
        self._reported: set[str] = set()
        self._emergency = False  # a restriction was opened for a field that was resolved
        self._blocked_by: str | None = None  # the source that said the caller is blocked
        self._border: tuple[StatusRow, ...] | None = None
        self._home: Home | None = None  # what the registry said, once a field needed it

    @classmethod
    def start(cls, ctx: Context, nin: str, requested: frozenset[AnyCategory], *,
              reason: str = "PERMITTED", emergency_reason: str | None = None,
              since: date | None = None, path: tuple[str | int, ...] = ("patient",),
              fresh_refused: bool = False) -> PatientRequest:
        """Plan, say which categories are denied, and start every allowed fetch now.

        `path` is where this patient sits in the response (for the completeness summary);
        `fresh_refused` says fresh data was asked for and refused by its rate limit."""
        services = ctx.services
        plan = plan_patient(ctx.principal, nin, requested, services=services, reason=reason,
                            emergency_reason=emergency_reason, since=since, fresh=ctx.fresh,
                            request_id=ctx.request_id)
        for category, decision in plan.denied.items():
            ctx.errors.append(error_dict(ForbiddenError(
                f"You may not see {category.value!r} for this patient.",
                category=category.value, reason=decision.reason,
            )))
        fetches = Fetches.start(plan, remaining=ctx.remaining(), activity=services.activity,
                                credentials=ctx.credentials)
        return cls(ctx, plan, fetches, path=path, fresh_refused=fresh_refused)

    async def judgement(self, source: str) -> Judgement:
        """`source`'s outcome judged (once; later calls reuse it)."""
        return self._judge(source, await self._fetches.outcome(source))

    async def fetched(self) -> None:
        """Once every planned fetch has its outcome: the answer is one JSON document, so it
        waits for every selected source anyway; after this the fields read their items
        synchronously (`items_now`, `statuses_now`). Bounded by the request deadline: each
        fetch is bounded by its own budget (`schema.pipeline.fetch`)."""
        await self._fetches.settled()

    def _judge(self, source: str, outcome: Outcome) -> Judgement:
        if source not in self._judged:
            self._judged[source] = judge(outcome, self.plan, rules=self._services.rules)
            asked_for_data = bool(self.plan.fetches[source].categories)  # not a block probe
            if outcome.error is not None and asked_for_data and source not in self._reported:
                self._reported.add(source)
                self._errors.append(error_dict(outcome.error))
        return self._judged[source]

    async def home(self) -> Home:
        """Where the registry says the patient lives (asked in the plan for routing)."""
        await self._fetches.outcomes(self._home_sources())
        return self._home_now()

    def _home_sources(self) -> list[str]:
        return [] if self.plan.home_source is None else [self.plan.home_source]

    def _home_now(self) -> Home:
        if self.plan.home_source is None:
            return home_of(None)
        return home_of(self._fetches.outcome_now(self.plan.home_source))

    async def border(self) -> tuple[StatusRow, ...]:
        """The rows the home municipality adds (the home store not asked, or unknown)."""
        await self._fetches.outcomes(self._home_sources())
        return self._border_now()

    def _border_now(self) -> tuple[StatusRow, ...]:
        if self._border is None:
            self._home = self._home_now()
            self._border = border_rows(self.plan, self._home)
        return self._border

    def _bordered(self, category: AnyCategory) -> bool:
        return category is Category.DEMOGRAPHICS or any(
            category in store.categories for store in self.plan.store_sources)

    async def items(self, category: AnyCategory) -> list[Any]:
        """The permitted items of one category from every source that serves it, once those
        sources (and the registry, for the border; the block probes) have answered."""
        if self._bordered(category):
            await self._fetches.outcomes(self._home_sources())
        if category not in self.plan.denied:
            await self._fetches.outcomes(self._with_probes(self.plan.sources_of(category)))
        return self.items_now(category)

    def items_now(self, category: AnyCategory) -> list[Any]:
        """`items(category)` once the sources it needs have answered (after `fetched()`)."""
        border = ([row for row in self._border_now() if row.category == category]
                  if self._bordered(category) else [])
        not_asked = [row for row in (*self.plan.not_asked, *border) if row.category == category]
        for row in not_asked:
            self._note(row)
        if category in self.plan.denied:
            for row in not_asked:
                self._delivered.setdefault((category, row.source, ""), (row.status, 0))
            return []
        sources = self.plan.sources_of(category)
        judged = self._judged_with_blocks(sources)
        collected: list[Any] = []
        for source, judgement in zip(sources, judged, strict=True):
            found = judgement.items.get(category, ())
            status = judgement.answers[category].status
            for store, count in _per_store(found).items():
                self._delivered[(category, source, store)] = (status, count)
            self._note(_row(judgement, category))
            self._emergency = self._emergency or judgement.emergency
            collected.extend(found)
        return collected

    async def statuses(self) -> list[StatusRow]:
        """Every source consulted (or deliberately not consulted) for this patient."""
        await self._fetches.outcomes([*self._home_sources(), *self._with_probes(self._asked())])
        return self.statuses_now()

    def statuses_now(self) -> list[StatusRow]:
        """`statuses()` once every source has answered (after `fetched()`)."""
        rows = [*self.plan.not_asked, *self._border_now()]
        for judgement in self._judged_with_blocks(self._asked()):
            planned = self.plan.fetches[judgement.source]
            rows.extend(_row(judgement, category)
                        for category in sorted(planned.categories, key=lambda c: c.value))
        return rows

    def _asked(self) -> list[str]:
        """The sources asked for data (not only for blocks or routing)."""
        return [s for s, planned in self.plan.fetches.items() if planned.categories]

    def _with_probes(self, sources: list[str]) -> list[str]:
        """`sources` and then the block probes not among them."""
        return [*sources, *(s for s in self._probes if s not in sources)]

    def _judged_with_blocks(self, sources: list[str]) -> list[Judgement]:
        """The judgements of `sources`, after the patient's blocks: a block of the caller
        reported by any block source (`Plan.block_sources`) withholds every source's data.
        Every one of them (and of the probes) has answered."""
        wanted = self._with_probes(sources)
        outcome = self._fetches.outcome_now
        judged = [self._judge(s, outcome(s)) for s in wanted]
        blocker = next((j.source for j in judged if j.blocks_requester), None)
        mine = judged[:len(sources)]
        if blocker is None or not self._services.rules.block_everywhere:
            return mine
        self._blocked_by = blocker
        return [blocked_everywhere(j, blocker) for j in mine]

    def _note(self, row: StatusRow) -> None:
        # a not-asked row (the home store, an unknown home) sits beside the source's own
        self._answers[(row.category.value, row.source, row.municipality or "",
                       row.status.value, row.reason or "")] = row

    @property
    def terminology(self) -> Terminology:
        """What treatment-limitation codes mean, for the shape stage."""
        return self._services.terminology

    def cancel(self) -> None:
        self._fetches.cancel()

    def ledger(self) -> PatientLedger:
        """What this patient request delivered, as a value."""
        deliveries = tuple(
            Delivery(category, source, status, count, store or None)
            for (category, source, store), (status, count) in sorted(
                self._delivered.items(), key=lambda kv: (kv[0][0].value, *kv[0][1:]))
        )
        return PatientLedger(
            nin=self.plan.nin,
            reason=self.plan.reason,
            deliveries=deliveries,
            denied=dict(self.plan.denied),
            emergency=self._emergency,
            blocked_by=self._blocked_by,
            emergency_reason=self.plan.emergency_reason,
            fetches=self._fetches.records(),
            answers=tuple(self._answers[key] for key in sorted(self._answers)),
            path=self._path,
            fresh_refused=self._fresh_refused,
            home_municipality=self._home.municipality if self._home else None,
        )


def _per_store(found: Sequence[Any]) -> dict[str, int]:
    """Items per store municipality ("" for a national source's); nothing found: one zero
    delivery. A municipal source that answers from two stores delivered two municipalities'
    data, so the audit says so (each municipality's privacy officer oversees its own)."""
    counts: dict[str, int] = {}
    for item in found:
        provenance = getattr(item, "provenance", None)
        store = getattr(provenance, "municipality", None) or ""
        counts[store] = counts.get(store, 0) + 1
    return counts or {"": 0}


def _row(judgement: Judgement, category: AnyCategory) -> StatusRow:
    """The `sources` row of one judged source for one category."""
    answer = judgement.answers[category]
    outcome = judgement.outcome
    result = outcome.result
    return StatusRow(
        source=judgement.source,
        category=category,
        status=answer.status,
        latency_ms=round(outcome.latency_ms, 1),
        fetched_at=result.fetched_at if result else datetime.now(UTC),
        from_cache=bool(result and result.from_cache),
        detail=answer.detail,
        reason=answer.reason,
    )
