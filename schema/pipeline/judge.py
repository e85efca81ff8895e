"""Judge, the third stage: the policies over each source's outcome, once per source.

Sits between the fetch stage and the shaping of items. `judge()` takes one source's `Outcome`
and the `Plan` and returns a `Judgement`: the items the caller may see per category and a
status per category. A failed fetch becomes TIMEOUT/UNAVAILABLE/INVALID; the source's in-band
privacy answer (blocked, reserved, restricted) is decided by `decide_privacy`; each item by
`decide_item` (security labels, the municipal border). Pure: no IO, no clock.

>>> judgement = judge(outcome, plan, rules=rules)   # doctest: +SKIP
>>> judgement.status[Category.TREATMENT_LIMITATIONS]  # doctest: +SKIP
<Status.OK: 'OK'>
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.fanout import Outcome
from connectors.model import AnyCategory, Status
from policies import decide_item, decide_privacy
from policies.model import ItemFacts, PrivacyFacts, Rules
from schema.pipeline.plan import Plan

ERROR_STATUS = {
    "UPSTREAM_TIMEOUT": Status.TIMEOUT,
    "UPSTREAM_UNAVAILABLE": Status.UNAVAILABLE,
    "UPSTREAM_INVALID": Status.INVALID,
    "UPSTREAM_REJECTED": Status.UNAVAILABLE,
}


@dataclass(frozen=True)
class Judgement:
    """A source's outcome after policy: permitted items and a status per category.

    `emergency` marks that something restricted was opened under ETREAT/BTG with a reason
    (specially audited); `detail` is one sentence or a reason code for `SourceStatus.detail`.
    """

    outcome: Outcome
    items: Mapping[AnyCategory, tuple[Any, ...]]
    status: Mapping[AnyCategory, Status]
    detail: str | None = None
    emergency: bool = False

    @property
    def source(self) -> str:
        return self.outcome.source


def judge(outcome: Outcome, plan: Plan, *, rules: Rules) -> Judgement:
    """Judge one source's outcome for the categories `plan` asked of it."""
    wanted = plan.fetches[outcome.source].categories
    if outcome.error is not None:
        status = ERROR_STATUS.get(outcome.error.code, Status.UNAVAILABLE)
        return Judgement(outcome, {c: () for c in wanted}, {c: status for c in wanted},
                         detail=outcome.error.message)
    result = outcome.result
    assert result is not None  # an Outcome has a result or an error
    source = outcome.source
    privacy = result.privacy
    decision = decide_privacy(
        plan.principal,
        PrivacyFacts(source, privacy.reserved, privacy.restricted, privacy.restriction_opened,
                     privacy.blocked_requester, privacy.any_blocked),
        emergency_reason=plan.emergency_reason,
    )
    if not decision.allowed:
        status = Status(decision.status)
        return Judgement(outcome, {c: () for c in wanted}, {c: status for c in wanted},
                         detail=decision.reason)
    emergency = decision.emergency
    items: dict[AnyCategory, tuple[Any, ...]] = {}
    statuses: dict[AnyCategory, Status] = {}
    for category in wanted:
        kept = []
        for item in result.items.get(category, ()):
            verdict = decide_item(
                plan.principal,
                ItemFacts(source, category.value, item.provenance.municipality,
                          frozenset(label.code for label in item.security)),
                rules=rules, municipalities=plan.municipalities,
                emergency_reason=plan.emergency_reason,
            )
            if verdict.allowed:
                kept.append(item)
                emergency = emergency or verdict.emergency
        items[category] = tuple(kept)
        status = result.status_for(category)
        if status is Status.OK and not kept:
            status = Status.EMPTY  # everything hidden: say nothing more than "empty"
        statuses[category] = status
    return Judgement(outcome, items, statuses, detail=result.detail, emergency=emergency)
