"""Decision tables for writes: profession x category x write, purpose, the municipal border,
and the patient rule a read has (deny by default)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from policies import PrincipalKind, PurposeOfUse, decide_write, load_rules, writable_municipalities
from tests.policies.people import (
    HLR_PATIENT,
    NOW,
    RULES,
    Outcome,
    citizen,
    clinician,
    outcome,
    privacy_officer,
    stranger,
)

WRITES = ("treatment_limitations", "documents", "medications")
# The default write matrix (policies/defaults.toml): who records what under TREAT/ETREAT
WRITE_MATRIX = {
    "LE": set(WRITES),
    "SP": {"documents", "medications"},
    "HF": {"medications"},
    "AA": set(),
    "": set(),  # a case handler
}
PERMIT: Outcome = (True, "WRITE_PERMITTED", "OK", False)
NOT_PERMITTED: Outcome = (False, "WRITE_NOT_PERMITTED", "DENIED", False)

WRITE_MATRIX_CASES = [
    pytest.param(profession, category, PERMIT if category in allowed else NOT_PERMITTED,
                 id=f"{profession or 'none'}-{category}")
    for profession, allowed in WRITE_MATRIX.items()
    for category in (*WRITES, "lab_results", "conditions", "critical_information")
]


def _write(principal, category: str = "treatment_limitations", municipality: str = "0301",
           rules=RULES, nin: str = HLR_PATIENT) -> Outcome:
    return outcome(decide_write(principal, nin, category, municipality, now=NOW, rules=rules))


@pytest.mark.parametrize(("profession", "category", "expected"), WRITE_MATRIX_CASES)
def test_decide_write_follows_the_write_matrix(profession: str, category: str,
                                               expected: Outcome) -> None:
    assert _write(clinician(profession=profession), category) == expected


WRITE_CASES = [
    pytest.param(clinician(purpose_of_use=PurposeOfUse.ETREAT), "0301", PERMIT,
                 id="legevakt-etreat-own-store"),
    pytest.param(clinician(purpose_of_use=PurposeOfUse.BTG), "0301",
                 (False, "WRITE_PURPOSE_NOT_PERMITTED", "DENIED", False), id="btg-writes-nothing"),
    pytest.param(clinician(purpose_of_use=PurposeOfUse.COC), "0301",
                 (False, "WRITE_PURPOSE_NOT_PERMITTED", "DENIED", False), id="coc-writes-nothing"),
    # an agreement to read Bergen's store (RULES) is not one to write in it
    pytest.param(clinician(), "4601", (False, "WRITE_MUNICIPAL_BORDER", "DENIED", False),
                 id="read-agreement-is-no-write-agreement"),
    pytest.param(clinician(), "5001", (False, "WRITE_MUNICIPAL_BORDER", "DENIED", False),
                 id="another-municipality"),
    pytest.param(clinician(municipality=None), "0301",
                 (False, "WRITE_MUNICIPAL_BORDER", "DENIED", False), id="no-municipality"),
    pytest.param(clinician(patients=frozenset()), "0301",
                 (False, "CARE_RELATIONSHIP_MISSING", "DENIED", False), id="no-care-relationship"),
    pytest.param(clinician(scopes=frozenset()), "0301",
                 (False, "SCOPE_MISSING", "DENIED", False), id="no-clinical-scope"),
    pytest.param(clinician(attested_at=NOW.replace(hour=9)), "0301",
                 (False, "ATTEST_EXPIRED", "DENIED", False), id="stale-attest"),
    pytest.param(clinician(purpose_of_use=None), "0301",
                 (False, "PURPOSE_MISSING", "DENIED", False), id="no-purpose"),
    pytest.param(citizen(), "0301", NOT_PERMITTED, id="citizen"),
    pytest.param(privacy_officer(), "0301", NOT_PERMITTED, id="privacy-officer"),
    pytest.param(stranger(), "0301", NOT_PERMITTED, id="unknown-kind"),
]


@pytest.mark.parametrize(("principal", "municipality", "expected"), WRITE_CASES)
def test_decide_write(principal, municipality: str, expected: Outcome) -> None:
    assert _write(principal, municipality=municipality) == expected


def test_a_write_agreement_opens_the_border_for_writing_only_its_way(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(textwrap.dedent("""
        [[agreements]]
        provider = "5001"
        consumer = "0301"
        write = true
    """))
    rules = load_rules(str(policy))
    assert _write(clinician(), municipality="5001", rules=rules) == PERMIT
    assert writable_municipalities(clinician(), rules=rules) == {"0301", "5001"}
    trondheim = clinician(municipality="5001")
    assert _write(trondheim, municipality="0301", rules=rules)[1] == "WRITE_MUNICIPAL_BORDER"
    assert writable_municipalities(citizen(), rules=rules) == frozenset()


def test_a_category_without_a_write_table_is_written_by_nobody(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[write.documents]\nprofessions = ["SP"]\npurposes = ["TREAT"]\n')
    rules = load_rules(str(policy))
    assert _write(clinician(profession="SP"), "documents", rules=rules) == PERMIT
    assert _write(clinician(profession="LE"), "documents", rules=rules) == NOT_PERMITTED
    etreat = clinician(profession="SP", purpose_of_use=PurposeOfUse.ETREAT)
    assert _write(etreat, "documents", rules=rules)[1] == "WRITE_PURPOSE_NOT_PERMITTED"


@pytest.mark.parametrize("text", [
    '[write.nonsense]\nprofessions = ["LE"]\n',
    '[write.documents]\nprofessions = "LE"\n',
    '[write.documents]\npurposes = ["SOMETIMES"]\n',
    '[write.documents]\nwho = ["LE"]\n',
    '[[agreements]]\nprovider = "5001"\nconsumer = "0301"\nwrite = "yes"\n',
    '[[agreements]]\nprovider = "5001"\nconsumer = "0301"\nread = true\n',
])
def test_a_bad_write_table_fails_the_start_naming_the_key(tmp_path: Path, text: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(text)
    with pytest.raises(ValueError, match=r"policy\.toml"):
        load_rules(str(policy))


def test_writes_are_denied_by_default_for_every_kind_but_clinicians() -> None:
    for kind in PrincipalKind:
        if kind is not PrincipalKind.CLINICIAN:
            assert _write(clinician(kind=kind))[1] == "WRITE_NOT_PERMITTED"
