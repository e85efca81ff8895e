"""Decision tables for the profession x category matrix, purpose narrowing and the border."""

from __future__ import annotations

from dataclasses import replace

import pytest

from policies import Principal, PurposeOfUse, allowed_municipalities, decide_category
from policies.model import Rules
from tests.policies.people import (
    ALL_CATEGORIES,
    RULES,
    RULES_NO_AGREEMENTS,
    Outcome,
    citizen,
    clinician,
    outcome,
    privacy_officer,
    stranger,
)

# The default matrix (kodeverk 9060): who sees what under TREAT, and why (policies/defaults.toml).
MATRIX = {
    "LE": set(ALL_CATEGORIES),
    "SP": set(ALL_CATEGORIES) - {"documents"},
    "HF": {"municipal_services", "treatment_limitations", "critical_information", "medications",
           "demographics"},
    "AA": {"treatment_limitations", "critical_information", "medications", "conditions",
           "demographics"},
}

MATRIX_CASES = [
    pytest.param(
        profession,
        category,
        (True, "PERMITTED", "OK", False)
        if category in allowed
        else (False, "PROFESSION_NOT_PERMITTED", "DENIED", False),
        id=f"{profession}-{category}",
    )
    for profession, allowed in MATRIX.items()
    for category in ALL_CATEGORIES
]


@pytest.mark.parametrize(("profession", "category", "expected"), MATRIX_CASES)
def test_decide_category_follows_the_profession_matrix(
    profession: str, category: str, expected: Outcome
) -> None:
    principal = clinician(profession=profession)
    assert outcome(decide_category(principal, category, rules=RULES)) == expected


def test_helsefagarbeider_is_denied_lab_results_and_documents() -> None:
    principal = clinician(profession="HF")
    for category in ("lab_results", "documents"):
        decision = decide_category(principal, category, rules=RULES)
        assert (decision.allowed, decision.reason) == (False, "PROFESSION_NOT_PERMITTED")


def _case_handler(purpose: PurposeOfUse | None) -> Principal:
    return clinician(profession="", hpr_number=None, purpose_of_use=purpose)


COC = PurposeOfUse.COC
CASE_HANDLER_CASES = [
    pytest.param(
        category,
        (True, "PERMITTED", "OK", False)
        if category == "municipal_services"
        else (False, "PROFESSION_NOT_PERMITTED", "DENIED", False),
        id=f"coc-case-handler-{category}",
    )
    for category in ALL_CATEGORIES
]


@pytest.mark.parametrize(("category", "expected"), CASE_HANDLER_CASES)
def test_coc_case_handler_sees_services_only(category: str, expected: Outcome) -> None:
    assert outcome(decide_category(_case_handler(COC), category, rules=RULES)) == expected


CATEGORY_CASES = [
    pytest.param(_case_handler(PurposeOfUse.TREAT), "municipal_services",
                 (False, "PROFESSION_NOT_PERMITTED", "DENIED", False),
                 id="no-profession-without-coc-sees-nothing"),
    pytest.param(clinician(profession=None, purpose_of_use=COC), "municipal_services",
                 (True, "PERMITTED", "OK", False), id="profession-none-coc-services"),
    pytest.param(clinician(purpose_of_use=COC), "municipal_services",
                 (True, "PERMITTED", "OK", False), id="lege-coc-services"),
    pytest.param(clinician(purpose_of_use=COC), "lab_results",
                 (False, "PURPOSE_NOT_PERMITTED", "DENIED", False), id="lege-coc-narrowed"),
    pytest.param(clinician(profession="AA", purpose_of_use=COC), "medications",
                 (False, "PURPOSE_NOT_PERMITTED", "DENIED", False), id="ambulance-coc-narrowed"),
    pytest.param(clinician(purpose_of_use=PurposeOfUse.ETREAT), "documents",
                 (True, "PERMITTED", "OK", False), id="etreat-is-not-narrowed"),
    pytest.param(clinician(profession="AA", purpose_of_use=PurposeOfUse.BTG), "lab_results",
                 (False, "PROFESSION_NOT_PERMITTED", "DENIED", False),
                 id="btg-does-not-widen-the-matrix"),
    pytest.param(clinician(profession="XX"), "medications",
                 (False, "PROFESSION_NOT_PERMITTED", "DENIED", False), id="unknown-profession"),
    pytest.param(clinician(profession="XX", purpose_of_use=COC), "municipal_services",
                 (False, "PROFESSION_NOT_PERMITTED", "DENIED", False),
                 id="unknown-profession-coc"),
    pytest.param(clinician(), "vaccinations",
                 (False, "CATEGORY_NOT_CONFIGURED", "DENIED", False), id="plugin-not-configured"),
    pytest.param(clinician(purpose_of_use=None), "medications",
                 (False, "PURPOSE_MISSING", "DENIED", False), id="no-purpose"),
    pytest.param(citizen(), "vaccinations",
                 (False, "CATEGORY_NOT_CONFIGURED", "DENIED", False), id="citizen-plugin"),
    pytest.param(privacy_officer(), "medications",
                 (False, "ACCESS_LOG_ONLY", "DENIED", False), id="privacy-officer"),
    pytest.param(stranger(), "medications",
                 (False, "PRINCIPAL_UNKNOWN", "DENIED", False), id="unknown-kind"),
    *[
        pytest.param(citizen(), category, (True, "SELF", "OK", False), id=f"citizen-{category}")
        for category in ALL_CATEGORIES
    ],
]


@pytest.mark.parametrize(("principal", "category", "expected"), CATEGORY_CASES)
def test_decide_category(principal: Principal, category: str, expected: Outcome) -> None:
    assert outcome(decide_category(principal, category, rules=RULES)) == expected


def test_citizen_categories_are_configurable() -> None:
    rules = replace(RULES, citizen_categories=frozenset({"medications"}))
    decision = decide_category(citizen(), "documents", rules=rules)
    assert (decision.allowed, decision.reason) == (False, "CATEGORY_NOT_PERMITTED")
    assert decide_category(citizen(), "medications", rules=rules).allowed


def test_hand_built_rules_know_the_categories_in_their_tables() -> None:
    rules = Rules(categories_by_profession={"LE": frozenset({"medications"})})
    assert decide_category(clinician(), "medications", rules=rules).allowed
    assert decide_category(clinician(), "documents", rules=rules).reason == (
        "CATEGORY_NOT_CONFIGURED"
    )


TENANTS = ("0301", "4601", "5001")
MUNICIPALITY_CASES = [
    pytest.param(clinician(), RULES, {"0301", "4601"}, id="oslo-sees-bergen-by-agreement"),
    pytest.param(clinician(municipality="4601"), RULES, {"4601"}, id="bergen-not-the-reverse"),
    pytest.param(clinician(municipality="5001"), RULES, {"5001"}, id="trondheim-own-only"),
    pytest.param(clinician(), RULES_NO_AGREEMENTS, {"0301"}, id="oslo-without-agreement"),
    pytest.param(clinician(municipality=None), RULES, set(), id="no-municipality"),
    pytest.param(citizen(), RULES, set(TENANTS), id="citizen-all-tenants"),
    pytest.param(privacy_officer(), RULES, set(), id="privacy-officer-none"),
    pytest.param(stranger(), RULES, set(), id="unknown-kind-none"),
]


@pytest.mark.parametrize(("principal", "rules", "expected"), MUNICIPALITY_CASES)
def test_allowed_municipalities(principal: Principal, rules: Rules, expected: set[str]) -> None:
    assert allowed_municipalities(principal, rules=rules, tenants=TENANTS) == expected
