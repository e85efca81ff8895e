"""Judge, the third stage: the policies over each source's outcome, once per source.

Sits between the fetch stage and the shaping of items. `judge()` takes one source's `Outcome`
and the `Plan` and returns a `Judgement`: the items the caller may see per category and, per
category, an `Answer` (status, stable reason code, detail). A failed fetch becomes
TIMEOUT/UNAVAILABLE/INVALID; the source's in-band privacy answer (blocked, reserved,
restricted) is decided by `decide_privacy`; each item by `decide_item` (security labels, the
municipal border). Pure: no IO, no clock.

Withheld is never empty (docs/architecture.md, principle 4): when the policies withhold items that an
emergency access (nødtilgang) could open, the category is RESTRICTED with the reason, whether
the restriction is on the source, on records (the connector says RESTRICTED) or on an item's
label; items withheld for good (a `V` label, another municipality's store) make it DENIED,
or PARTIAL when other items were delivered. EMPTY means the source answered and nothing was
withheld.

>>> judgement = judge(outcome, plan, rules=rules)   # doctest: +SKIP
>>> judgement.status[Category.TREATMENT_LIMITATIONS]  # doctest: +SKIP
<Status.OK: 'OK'>
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import Reason
from connectors.fanout import Outcome
from connectors.model import AnyCategory, Status
from policies import decide_item, decide_privacy, reasons
from policies.model import Decision, ItemFacts, PrivacyFacts, Rules
from schema.pipeline.plan import Plan

ERROR_STATUS = {
    "UPSTREAM_TIMEOUT": Status.TIMEOUT,
    "UPSTREAM_UNAVAILABLE": Status.UNAVAILABLE,
    "UPSTREAM_INVALID": Status.INVALID,
    "UPSTREAM_REJECTED": Status.UNAVAILABLE,
}
# What a connector's own status means, as a reason code (statuses of a plain answer have none).
STATUS_REASON = {
    Status.TIMEOUT: "UPSTREAM_TIMEOUT",
    Status.UNAVAILABLE: "UPSTREAM_UNAVAILABLE",
    Status.INVALID: "UPSTREAM_INVALID",
    Status.PARTIAL: "PARTIAL_ANSWER",
    Status.STALE: "STALE",
    Status.RESTRICTED: reasons.RESTRICTED_NEEDS_EMERGENCY,
    Status.RESERVED: reasons.PATIENT_RESERVED,
    Status.BLOCKED: reasons.SOURCE_SHARES_NOTHING_WHEN_BLOCKED,
}
# A source-level answer that already says nothing was handed over; labels cannot change it.
_NO_LABELS: frozenset[str] = frozenset()
_NO_ANSWER = frozenset({Status.TIMEOUT, Status.UNAVAILABLE, Status.INVALID, Status.DENIED,
                        Status.RESERVED, Status.BLOCKED})


@dataclass(frozen=True, slots=True)
class Answer:
    """How one source answered for one category after policy.

    `reason` is a stable code (a policy reason, an `UPSTREAM_*` code, STALE, ...; None for a
    plain OK/EMPTY); `withheld` counts items the policies held back.
    """

    status: Status
    reason: str | None = None
    detail: str | None = None
    withheld: int = 0


@dataclass(frozen=True)
class Judgement:
    """A source's outcome after policy: permitted items and an `Answer` per category.

    `emergency` marks that something restricted was opened under ETREAT/BTG with a reason
    (specially audited).
    """

    outcome: Outcome
    items: Mapping[AnyCategory, tuple[Any, ...]]
    answers: Mapping[AnyCategory, Answer]
    emergency: bool = False
    blocks_requester: bool = False  # the source says the patient has blocked this caller

    @property
    def source(self) -> str:
        return self.outcome.source

    @property
    def status(self) -> dict[AnyCategory, Status]:
        return {c: a.status for c, a in self.answers.items()}

    @property
    def detail(self) -> str | None:
        """The source-level sentence (or reason code) for `SourceStatus.detail`."""
        return next((a.detail for a in self.answers.values() if a.detail), None)


def judge(outcome: Outcome, plan: Plan, *, rules: Rules) -> Judgement:
    """Judge one source's outcome for the categories `plan` asked of it."""
    wanted = plan.fetches[outcome.source].categories
    if outcome.error is not None:
        error = outcome.error
        answer = Answer(ERROR_STATUS.get(error.code, Status.UNAVAILABLE), error.code,
                        error.message)
        return Judgement(outcome, {c: () for c in wanted}, {c: answer for c in wanted})
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
    blocks = privacy.blocked_requester
    if not decision.allowed:
        answer = Answer(Status(decision.status), decision.reason, decision.reason)
        return Judgement(outcome, {c: () for c in wanted}, {c: answer for c in wanted},
                         blocks_requester=blocks)
    emergency = decision.emergency
    items: dict[AnyCategory, tuple[Any, ...]] = {}
    answers: dict[AnyCategory, Answer] = {}
    for category in wanted:
        kept: list[Any] = []
        openable: list[str] = []  # reasons of items an emergency could open
        closed: list[str] = []  # reasons of items withheld for good
        # decide_item is pure: items with the same facts (store, labels) get the same verdict,
        # so it is asked once per distinct facts, not once per item
        verdicts: dict[tuple[str | None, frozenset[str]], Decision] = {}
        for item in result.items.get(category, ()):
            security = item.security
            labels = frozenset(label.code for label in security) if security else _NO_LABELS
            municipality = item.provenance.municipality
            verdict = verdicts.get((municipality, labels))
            if verdict is None:
                verdict = verdicts[(municipality, labels)] = decide_item(
                    plan.principal,
                    ItemFacts(source, category.value, municipality, labels),
                    rules=rules, municipalities=plan.municipalities,
                    emergency_reason=plan.emergency_reason,
                    emergency_municipalities=plan.emergency_municipalities,
                )
            if verdict.allowed:
                kept.append(item)
                emergency = emergency or verdict.emergency
            elif verdict.status == Status.RESTRICTED.value:
                openable.append(verdict.reason)
            else:
                closed.append(verdict.reason)
        items[category] = tuple(kept)
        answers[category] = _answer(result.status_for(category), result.reason_for(category),
                                    result.detail, kept, openable, closed)
    return Judgement(outcome, items, answers, emergency=emergency, blocks_requester=blocks)


def blocked_everywhere(judgement: Judgement, by: str) -> Judgement:
    """`judgement` withheld because the patient blocked the caller at source `by`: a block is
    the patient's choice about a person, so it holds in every source of the request."""
    if judgement.source == by and all(a.status is Status.BLOCKED
                                      for a in judgement.answers.values()):
        return judgement
    code = reasons.PATIENT_BLOCKED_REQUESTER  # as detail too, like every policy refusal
    answer = Answer(Status.BLOCKED, code, code)
    return Judgement(judgement.outcome, {c: () for c in judgement.answers},
                     {c: answer for c in judgement.answers}, blocks_requester=True)


def _answer(status: Status, reason: Reason | None, detail: str | None, kept: list[Any],
            openable: list[str], closed: list[str]) -> Answer:
    """One category's answer; the connector's own reason for it (`SourceResult.category_reason`)
    wins over the status's generic code and the source-level detail."""
    withheld = len(openable) + len(closed)
    code = reason.code if reason else STATUS_REASON.get(status)
    detail = reason.detail if reason else detail
    if status in _NO_ANSWER:
        return Answer(status, code, detail, withheld)
    if openable:
        return Answer(Status.RESTRICTED, openable[0], openable[0], withheld)
    if closed:
        return Answer(Status.PARTIAL if kept else Status.DENIED, closed[0], closed[0], withheld)
    if status is Status.OK and not kept:
        status = Status.EMPTY
    return Answer(status, code, detail)
