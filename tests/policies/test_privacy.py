"""Decision tables for the patient's own choices (block, reserve, restrict) and item labels."""

from __future__ import annotations

import pytest

from policies import ItemFacts, Principal, PrivacyFacts, PurposeOfUse, decide_item, decide_privacy
from tests.policies.people import (
    REASON,
    RULES,
    Outcome,
    citizen,
    clinician,
    outcome,
    privacy_officer,
    stranger,
)

ETREAT = clinician(purpose_of_use=PurposeOfUse.ETREAT)
BTG = clinician(purpose_of_use=PurposeOfUse.BTG)
TREAT = clinician()

BLOCKED_ME = PrivacyFacts("kjernejournal", blocked_requester=True, any_blocked=True)
BLOCKED_OTHER = PrivacyFacts("kjernejournal", any_blocked=True)
RESERVED = PrivacyFacts("kjernejournal", reserved=True)
RESTRICTED = PrivacyFacts("proevesvar", restricted=True)
OPENED = PrivacyFacts("proevesvar", restricted=True, restriction_opened=True)
PLAIN = PrivacyFacts("pll")

PRIVACY_CASES = [
    pytest.param(BTG, BLOCKED_ME, REASON,
                 (False, "PATIENT_BLOCKED_REQUESTER", "BLOCKED", False),
                 id="btg-never-opens-a-blocking"),
    pytest.param(ETREAT, BLOCKED_ME, REASON,
                 (False, "PATIENT_BLOCKED_REQUESTER", "BLOCKED", False), id="etreat-blocked"),
    pytest.param(TREAT, PrivacyFacts("kjernejournal", blocked_requester=True, restricted=True,
                                     restriction_opened=True), None,
                 (False, "PATIENT_BLOCKED_REQUESTER", "BLOCKED", False),
                 id="blocking-wins-over-an-opening"),
    pytest.param(BTG, BLOCKED_OTHER, REASON,
                 (False, "SOURCE_SHARES_NOTHING_WHEN_BLOCKED", "BLOCKED", False),
                 id="btg-another-professional-blocked"),
    pytest.param(TREAT, BLOCKED_OTHER, None,
                 (False, "SOURCE_SHARES_NOTHING_WHEN_BLOCKED", "BLOCKED", False),
                 id="treat-another-professional-blocked"),
    pytest.param(BTG, RESERVED, REASON, (False, "PATIENT_RESERVED", "RESERVED", False),
                 id="btg-reserved"),
    pytest.param(citizen(), RESERVED, None, (False, "PATIENT_RESERVED", "RESERVED", False),
                 id="citizen-reserved"),
    pytest.param(TREAT, RESTRICTED, None,
                 (False, "RESTRICTED_NEEDS_EMERGENCY", "RESTRICTED", False),
                 id="treat-restricted"),
    pytest.param(BTG, RESTRICTED, REASON,
                 (False, "RESTRICTED_NEEDS_EMERGENCY", "RESTRICTED", False),
                 id="btg-restricted-but-not-opened"),
    pytest.param(ETREAT, OPENED, REASON, (True, "EMERGENCY_OPENING", "OK", True),
                 id="etreat-with-reason-opened"),
    pytest.param(BTG, OPENED, REASON, (True, "EMERGENCY_OPENING", "OK", True),
                 id="btg-with-reason-opened"),
    pytest.param(ETREAT, OPENED, None,
                 (False, "RESTRICTED_OPENED_WITHOUT_BASIS", "RESTRICTED", False),
                 id="opened-upstream-without-reason"),
    pytest.param(BTG, OPENED, "  ",
                 (False, "RESTRICTED_OPENED_WITHOUT_BASIS", "RESTRICTED", False),
                 id="opened-upstream-blank-reason"),
    pytest.param(TREAT, OPENED, REASON,
                 (False, "RESTRICTED_OPENED_WITHOUT_BASIS", "RESTRICTED", False),
                 id="opened-upstream-treat-with-reason"),
    pytest.param(citizen(), RESTRICTED, None, (True, "SELF", "OK", False),
                 id="citizen-own-restricted"),
    pytest.param(citizen(), OPENED, None, (True, "SELF", "OK", False),
                 id="citizen-own-opened"),
    pytest.param(TREAT, PLAIN, None, (True, "PERMITTED", "OK", False), id="nothing-to-hide"),
    pytest.param(privacy_officer(), PLAIN, None, (False, "ACCESS_LOG_ONLY", "DENIED", False),
                 id="privacy-officer"),
    pytest.param(stranger(), PLAIN, None, (False, "PRINCIPAL_UNKNOWN", "DENIED", False),
                 id="unknown-kind"),
]


@pytest.mark.parametrize(("principal", "facts", "reason", "expected"), PRIVACY_CASES)
def test_decide_privacy(
    principal: Principal, facts: PrivacyFacts, reason: str | None, expected: Outcome
) -> None:
    assert outcome(decide_privacy(principal, facts, emergency_reason=reason)) == expected


OSLO = frozenset({"0301"})
OSLO_BERGEN = frozenset({"0301", "4601"})


def _item(municipality: str | None = "0301", *labels: str) -> ItemFacts:
    return ItemFacts("municipal", "conditions", municipality, frozenset(labels))


ITEM_CASES = [
    pytest.param(TREAT, _item(), OSLO, None, (True, "PERMITTED", "OK", False), id="plain"),
    pytest.param(TREAT, _item(None), OSLO, None, (True, "PERMITTED", "OK", False),
                 id="national-item-has-no-border"),
    pytest.param(BTG, _item("0301", "V"), OSLO, REASON,
                 (False, "SECURITY_LABEL_DENIED", "DENIED", False), id="btg-very-restricted"),
    pytest.param(citizen(), _item("0301", "V"), OSLO, None,
                 (False, "SECURITY_LABEL_DENIED", "DENIED", False), id="citizen-very-restricted"),
    pytest.param(TREAT, _item("0301", "R"), OSLO, None,
                 (False, "SECURITY_LABEL_RESTRICTED", "RESTRICTED", False), id="treat-restricted"),
    pytest.param(TREAT, _item("0301", "R"), OSLO, REASON,
                 (False, "SECURITY_LABEL_RESTRICTED", "RESTRICTED", False),
                 id="treat-reason-is-no-emergency"),
    pytest.param(ETREAT, _item("0301", "R"), OSLO, None,
                 (False, "SECURITY_LABEL_RESTRICTED", "RESTRICTED", False),
                 id="etreat-without-reason"),
    pytest.param(ETREAT, _item("0301", "R"), OSLO, REASON,
                 (True, "EMERGENCY_OPENING", "OK", True), id="etreat-with-reason"),
    pytest.param(BTG, _item("0301", "R"), OSLO, REASON,
                 (True, "EMERGENCY_OPENING", "OK", True), id="btg-with-reason"),
    pytest.param(citizen(), _item("0301", "R"), OSLO, None, (True, "SELF", "OK", False),
                 id="citizen-own-restricted"),
    pytest.param(TREAT, _item("0301", "N"), OSLO, None, (True, "PERMITTED", "OK", False),
                 id="unlisted-label"),
    pytest.param(TREAT, _item("4601"), OSLO, None,
                 (False, "MUNICIPAL_BORDER", "DENIED", False), id="across-the-border"),
    pytest.param(TREAT, _item("4601"), OSLO_BERGEN, None, (True, "PERMITTED", "OK", False),
                 id="across-by-agreement"),
    pytest.param(BTG, _item("4601", "R"), OSLO, REASON,
                 (False, "MUNICIPAL_BORDER", "DENIED", False), id="btg-does-not-cross-borders"),
    pytest.param(privacy_officer(), _item(), OSLO, None,
                 (False, "ACCESS_LOG_ONLY", "DENIED", False), id="privacy-officer"),
    pytest.param(stranger(), _item(), OSLO, None,
                 (False, "PRINCIPAL_UNKNOWN", "DENIED", False), id="unknown-kind"),
]


@pytest.mark.parametrize(("principal", "facts", "municipalities", "reason", "expected"),
                         ITEM_CASES)
def test_decide_item(
    principal: Principal,
    facts: ItemFacts,
    municipalities: frozenset[str],
    reason: str | None,
    expected: Outcome,
) -> None:
    decision = decide_item(
        principal, facts, rules=RULES, municipalities=municipalities, emergency_reason=reason
    )
    assert outcome(decision) == expected
