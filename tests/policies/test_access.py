"""Decision tables for patient access, the access basis sent upstream, and access-log reads."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from policies import (
    Oversight,
    Principal,
    PurposeOfUse,
    access_basis,
    decide_access_log,
    decide_patient,
)
from tests.policies.people import (
    BERGEN_PATIENT,
    HLR_PATIENT,
    NOW,
    OSLO_PATIENT,
    REASON,
    RULES,
    Outcome,
    citizen,
    clinician,
    outcome,
    privacy_officer,
    stranger,
)

OK = "OK"
DENIED = "DENIED"

PATIENT_CASES = [
    pytest.param(citizen(), HLR_PATIENT, (True, "SELF", OK, False), id="citizen-self"),
    pytest.param(citizen(), OSLO_PATIENT, (False, "NOT_SELF", DENIED, False), id="citizen-other"),
    pytest.param(citizen(), "", (False, "NOT_SELF", DENIED, False), id="citizen-empty-nin"),
    pytest.param(citizen(scopes=frozenset()), HLR_PATIENT,
                 (False, "SCOPE_MISSING", DENIED, False), id="citizen-without-scope"),
    pytest.param(privacy_officer(), HLR_PATIENT,
                 (False, "ACCESS_LOG_ONLY", DENIED, False), id="privacy-officer"),
    pytest.param(stranger(), HLR_PATIENT,
                 (False, "PRINCIPAL_UNKNOWN", DENIED, False), id="unknown-kind"),
    pytest.param(clinician(), HLR_PATIENT,
                 (True, "CARE_RELATIONSHIP", OK, False), id="clinician-fresh-attest"),
    pytest.param(clinician(scopes=frozenset({"kilde/innsyn"})), HLR_PATIENT,
                 (False, "SCOPE_MISSING", DENIED, False), id="clinician-without-scope"),
    pytest.param(clinician(purpose_of_use=None), HLR_PATIENT,
                 (False, "PURPOSE_MISSING", DENIED, False), id="clinician-without-purpose"),
    pytest.param(clinician(), OSLO_PATIENT,
                 (False, "CARE_RELATIONSHIP_MISSING", DENIED, False),
                 id="attest-bound-to-another-patient"),
    pytest.param(clinician(patients=frozenset()), HLR_PATIENT,
                 (False, "CARE_RELATIONSHIP_MISSING", DENIED, False), id="attest-without-patient"),
    pytest.param(clinician(purpose_of_use=PurposeOfUse.BTG), BERGEN_PATIENT,
                 (False, "CARE_RELATIONSHIP_MISSING", DENIED, False),
                 id="btg-needs-an-attest-for-this-patient"),
    pytest.param(clinician(attested_at=NOW - timedelta(minutes=59)), HLR_PATIENT,
                 (True, "CARE_RELATIONSHIP", OK, False), id="attest-59-minutes-old"),
    pytest.param(clinician(attested_at=NOW - timedelta(minutes=60)), HLR_PATIENT,
                 (True, "CARE_RELATIONSHIP", OK, False), id="attest-exactly-60-minutes-old"),
    pytest.param(clinician(attested_at=NOW - timedelta(minutes=61)), HLR_PATIENT,
                 (False, "ATTEST_EXPIRED", DENIED, False), id="attest-61-minutes-old"),
    pytest.param(clinician(attested_at=NOW + timedelta(seconds=60)), HLR_PATIENT,
                 (True, "CARE_RELATIONSHIP", OK, False), id="attest-60-s-ahead-is-skew"),
    pytest.param(clinician(attested_at=NOW + timedelta(seconds=61)), HLR_PATIENT,
                 (False, "ATTEST_INVALID", DENIED, False), id="attest-61-s-in-the-future"),
    pytest.param(clinician(attested_at=None), HLR_PATIENT,
                 (False, "ATTEST_INVALID", DENIED, False), id="attest-without-toa"),
    pytest.param(clinician(attested_at=(NOW - timedelta(minutes=10)).replace(tzinfo=None)),
                 HLR_PATIENT, (True, "CARE_RELATIONSHIP", OK, False), id="naive-toa-is-utc"),
]


@pytest.mark.parametrize(("principal", "nin", "expected"), PATIENT_CASES)
def test_decide_patient(principal: Principal, nin: str, expected: Outcome) -> None:
    assert outcome(decide_patient(principal, nin, now=NOW, rules=RULES)) == expected


def test_decide_patient_uses_the_configured_attest_age() -> None:
    strict = replace(RULES, attest_max_age_seconds=600)
    principal = clinician(attested_at=NOW - timedelta(minutes=11))
    assert decide_patient(principal, HLR_PATIENT, now=NOW, rules=strict).reason == "ATTEST_EXPIRED"
    assert decide_patient(principal, HLR_PATIENT, now=NOW, rules=RULES).allowed


BASIS_CASES = [
    pytest.param(clinician(purpose_of_use=PurposeOfUse.ETREAT), REASON, "FORHOYET_AKUTT",
                 id="etreat-with-reason"),
    pytest.param(clinician(purpose_of_use=PurposeOfUse.BTG), REASON, "FORHOYET_AKUTT",
                 id="btg-with-reason"),
    pytest.param(clinician(purpose_of_use=PurposeOfUse.ETREAT), None, "SAMTYKKE",
                 id="etreat-without-reason"),
    pytest.param(clinician(purpose_of_use=PurposeOfUse.ETREAT), "   ", "SAMTYKKE",
                 id="etreat-blank-reason"),
    pytest.param(clinician(purpose_of_use=PurposeOfUse.BTG), None, "SAMTYKKE",
                 id="btg-without-reason-opens-nothing"),
    pytest.param(clinician(), None, "SAMTYKKE", id="treat"),
    pytest.param(clinician(), REASON, "SAMTYKKE", id="treat-reason-is-no-emergency"),
    pytest.param(clinician(purpose_of_use=PurposeOfUse.COC), None, "UNNTAK", id="coc"),
    pytest.param(clinician(purpose_of_use=PurposeOfUse.COC), REASON, "UNNTAK",
                 id="coc-with-reason"),
    pytest.param(citizen(), None, "UNNTAK", id="citizen"),
    pytest.param(citizen(purpose_of_use=PurposeOfUse.BTG), REASON, "UNNTAK",
                 id="citizen-never-emergency"),
    pytest.param(clinician(purpose_of_use=None), None, "UNNTAK", id="no-purpose"),
]


@pytest.mark.parametrize(("principal", "reason", "expected"), BASIS_CASES)
def test_access_basis(principal: Principal, reason: str | None, expected: str) -> None:
    assert access_basis(principal, reason) == expected


OSLO_HOME = Oversight(home_municipality="0301", holds_own_data=False)
BERGEN_HOME = Oversight(home_municipality="4601", holds_own_data=False)
BERGEN_HOME_OSLO_DATA = Oversight(home_municipality="4601", holds_own_data=True)
UNKNOWN_HOME = Oversight(home_municipality=None, holds_own_data=False)
UNKNOWN_HOME_OSLO_DATA = Oversight(home_municipality=None, holds_own_data=True)

ACCESS_LOG_CASES = [
    # the privacy officer of 0301 (Oslo): the data controller is the municipality
    pytest.param(privacy_officer(), HLR_PATIENT, OSLO_HOME, (True, "PRIVACY_OFFICER", OK, False),
                 id="privacy-officer-own-municipalitys-patient"),
    pytest.param(privacy_officer(), BERGEN_PATIENT, BERGEN_HOME,
                 (False, "OTHER_MUNICIPALITY", DENIED, False),
                 id="privacy-officer-another-municipalitys-patient"),
    pytest.param(privacy_officer(), BERGEN_PATIENT, BERGEN_HOME_OSLO_DATA,
                 (True, "PRIVACY_OFFICER_OWN_DATA", OK, False),
                 id="privacy-officer-another-municipalitys-patient-with-own-store-data"),
    pytest.param(privacy_officer(), BERGEN_PATIENT, UNKNOWN_HOME,
                 (False, "OTHER_MUNICIPALITY", DENIED, False),
                 id="privacy-officer-patient-unknown-to-the-registry"),
    pytest.param(privacy_officer(), BERGEN_PATIENT, UNKNOWN_HOME_OSLO_DATA,
                 (True, "PRIVACY_OFFICER_OWN_DATA", OK, False),
                 id="privacy-officer-unknown-home-with-own-store-data"),
    pytest.param(privacy_officer(), HLR_PATIENT, None,
                 (False, "OTHER_MUNICIPALITY", DENIED, False),
                 id="privacy-officer-nothing-known-about-the-patient"),
    pytest.param(privacy_officer(municipality="4601"), BERGEN_PATIENT, BERGEN_HOME,
                 (True, "PRIVACY_OFFICER", OK, False), id="privacy-officer-of-bergen"),
    pytest.param(privacy_officer(municipality="4601"), HLR_PATIENT, OSLO_HOME,
                 (False, "OTHER_MUNICIPALITY", DENIED, False),
                 id="privacy-officer-of-bergen-oslo-patient"),
    pytest.param(privacy_officer(), None, None, (True, "PRIVACY_OFFICER", OK, False),
                 id="privacy-officer-views-across-patients"),
    pytest.param(privacy_officer(municipality=None), HLR_PATIENT, OSLO_HOME,
                 (False, "NO_MUNICIPALITY", DENIED, False),
                 id="privacy-officer-of-no-municipality-served"),
    pytest.param(privacy_officer(municipality=None), None, None,
                 (False, "NO_MUNICIPALITY", DENIED, False),
                 id="privacy-officer-of-no-municipality-across-patients"),
    pytest.param(privacy_officer(scopes=frozenset()), HLR_PATIENT, OSLO_HOME,
                 (False, "SCOPE_MISSING", DENIED, False), id="privacy-officer-without-scope"),
    pytest.param(citizen(), None, None, (True, "SELF", OK, False), id="citizen-own-log"),
    pytest.param(citizen(), HLR_PATIENT, None, (True, "SELF", OK, False), id="citizen-own-nin"),
    pytest.param(citizen(), OSLO_PATIENT, OSLO_HOME, (False, "NOT_SELF", DENIED, False),
                 id="citizen-other-log"),
    pytest.param(citizen(scopes=frozenset()), None, None, (False, "SCOPE_MISSING", DENIED, False),
                 id="citizen-without-scope"),
    pytest.param(clinician(), HLR_PATIENT, OSLO_HOME,
                 (False, "ACCESS_LOG_NOT_PERMITTED", DENIED, False), id="clinician"),
    pytest.param(clinician(scopes=frozenset({"kilde/accesslog.read"})), HLR_PATIENT, OSLO_HOME,
                 (False, "ACCESS_LOG_NOT_PERMITTED", DENIED, False),
                 id="clinician-with-officer-scope"),
    pytest.param(stranger(), None, None, (False, "ACCESS_LOG_NOT_PERMITTED", DENIED, False),
                 id="unknown-kind"),
]


@pytest.mark.parametrize(("principal", "nin", "oversight", "expected"), ACCESS_LOG_CASES)
def test_decide_access_log(principal: Principal, nin: str | None, oversight: Oversight | None,
                           expected: Outcome) -> None:
    decision = decide_access_log(principal, nin, rules=RULES, oversight=oversight)
    assert outcome(decision) == expected
