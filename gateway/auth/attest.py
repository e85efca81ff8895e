"""The Tillitsrammeverk care-relationship attest (`nhn:tillitsrammeverk:parameters`), parsed.

Sits between token validation and the Principal: `Authenticator` hands the token's
`authorization_details` to `read_attest` and copies the result into the Principal. Pure: no IO.
Parsing is lenient where NHN's own samples disagree (`care_relation` for `care_relationship`,
the `auhtorization` typo) and `to_canonical` always emits the canonical names. Validation
errors name the field, never its value.

>>> read_attest([{"type": "other"}]) is None
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.identifiers import is_valid_nin
from gateway.auth.errors import AuthError
from policies.model import PurposeOfUse

ATTEST_TYPE = "nhn:tillitsrammeverk:parameters"
PURPOSE_OF_USE_SYSTEM = "urn:oid:2.16.840.1.113883.1.11.20448"
DECISION_REF_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Canonical name -> names seen in the wild (spec text, one NHN sample's typo).
_ALIASES = {"care_relationship": ("care_relation",), "authorization": ("auhtorization",)}


@dataclass(frozen=True, slots=True)
class Ident:
    """An identified party (person, organisation, department) as the attest carries it."""

    id: str
    name: str | None = None
    system: str | None = None
    authority: str | None = None


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    text: str | None = None
    system: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionRef:
    """The consumer's local decision behind the access (ATT-46..48)."""

    id: str
    description: str | None = None
    user_selected: bool = False


@dataclass(frozen=True, slots=True)
class AttestPatient:
    identifier: Ident  # `identifier.id` is a valid NIN
    point_of_care: Ident | None = None
    department: Ident | None = None


@dataclass(frozen=True, slots=True)
class Attest:
    """A validated attest. `toa` is its time of attestation in Unix seconds."""

    purpose_of_use: PurposeOfUse
    toa: int
    practitioner: Ident | None = None
    hpr_nr: Ident | None = None
    authorization: Code | None = None
    legal_entity: Ident | None = None
    point_of_care: Ident | None = None
    department: Ident | None = None
    healthcare_service: Code | None = None
    purpose_of_use_details: Code | None = None
    decision_ref: DecisionRef | None = None
    patients: tuple[AttestPatient, ...] = ()

    @property
    def patient_nins(self) -> frozenset[str]:
        return frozenset(p.identifier.id for p in self.patients)


def _invalid(what: str) -> AuthError:
    return AuthError(f"The care-relationship attest is invalid: {what}.")


def _get(obj: Mapping[str, Any], name: str) -> Any:
    if name in obj:
        return obj[name]
    return next((obj[a] for a in _ALIASES.get(name, ()) if a in obj), None)


def _object(obj: Mapping[str, Any], name: str, *, required: bool = False) -> Mapping[str, Any]:
    value = _get(obj, name)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise _invalid(f"{name} is {'missing' if value is None else 'not an object'}")
    return value


def _text(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _invalid(f"{where}.{name} is not a string")


def _ident(obj: Mapping[str, Any], name: str) -> Ident | None:
    raw = _object(obj, name)
    if not raw:
        return None
    value = raw.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise _invalid(f"{name}.id is missing")
    return Ident(value, _text(raw, "name", name), _text(raw, "system", name),
                 _text(raw, "authority", name))


def _code(obj: Mapping[str, Any], name: str) -> Code | None:
    raw = _object(obj, name)
    if not raw:
        return None
    value = raw.get("code")
    if not isinstance(value, str) or not value:
        raise _invalid(f"{name}.code is missing")
    return Code(value, _text(raw, "text", name), _text(raw, "system", name))


def _purpose(care: Mapping[str, Any]) -> PurposeOfUse:
    raw = care.get("purpose_of_use")
    code = raw.get("code") if isinstance(raw, Mapping) else raw
    try:
        return PurposeOfUse(code)
    except ValueError:
        raise _invalid("purpose_of_use is missing or not one of TREAT, ETREAT, COC, BTG") from None


def _decision_ref(care: Mapping[str, Any]) -> DecisionRef | None:
    raw = _object(care, "decision_ref")
    if not raw:
        return None
    ref_id = raw.get("id")
    if not isinstance(ref_id, str) or not DECISION_REF_ID.fullmatch(ref_id):
        raise _invalid("decision_ref.id must be 1-64 letters, digits, '_', '-' or '.'")
    selected = raw.get("user_selected", False)
    if not isinstance(selected, bool):
        raise _invalid("decision_ref.user_selected is not a boolean")
    return DecisionRef(ref_id, _text(raw, "description", "decision_ref"), selected)


def _patients(raw: Mapping[str, Any]) -> tuple[AttestPatient, ...]:
    entries = raw.get("patients")
    if entries is None:
        return ()
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise _invalid("patients is not a list of objects")
    patients = []
    for entry in entries:
        identifier = _ident(entry, "identifier")
        if identifier is None or not is_valid_nin(identifier.id):
            raise _invalid("a patient's identifier is not a valid national identity number")
        patients.append(AttestPatient(identifier, _ident(entry, "point_of_care"),
                                      _ident(entry, "department")))
    return tuple(patients)


def parse_attest(raw: Mapping[str, Any]) -> Attest:
    """One `nhn:tillitsrammeverk:parameters` object, validated; AuthError when it is bad."""
    practitioner = _object(raw, "practitioner")
    care = _object(raw, "care_relationship", required=True)
    toa = raw.get("toa")
    if isinstance(toa, bool) or not isinstance(toa, int) or toa < 0:
        raise _invalid("toa is not a time in Unix seconds")
    return Attest(
        purpose_of_use=_purpose(care),
        toa=toa,
        practitioner=_ident(practitioner, "identifier"),
        hpr_nr=_ident(practitioner, "hpr_nr"),
        authorization=_code(practitioner, "authorization"),
        legal_entity=_ident(practitioner, "legal_entity"),
        point_of_care=_ident(practitioner, "point_of_care"),
        department=_ident(practitioner, "department"),
        healthcare_service=_code(care, "healthcare_service"),
        purpose_of_use_details=_code(care, "purpose_of_use_details"),
        decision_ref=_decision_ref(care),
        patients=_patients(raw),
    )


def find_attest(authorization_details: object) -> Mapping[str, Any] | None:
    """The attest object among `authorization_details` (a list, one object or a JSON string)."""
    details = authorization_details
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            raise _invalid("authorization_details is not JSON") from None
    if isinstance(details, Mapping):
        details = [details]
    if not isinstance(details, list) or not all(isinstance(d, Mapping) for d in details):
        raise _invalid("authorization_details is not a list of objects")
    found = [d for d in details if d.get("type") == ATTEST_TYPE]
    if len(found) > 1:
        raise _invalid("authorization_details carries more than one attest")
    return found[0] if found else None


def read_attest(authorization_details: object) -> Attest | None:
    """The validated attest in a token's `authorization_details`, or None when there is none."""
    if authorization_details is None:
        return None
    raw = find_attest(authorization_details)
    return None if raw is None else parse_attest(raw)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _ident_json(ident: Ident | None) -> dict[str, Any] | None:
    if ident is None:
        return None
    return _drop_none({"id": ident.id, "name": ident.name, "system": ident.system,
                       "authority": ident.authority})


def _code_json(code: Code | None) -> dict[str, Any] | None:
    if code is None:
        return None
    return _drop_none({"code": code.code, "text": code.text, "system": code.system})


def to_canonical(attest: Attest) -> dict[str, Any]:
    """The attest as canonical wire JSON (`care_relationship`, `authorization`), Nones omitted."""
    ref = attest.decision_ref
    return {
        "type": ATTEST_TYPE,
        "practitioner": _drop_none({
            "identifier": _ident_json(attest.practitioner),
            "hpr_nr": _ident_json(attest.hpr_nr),
            "authorization": _code_json(attest.authorization),
            "legal_entity": _ident_json(attest.legal_entity),
            "point_of_care": _ident_json(attest.point_of_care),
            "department": _ident_json(attest.department),
        }),
        "care_relationship": _drop_none({
            "healthcare_service": _code_json(attest.healthcare_service),
            "purpose_of_use": {"code": attest.purpose_of_use.value,
                               "system": PURPOSE_OF_USE_SYSTEM},
            "purpose_of_use_details": _code_json(attest.purpose_of_use_details),
            "decision_ref": None if ref is None else _drop_none({
                "id": ref.id, "description": ref.description, "user_selected": ref.user_selected,
            }),
        }),
        "patients": [
            _drop_none({"identifier": _ident_json(p.identifier),
                        "point_of_care": _ident_json(p.point_of_care),
                        "department": _ident_json(p.department)})
            for p in attest.patients
        ],
        "toa": attest.toa,
    }
