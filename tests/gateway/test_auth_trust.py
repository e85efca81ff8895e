"""Claims that hold: the attest narrows but never supplies or widens who the caller is."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway.auth import (
    CITIZEN_SCOPE,
    CLINICAL_SCOPE,
    EVENTS_SCOPE,
    PRIVACY_OFFICER_SCOPE,
    AuthError,
    Trust,
    build_principal,
)
from gateway.settings import DEMO_TENANTS, AuthSettings, Settings, SettingsError
from policies import load_rules
from policies.model import PrincipalKind, PurposeOfUse
from tests.gateway.test_auth_attest import PATIENT, PID, TOA, clinician_claims, wire_attest

TENANTS = {t.orgnr: t for t in DEMO_TENANTS}
HPR = "helseid://claims/hpr/hpr_number"
PARENT = "helseid://claims/client/claims/orgnr_parent"
CHILD = "helseid://claims/client/claims/orgnr_child"
LEVEL = "helseid://claims/identity/security_level"
DETAILS = "helseid://claims/hpr/hpr_details"


def principal(**changes: Any) -> Any:
    claims = {k: v for k, v in clinician_claims(**changes).items() if v is not None}
    return build_principal(claims, TENANTS, now=TOA)


def attest_with(**practitioner: Any) -> list[dict[str, Any]]:
    raw = copy.deepcopy(wire_attest())
    for key, value in practitioner.items():
        if value is None:
            raw["practitioner"].pop(key, None)
        else:
            raw["practitioner"][key] = value
    return [raw]


# -- the attest may not supply what the token lacks ---------------------------------------------

@pytest.mark.parametrize(
    ("changes", "what"),
    [
        pytest.param({HPR: None}, "names an HPR number, but the token has no 'hpr_number'",
                     id="hpr-only-in-attest"),
        pytest.param({PARENT: None}, "names a legal entity, but the token has no 'orgnr_parent'",
                     id="legal-entity-only-in-attest"),
        pytest.param({CHILD: None}, "names a point of care, but the token has no 'orgnr_child'",
                     id="point-of-care-only-in-attest"),
        pytest.param({HPR: None, "authorization_details": attest_with(hpr_nr=None)},
                     "states a profession, but the token carries no HPR number",
                     id="profession-without-any-hpr"),
        pytest.param({PARENT: "930000000"}, "another legal entity", id="trondheim-token-oslo-attest"),
        pytest.param({CHILD: "990000018"}, "another point of care", id="other-point-of-care"),
        pytest.param({HPR: "9144905"}, "another HPR number", id="other-hpr"),
        pytest.param({"helseid://claims/identity/pid": "11066218815"}, "another person",
                     id="other-person"),
    ],
)
def test_an_attest_claiming_what_the_token_lacks_is_refused(changes: dict[str, Any],
                                                            what: str) -> None:
    with pytest.raises(AuthError, match=what) as info:
        principal(**changes)
    assert info.value.status == 401
    for value in ("9144901", "910000004", "940000009", PID, PATIENT):
        assert value not in info.value.message


def test_the_attest_narrows_purpose_patients_and_decision() -> None:
    p = principal()
    assert (p.profession, p.hpr_number, p.legal_entity, p.point_of_care, p.municipality) == (
        "LE", "9144901", "910000004", "940000009", "0301")
    assert (p.purpose_of_use, p.patients, p.decision_ref) == (
        PurposeOfUse.TREAT, frozenset({PATIENT, "09014412759"}), "vedtak-1.a_B")
    assert (p.legal_entity_name, p.point_of_care_name) == ("Oslo kommune",
                                                           "Oslo kommune legevakt")


def test_a_case_handler_without_hpr_has_no_profession_but_keeps_the_care_relationship() -> None:
    details = attest_with(hpr_nr=None, authorization=None)
    p = principal(**{HPR: None, "authorization_details": details})
    assert (p.kind, p.hpr_number, p.profession, p.purpose_of_use, p.municipality) == (
        PrincipalKind.CLINICIAN, None, None, PurposeOfUse.TREAT, "0301")


def test_an_attest_silent_on_organisation_leaves_the_token_s() -> None:
    details = attest_with(legal_entity=None, point_of_care=None)
    p = principal(authorization_details=details)
    assert (p.legal_entity, p.point_of_care, p.municipality) == ("910000004", "940000009",
                                                                 "0301")
    assert p.legal_entity_name is None


def test_helseid_s_legacy_organisation_claims_count_as_the_token_s() -> None:
    p = principal(**{PARENT: None, CHILD: None,
                     "helseid://claims/client/ec/orgnr_parent": "910000004",
                     "helseid://claims/client/ec/orgnr_child": "940000009"})
    assert (p.legal_entity, p.point_of_care, p.municipality) == ("910000004", "940000009",
                                                                 "0301")


def test_the_name_is_the_token_s_never_the_attest_s() -> None:
    assert principal(name="Ingrid Vaktmo").name == "Ingrid Vaktmo"
    assert principal().name is None  # the attest's practitioner name is not taken


# -- the profession and HPR approvals ---------------------------------------------------------

@pytest.mark.parametrize(
    "details",
    [
        pytest.param({"approvals": [{"profession": "LE", "authorization": {"value": "1"}}]},
                     id="object"),
        pytest.param(json.dumps({"approvals": [{"profession": "SP"}, {"profession": "LE"}]}),
                     id="json-string"),
        pytest.param([{"profession": {"value": "LE", "description": "Lege"}}], id="list"),
    ],
)
def test_a_profession_the_hpr_approvals_include_is_accepted(details: Any) -> None:
    assert principal(**{DETAILS: details}).profession == "LE"


def test_a_profession_the_hpr_approvals_do_not_include_is_refused() -> None:
    with pytest.raises(AuthError, match="HPR approvals do not include"):
        principal(**{DETAILS: {"approvals": [{"profession": "HF"}]}})


def test_one_hpr_approval_gives_the_profession_when_the_attest_states_none() -> None:
    details = attest_with(authorization=None)
    p = principal(**{DETAILS: {"approvals": [{"profession": "SP"}]},
                     "authorization_details": details})
    assert p.profession == "SP"
    assert principal(authorization_details=details).profession is None


@pytest.mark.parametrize("details", ["not json", {"approvals": "LE"}, 7])
def test_malformed_hpr_details_are_refused(details: Any) -> None:
    with pytest.raises(AuthError, match="hpr_details"):
        principal(**{DETAILS: details})


# -- the login's security level ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("claims", "ok"),
    [
        pytest.param({LEVEL: "4"}, True, id="helseid-4"),
        pytest.param({LEVEL: 4}, True, id="helseid-4-as-number"),
        pytest.param({LEVEL: "3"}, False, id="helseid-3"),
        pytest.param({LEVEL: "1"}, False, id="helseid-1"),
        pytest.param({LEVEL: None, "acr": "idporten-loa-high"}, True, id="idporten-high"),
        pytest.param({LEVEL: None, "acr": "idporten-loa-substantial"}, False,
                     id="idporten-substantial"),
        pytest.param({LEVEL: None, "helseid://claims/identity/assurance_level": "high"}, True,
                     id="eidas-high"),
    ],
)
def test_personnel_need_security_level_4(claims: dict[str, Any], ok: bool) -> None:
    if ok:
        assert principal(**claims).kind is PrincipalKind.CLINICIAN
    else:
        with pytest.raises(AuthError, match="below the 4 required for health personnel"):
            principal(**claims)


@pytest.mark.parametrize("value", [None, "high-ish", True, [4]])
def test_a_missing_or_unreadable_security_level_is_refused(value: Any) -> None:
    with pytest.raises(AuthError, match="security level"):
        principal(**{LEVEL: value})


def test_citizens_have_their_own_minimum() -> None:
    claims = clinician_claims(scope=CITIZEN_SCOPE, **{LEVEL: "3"})
    with pytest.raises(AuthError, match="required for a citizen"):
        build_principal(claims, TENANTS, now=TOA)
    relaxed = Trust(citizen_min_security_level=3)
    assert build_principal(claims, TENANTS, now=TOA, trust=relaxed).kind is PrincipalKind.CITIZEN
    with pytest.raises(AuthError, match="health personnel"):
        build_principal(clinician_claims(**{LEVEL: "3"}), TENANTS, now=TOA, trust=relaxed)


def test_security_level_settings_are_checked() -> None:
    assert Settings.from_env({"KILDE_MODE": "demo", "KILDE_AUTH__CITIZEN_MIN_SECURITY_LEVEL": "3"}
                             ).auth.citizen_min_security_level == 3
    with pytest.raises(SettingsError, match="MIN_SECURITY_LEVEL"):
        Settings.from_env({"KILDE_MODE": "demo", "KILDE_AUTH__MIN_SECURITY_LEVEL": "5"})


# -- the policy file's scopes decide the kind of caller ---------------------------------------

def test_the_default_scope_names_are_the_policy_s() -> None:
    rules = load_rules()
    assert (rules.clinical_scope, rules.citizen_scope, rules.privacy_officer_scope,
            rules.events_scope) == (CLINICAL_SCOPE, CITIZEN_SCOPE, PRIVACY_OFFICER_SCOPE,
                                    EVENTS_SCOPE)


def test_custom_scopes_in_the_policy_file_are_the_ones_used(tmp_path: Any) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[scopes]\ncitizen = "nhn:helsenorge/innsyn"\n'
                      'clinical = "kommune:fkj/pasient.les"\n')
    trust = Trust.of(AuthSettings(), load_rules(str(policy)))
    citizen = clinician_claims(scope="openid nhn:helsenorge/innsyn")
    assert build_principal(citizen, TENANTS, now=TOA, trust=trust).kind is PrincipalKind.CITIZEN
    # the old default name is no longer the citizen's: such a token is nobody's citizen token
    old = build_principal(clinician_claims(scope=CITIZEN_SCOPE), TENANTS, now=TOA, trust=trust)
    assert old.kind is PrincipalKind.CLINICIAN
    assert "kommune:fkj/pasient.les" not in old.scopes


def test_a_token_with_the_scopes_of_two_kinds_of_caller_is_refused() -> None:
    with pytest.raises(AuthError, match="more than one kind of caller"):
        principal(scope=f"{CLINICAL_SCOPE} {PRIVACY_OFFICER_SCOPE}")


def test_a_policy_giving_two_kinds_the_same_scope_fails_to_load(tmp_path: Any) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[scopes]\ncitizen = "kilde/patient.read"\n')
    with pytest.raises(ValueError, match="different scope name"):
        load_rules(str(policy))


def test_a_privacy_officer_must_have_a_legal_entity_from_the_token() -> None:
    claims = clinician_claims(scope=PRIVACY_OFFICER_SCOPE)
    assert build_principal(claims, TENANTS, now=TOA).municipality == "0301"
    del claims[PARENT]
    with pytest.raises(AuthError, match="privacy officer's token must name the legal entity"):
        build_principal(claims, TENANTS, now=TOA)


# -- machine tokens -----------------------------------------------------------------------------

def machine_claims(**changes: Any) -> dict[str, Any]:
    base = {"client_id": "hendelseslager", "scope": EVENTS_SCOPE, PARENT: "910000004"}
    base.update(changes)
    return base


def test_a_token_without_a_person_is_a_machine() -> None:
    p = build_principal(machine_claims(), TENANTS, now=TOA)
    assert (p.kind, p.person_id, p.client_id, p.municipality, p.scopes) == (
        PrincipalKind.MACHINE, "", "hendelseslager", "0301", frozenset({EVENTS_SCOPE}))


@pytest.mark.parametrize(
    "claim", [HPR, DETAILS, "authorization_details"],
)
def test_a_machine_token_with_person_claims_is_refused(claim: str) -> None:
    claims = machine_claims(**{claim: clinician_claims()[claim] if claim != DETAILS else []})
    with pytest.raises(AuthError, match="no person identifier"):
        build_principal(claims, TENANTS, now=TOA)
