"""The care-relationship attest (pure), the Principal built from claims, and the demo tokens."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from typing import Any

import jwt
import pytest

from connectors.identifiers import is_valid_nin, make_nin
from gateway.auth import (
    ATTEST_TYPE,
    AuthError,
    build_principal,
    parse_attest,
    read_attest,
    to_canonical,
)
from gateway.demo import PERSONAS, PRIVACY_OFFICER_PID, demo_jwks, mint_token
from gateway.settings import DEMO_TENANTS
from policies.model import PrincipalKind, PurposeOfUse

PID = "04125845687"
PATIENT = "14033841389"
OTHER_PATIENT = "09014412759"
TOA = 1_800_000_000
TENANTS = {t.orgnr: t for t in DEMO_TENANTS}


def wire_attest() -> dict[str, Any]:
    return {
        "type": ATTEST_TYPE,
        "practitioner": {
            "identifier": {"id": PID, "name": "Ingrid Vaktmo",
                           "system": "urn:oid:2.16.578.1.12.4.1.4.1"},
            "hpr_nr": {"id": "9144901", "system": "urn:oid:2.16.578.1.12.4.1.4.4"},
            "authorization": {"code": "LE", "text": "Lege",
                              "system": "urn:oid:2.16.578.1.12.4.1.1.9060"},
            "legal_entity": {"id": "910000004", "name": "Oslo kommune"},
            "point_of_care": {"id": "940000009", "name": "Oslo kommune legevakt"},
        },
        "care_relationship": {
            "healthcare_service": {"code": "15", "text": "Helsetjenester i hjemmet"},
            "purpose_of_use": {"code": "TREAT",
                               "system": "urn:oid:2.16.840.1.113883.1.11.20448"},
            "decision_ref": {"id": "vedtak-1.a_B", "description": "Vedtak",
                             "user_selected": False},
        },
        "patients": [{"identifier": {"id": PATIENT}}, {"identifier": {"id": OTHER_PATIENT}}],
        "toa": TOA,
    }


def test_attest_is_read_from_list_object_and_json_string() -> None:
    raw = wire_attest()
    forms = [[{"type": "other"}, raw], raw, json.dumps([raw]), json.dumps(raw)]
    attests = [read_attest(form) for form in forms]
    assert all(a == attests[0] for a in attests)
    first = attests[0]
    assert first is not None
    assert first.purpose_of_use is PurposeOfUse.TREAT
    assert first.patient_nins == frozenset({PATIENT, OTHER_PATIENT})
    assert first.decision_ref is not None
    assert first.decision_ref.id == "vedtak-1.a_B"
    assert first.authorization is not None
    assert first.authorization.code == "LE"


@pytest.mark.parametrize("details", [None, [], [{"type": "helseid_authorization"}], {}])
def test_no_attest_reads_as_none(details: object) -> None:
    assert read_attest(details) is None


def test_lenient_names_are_accepted_and_emitted_canonically() -> None:
    raw = wire_attest()
    raw["care_relation"] = raw.pop("care_relationship")
    raw["practitioner"]["auhtorization"] = raw["practitioner"].pop("authorization")
    attest = parse_attest(raw)
    assert attest.authorization is not None
    assert attest.authorization.text == "Lege"
    assert attest.healthcare_service is not None
    assert attest.healthcare_service.code == "15"
    canonical = to_canonical(attest)
    assert "care_relationship" in canonical
    assert "care_relation" not in canonical
    assert canonical["practitioner"]["authorization"]["code"] == "LE"
    assert "auhtorization" not in canonical["practitioner"]
    assert canonical["care_relationship"]["purpose_of_use"]["code"] == "TREAT"
    assert [p["identifier"]["id"] for p in canonical["patients"]] == [PATIENT, OTHER_PATIENT]
    assert canonical["toa"] == TOA


def test_canonical_output_parses_back_to_the_same_attest() -> None:
    attest = parse_attest(wire_attest())
    assert parse_attest(to_canonical(attest)) == attest
    assert to_canonical(parse_attest(wire_attest())) == to_canonical(attest)


def _with(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(wire_attest())
    *parents, last = path.split(".")
    target: Any = raw
    for name in parents:
        target = target[int(name)] if name.isdigit() else target[name]
    if value is _DROP:
        del target[last]
    else:
        target[last] = value
    return raw


_DROP = object()

INVALID = [
    ("patients.0.identifier.id", "12345678901", "national identity number"),
    ("patients.1.identifier", _DROP, "national identity number"),
    ("patients", {"identifier": {"id": PATIENT}}, "patients"),
    ("care_relationship.purpose_of_use.code", "SELF", "purpose_of_use"),
    ("care_relationship.purpose_of_use", _DROP, "purpose_of_use"),
    ("care_relationship", _DROP, "care_relationship"),
    ("care_relationship.decision_ref.id", "has space", "decision_ref"),
    ("care_relationship.decision_ref.id", "x" * 65, "decision_ref"),
    ("care_relationship.decision_ref.id", "", "decision_ref"),
    ("care_relationship.decision_ref.user_selected", "yes", "user_selected"),
    ("toa", "1700121037", "toa"),
    ("toa", 1700121037.5, "toa"),
    ("toa", True, "toa"),
    ("toa", _DROP, "toa"),
    ("practitioner.legal_entity", "910000004", "legal_entity"),
]


@pytest.mark.parametrize(("path", "value", "what"), INVALID,
                         ids=[f"{p}={v!r}"[:40] for p, v, _ in INVALID])
def test_invalid_attest_is_rejected_without_its_values(path: str, value: Any, what: str) -> None:
    with pytest.raises(AuthError) as info:
        parse_attest(_with(path, value))
    message = str(info.value)
    assert message.startswith("The care-relationship attest is invalid: ")
    assert what in message
    assert "12345678901" not in message
    assert "has space" not in message


@pytest.mark.parametrize("details", ["{not json", [1, 2], 42, [wire_attest(), wire_attest()]])
def test_malformed_authorization_details_are_rejected(details: object) -> None:
    with pytest.raises(AuthError, match="attest is invalid"):
        read_attest(details)


# -- the Principal from claims (pure) ----------------------------------------------------------


def clinician_claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "client_id": "epj-1", "scope": "kilde/patient.read",
        "helseid://claims/identity/pid": PID, "helseid://claims/hpr/hpr_number": "9144901",
        "helseid://claims/client/claims/orgnr_parent": "910000004",
        "helseid://claims/client/claims/orgnr_child": "940000009",
        "helseid://claims/identity/security_level": "4",
        "authorization_details": [wire_attest()],
    }
    base.update(changes)
    return base


def test_principal_takes_the_attest() -> None:
    p = build_principal(clinician_claims(), TENANTS, now=TOA + 60)
    assert p.kind is PrincipalKind.CLINICIAN
    assert (p.municipality, p.point_of_care, p.point_of_care_name) == (
        "0301", "940000009", "Oslo kommune legevakt")
    assert (p.healthcare_service, p.decision_ref, p.decision_description) == (
        "15", "vedtak-1.a_B", "Vedtak")
    assert p.patients == frozenset({PATIENT, OTHER_PATIENT})
    assert p.attested_at == datetime.fromtimestamp(TOA, tz=UTC)


def test_unknown_legal_entity_leaves_municipality_empty() -> None:
    raw = wire_attest()
    raw["practitioner"]["legal_entity"]["id"] = "974760673"
    claims = clinician_claims(authorization_details=[raw])
    claims["helseid://claims/client/claims/orgnr_parent"] = "974760673"
    p = build_principal(claims, TENANTS, now=TOA)
    assert (p.legal_entity, p.municipality) == ("974760673", None)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"helseid://claims/identity/pid": "11066218815"}, "another person"),
        ({"helseid://claims/hpr/hpr_number": "9144902"}, "another HPR number"),
        ({"helseid://claims/client/claims/orgnr_parent": "920000002"}, "another legal entity"),
    ],
)
def test_attest_for_someone_else_is_rejected(change: dict[str, Any], what: str) -> None:
    with pytest.raises(AuthError, match=what):
        build_principal(clinician_claims(**change), TENANTS, now=TOA)


def test_attest_from_the_future_is_rejected() -> None:
    with pytest.raises(AuthError, match="toa is in the future"):
        build_principal(clinician_claims(), TENANTS, now=TOA - 31, leeway=30)


def test_clinician_without_attest_has_no_patients() -> None:
    claims = clinician_claims()
    del claims["authorization_details"]
    p = build_principal(claims, TENANTS, now=TOA)
    assert (p.kind, p.patients, p.purpose_of_use, p.municipality) == (
        PrincipalKind.CLINICIAN, frozenset(), None, "0301")


def test_citizen_scope_wins_and_ignores_an_attest() -> None:
    p = build_principal(clinician_claims(scope="openid kilde/innsyn"), TENANTS, now=TOA)
    assert (p.kind, p.person_id, p.patients, p.hpr_number) == (
        PrincipalKind.CITIZEN, PID, frozenset(), None)


# -- demo tokens -------------------------------------------------------------------------------


def _decode(token: str) -> dict[str, Any]:
    key = jwt.PyJWK(demo_jwks()["keys"][0])
    # the signature and audience only: lifetimes are checked against NOW in test_auth.py
    options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False}
    return jwt.decode(token, key, algorithms=["RS256"], audience="kilde", options=options)


def test_demo_jwks_is_one_public_rs256_key() -> None:
    (key,) = demo_jwks()["keys"]
    assert (key["kid"], key["alg"], key["kty"], key["use"]) == ("kilde-demo-1", "RS256",
                                                                "RSA", "sig")
    assert "d" not in key
    assert "p" not in key


def test_demo_token_carries_helseid_claims_and_the_attest() -> None:
    claims = _decode(mint_token("hjemmesykepleier", PATIENT, issuer="http://x", audience="kilde",
                                now=TOA, lifetime=600, attest_age=300, purpose="BTG"))
    assert (claims["iss"], claims["iat"], claims["nbf"], claims["exp"]) == (
        "http://x", TOA, TOA, TOA + 600)
    assert claims["helseid://claims/identity/security_level"] == "4"
    assert claims["helseid://claims/client/claims/orgnr_child"] == "960000005"
    (attest,) = claims["authorization_details"]
    assert attest["toa"] == TOA - 300
    assert attest["care_relationship"]["purpose_of_use"]["code"] == "BTG"
    assert attest["patients"][0]["identifier"]["id"] == PATIENT
    assert PATIENT not in claims["sub"]


def test_demo_clinician_without_patient_has_an_empty_patient_list() -> None:
    claims = _decode(mint_token("legevakt-lege", issuer="http://x", audience="kilde"))
    assert claims["authorization_details"][0]["patients"] == []


@pytest.mark.parametrize(
    ("persona", "patient", "purpose", "match"),
    [
        ("kirurg", None, None, "known: .*legevakt-lege"),
        ("innbygger", None, None, "needs a patient"),
        ("legevakt-lege", "12345678901", None, "valid national identity number"),
        ("legevakt-lege", PATIENT, "SELF", "Unknown purpose"),
        ("personvernombud", None, "TREAT", "no care relationship"),
    ],
)
def test_mint_token_refuses_bad_input(persona: str, patient: str | None, purpose: str | None,
                                      match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mint_token(persona, patient, issuer="http://x", audience="kilde", purpose=purpose)


def test_personas_are_complete_and_synthetic() -> None:
    assert set(PERSONAS) == {
        "legevakt-lege", "hjemmesykepleier", "helsefagarbeider", "saksbehandler",
        "lege-annen-kommune", "hjemmesykepleier-bergen", "innbygger", "personvernombud"}
    assert PRIVACY_OFFICER_PID == make_nin(date(1971, 9, 23), 300)
    assert is_valid_nin(PRIVACY_OFFICER_PID)
    assert PERSONAS["saksbehandler"].hpr is None
