"""Every reason code the policies can give is listed, stable, and exercised by a decision table."""

from __future__ import annotations

import re

from policies import REASON_CODES
from tests.policies import test_access, test_categories, test_privacy, test_write


def _reasons(*tables: list) -> set[str]:  # type: ignore[type-arg]
    return {case.values[-1][1] for table in tables for case in table}


def test_every_reason_code_is_covered_by_a_decision_table() -> None:
    covered = _reasons(
        test_access.PATIENT_CASES,
        test_access.ACCESS_LOG_CASES,
        test_categories.MATRIX_CASES,
        test_categories.CATEGORY_CASES,
        test_categories.CASE_HANDLER_CASES,
        test_privacy.PRIVACY_CASES,
        test_privacy.ITEM_CASES,
        test_write.WRITE_MATRIX_CASES,
        test_write.WRITE_CASES,
    ) | {"CATEGORY_NOT_PERMITTED"}  # test_citizen_categories_are_configurable
    assert covered == REASON_CODES


def test_reason_codes_are_screaming_snake() -> None:
    assert all(re.fullmatch(r"[A-Z]+(_[A-Z]+)*", code) for code in REASON_CODES)
