"""The judge stage as a decision table: withheld is never empty, EMPTY means nothing withheld.

Every row is one source answer (its status, the security labels of its items) judged for one
caller; the expected column is the category's status and reason. The same rule holds whether
the restriction is on the source (privacy state), on records (the connector's own RESTRICTED)
or on an item's label.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors import (
    Category,
    Coding,
    ConnectorSettings,
    PrivacyState,
    Provenance,
    SourceResult,
    Status,
    TreatmentLimitation,
)
from connectors.fanout import Outcome
from connectors.registry import Registered, Registry
from policies.model import PurposeOfUse
from schema.context import Services
from schema.pipeline.judge import judge
from schema.pipeline.plan import plan_patient
from tests.policies.people import HLR_PATIENT, REASON, RULES_NO_AGREEMENTS, citizen, clinician
from tests.schema.test_pipeline import Source

TL = Category.TREATMENT_LIMITATIONS
AT = datetime(2026, 12, 1, tzinfo=UTC)
ETREAT = clinician(purpose_of_use=PurposeOfUse.ETREAT)


def item(rid: str, *labels: str, municipality: str | None = "0301") -> TreatmentLimitation:
    return TreatmentLimitation(
        id=rid, code=Coding("http://snomed.info/sct", "304253006", "HLR-minus"),
        description="HLR-minus", status="active",
        provenance=Provenance("municipal", rid, AT, municipality=municipality),
        security=tuple(Coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", c)
                       for c in labels))


def judged(result: SourceResult, principal=None, reason: str | None = None):  # type: ignore[no-untyped-def]
    source = Source("municipal", {TL})
    services = Services(registry=Registry([Registered(source, ConnectorSettings("municipal"))]),
                        rules=RULES_NO_AGREEMENTS, tenants=("0301",), access_log=None)  # type: ignore[arg-type]
    plan = plan_patient(principal or clinician(), HLR_PATIENT, frozenset({TL}),
                        services=services, emergency_reason=reason)
    return judge(Outcome("municipal", result, None, 1.0), plan, rules=RULES_NO_AGREEMENTS)


CASES = [
    pytest.param([], None, None, (Status.EMPTY, None, 0), id="answered-nothing-is-empty"),
    pytest.param([item("a")], None, None, (Status.OK, None, 1), id="answered-something-is-ok"),
    pytest.param([item("a", "R")], None, None,
                 (Status.RESTRICTED, "SECURITY_LABEL_RESTRICTED", 0),
                 id="only-item-labelled-is-restricted-not-empty"),
    pytest.param([item("a"), item("b", "R")], None, None,
                 (Status.RESTRICTED, "SECURITY_LABEL_RESTRICTED", 1),
                 id="one-of-two-labelled-is-restricted-not-ok"),
    pytest.param([item("a", "R")], ETREAT, REASON, (Status.OK, None, 1),
                 id="emergency-with-reason-opens-the-label"),
    pytest.param([item("a", "R")], ETREAT, None,
                 (Status.RESTRICTED, "SECURITY_LABEL_RESTRICTED", 0),
                 id="emergency-purpose-without-reason-opens-nothing"),
    pytest.param([item("a", "R")], citizen(), None, (Status.OK, None, 1),
                 id="the-citizen-sees-their-own-labelled-item"),
    pytest.param([item("a", "V")], None, None, (Status.DENIED, "SECURITY_LABEL_DENIED", 0),
                 id="never-shown-label-is-denied-not-empty"),
    pytest.param([item("a"), item("b", "V")], None, None,
                 (Status.PARTIAL, "SECURITY_LABEL_DENIED", 1),
                 id="never-shown-label-next-to-others-is-partial"),
    pytest.param([item("a", municipality="4601")], None, None,
                 (Status.DENIED, "MUNICIPAL_BORDER", 0),
                 id="an-item-from-across-the-border-is-denied-not-empty"),
]


@pytest.mark.parametrize(("items", "principal", "reason", "expected"), CASES)
def test_item_labels_decide_the_category_status(items, principal, reason, expected) -> None:  # type: ignore[no-untyped-def]
    judgement = judged(SourceResult.of("municipal", {TL: tuple(items)}), principal, reason)
    answer = judgement.answers[TL]
    assert (answer.status, answer.reason, len(judgement.items[TL])) == expected


def test_records_the_connector_withheld_are_restricted_with_the_emergency_reason() -> None:
    result = SourceResult.of("municipal", {TL: ()}, category_status={TL: Status.RESTRICTED},
                             detail="The patient has restricted records; they were withheld.")
    answer = judged(result).answers[TL]
    assert (answer.status, answer.reason) == (Status.RESTRICTED, "RESTRICTED_NEEDS_EMERGENCY")


def test_a_restricted_source_is_restricted_with_the_emergency_reason() -> None:
    result = SourceResult.of("municipal", {TL: ()}, privacy=PrivacyState(restricted=True))
    answer = judged(result).answers[TL]
    assert (answer.status, answer.reason) == (Status.RESTRICTED, "RESTRICTED_NEEDS_EMERGENCY")


def test_an_opened_item_label_marks_the_judgement_as_an_emergency_opening() -> None:
    judgement = judged(SourceResult.of("municipal", {TL: (item("a", "R"),)}), ETREAT, REASON)
    assert judgement.emergency is True
    assert judged(SourceResult.of("municipal", {TL: (item("a"),)}), ETREAT, REASON
                  ).emergency is False


@pytest.mark.parametrize(("status", "items", "expected"), [
    (Status.PARTIAL, [item("a")], Status.PARTIAL),
    (Status.INVALID, [], Status.INVALID),
    (Status.UNAVAILABLE, [], Status.UNAVAILABLE),
    (Status.TIMEOUT, [], Status.TIMEOUT),
], ids=["partial", "invalid", "unavailable", "timeout"])
def test_a_categorys_own_reason_is_its_answer(status: Status, items: list, expected: Status
                                              ) -> None:  # type: ignore[type-arg]
    """One category that could not be read whole says so with the connector's reason, next to
    the source-level detail of a source that otherwise answered."""
    from connectors import Reason

    reason = Reason("UNREADABLE_RECORDS", "Municipal store '0301' sent 1 Consent record "
                                          "Kilde could not read; not shown.")
    result = SourceResult.of("municipal", {TL: tuple(items)}, category_status={TL: status},
                             category_reason={TL: reason}, detail="Another sentence.")
    answer = judged(result).answers[TL]
    assert (answer.status, answer.reason, answer.detail) == (expected, reason.code, reason.detail)


@pytest.mark.parametrize(("status", "code"), [
    (Status.INVALID, "UPSTREAM_INVALID"), (Status.UNAVAILABLE, "UPSTREAM_UNAVAILABLE"),
    (Status.TIMEOUT, "UPSTREAM_TIMEOUT")])
def test_a_failed_category_without_its_own_reason_has_the_upstream_code(status: Status,
                                                                        code: str) -> None:
    result = SourceResult.of("municipal", {TL: ()}, category_status={TL: status})
    answer = judged(result).answers[TL]
    assert (answer.status, answer.reason) == (status, code)
