"""FHIR R4 create, as a municipal store runs it: validate the posted resource, honour
`If-None-Exist`, store it.

Sits under `sandbox.municipal` (its `POST /{kommunenummer}/{Type}`). `problems(resource)`
checks a posted resource against R4 for the types the stores take (Consent,
DocumentReference, MedicationAdministration): JSON object of that type, no element R4 does not
define, required elements present, cardinalities, datatypes (CodeableConcept, Coding,
Reference, Identifier, dateTime/instant, base64), required bindings (status codes) and the
invariants a store enforces (Consent ppc-1: a policy or policyRule). Each problem is an
OperationOutcome issue (code + FHIRPath expression); a store answers them as 400. A resource
that is valid R4 but about nobody this store knows is 422 (`processing`).

>>> problems({"resourceType": "Consent", "status": "sure"})[0]
('value', 'Consent.status')
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any

Problem = tuple[str, str]  # (OperationOutcome issue code, expression)

_DATE_TIME = re.compile(r"-?[0-9]{4}(-(0[1-9]|1[0-2])(-(0[0-9]|[1-2][0-9]|3[0-1])"
                        r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
                        r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?")
_INSTANT = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])-(0[0-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3])"
                      r":[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]"
                      r"|14:00))")
_DATE = re.compile(r"[0-9]{4}(-(0[1-9]|1[0-2])(-(0[0-9]|[1-2][0-9]|3[0-1]))?)?")
_CODE = re.compile(r"[^\s]+( [^\s]+)*")
_URI = re.compile(r"\S+")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

Check = Callable[[Any, str, list[Problem]], None]


def _string(value: Any, where: str, out: list[Problem]) -> None:
    if not isinstance(value, str) or not value.strip():
        out.append(("value", where))


def _pattern(pattern: re.Pattern[str]) -> Check:
    def check(value: Any, where: str, out: list[Problem]) -> None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            out.append(("value", where))
    return check


def _bool(value: Any, where: str, out: list[Problem]) -> None:
    if not isinstance(value, bool):
        out.append(("value", where))


def _one_of(*codes: str) -> Check:
    def check(value: Any, where: str, out: list[Problem]) -> None:
        if value not in codes:
            out.append(("value", where))
    return check


def _base64(value: Any, where: str, out: list[Problem]) -> None:
    try:
        if not isinstance(value, str):
            raise ValueError
        base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        out.append(("value", where))


def _object(elements: Mapping[str, tuple[Check, bool, bool]]) -> Check:
    """A complex datatype or backbone element: `elements` maps a name to (check, required,
    repeats)."""
    def check(value: Any, where: str, out: list[Problem]) -> None:
        if not isinstance(value, dict) or not value:
            out.append(("structure", where))
            return
        _elements(value, elements, where, out)
    return check


def _elements(value: Mapping[str, Any], elements: Mapping[str, tuple[Check, bool, bool]],
              where: str, out: list[Problem]) -> None:
    for name in value:
        if name not in elements:
            out.append(("structure", f"{where}.{name}"))
    for name, (check, required, repeats) in elements.items():
        if name not in value:
            if required:
                out.append(("required", f"{where}.{name}"))
            continue
        item = value[name]
        if repeats:
            if not isinstance(item, list) or not item:
                out.append(("structure", f"{where}.{name}"))
                continue
            for i, one in enumerate(item):
                check(one, f"{where}.{name}[{i}]", out)
        else:
            check(item, f"{where}.{name}", out)


_uri = _pattern(_URI)
_code = _pattern(_CODE)
CODING = _object({"system": (_uri, False, False), "version": (_string, False, False),
                  "code": (_code, False, False), "display": (_string, False, False),
                  "userSelected": (_bool, False, False)})
CODEABLE = _object({"coding": (CODING, False, True), "text": (_string, False, False)})
PERIOD = _object({"start": (_pattern(_DATE_TIME), False, False),
                  "end": (_pattern(_DATE_TIME), False, False)})
IDENTIFIER = _object({"use": (_one_of("usual", "official", "temp", "secondary", "old"), False,
                              False),
                      "type": (CODEABLE, False, False), "system": (_uri, False, False),
                      "value": (_string, False, False), "period": (PERIOD, False, False)})
REFERENCE = _object({"reference": (_string, False, False), "type": (_uri, False, False),
                     "identifier": (IDENTIFIER, False, False),
                     "display": (_string, False, False)})
EXTENSION = _object({"url": (_uri, True, False), "valueString": (_string, False, False),
                     "valueDate": (_pattern(_DATE), False, False),
                     "valueDateTime": (_pattern(_DATE_TIME), False, False),
                     "valueCodeableConcept": (CODEABLE, False, False)})
META = _object({"versionId": (_pattern(_ID), False, False),
                "lastUpdated": (_pattern(_INSTANT), False, False),
                "source": (_uri, False, False), "profile": (_uri, False, True),
                "security": (CODING, False, True), "tag": (CODING, False, True)})
ANNOTATION = _object({"authorString": (_string, False, False),
                      "time": (_pattern(_DATE_TIME), False, False), "text": (_string, True, False)})
ATTACHMENT = _object({"contentType": (_code, False, False), "language": (_code, False, False),
                      "data": (_base64, False, False), "url": (_uri, False, False),
                      "title": (_string, False, False),
                      "creation": (_pattern(_DATE_TIME), False, False)})
_RESOURCE = {"id": (_pattern(_ID), False, False), "meta": (META, False, False),
             "language": (_code, False, False), "extension": (EXTENSION, False, True),
             "identifier": (IDENTIFIER, False, True)}

PROVISION = _object({"type": (_one_of("deny", "permit"), False, False),
                     "period": (PERIOD, False, False), "code": (CODEABLE, False, True),
                     "class": (CODING, False, True), "securityLabel": (CODING, False, True),
                     "action": (CODEABLE, False, True)})
TYPES: Mapping[str, Mapping[str, tuple[Check, bool, bool]]] = {
    "Consent": _RESOURCE | {
        "status": (_one_of("draft", "proposed", "active", "rejected", "inactive",
                           "entered-in-error"), True, False),
        "scope": (CODEABLE, True, False), "category": (CODEABLE, True, True),
        "patient": (REFERENCE, False, False), "dateTime": (_pattern(_DATE_TIME), False, False),
        "performer": (REFERENCE, False, True), "organization": (REFERENCE, False, True),
        "policyRule": (CODEABLE, False, False), "provision": (PROVISION, False, False)},
    "DocumentReference": _RESOURCE | {
        "status": (_one_of("current", "superseded", "entered-in-error"), True, False),
        "docStatus": (_one_of("preliminary", "final", "amended", "entered-in-error"), False,
                      False),
        "type": (CODEABLE, False, False), "category": (CODEABLE, False, True),
        "subject": (REFERENCE, False, False), "date": (_pattern(_INSTANT), False, False),
        "author": (REFERENCE, False, True), "description": (_string, False, False),
        "content": (_object({"attachment": (ATTACHMENT, True, False),
                             "format": (CODING, False, False)}), True, True)},
    "MedicationAdministration": _RESOURCE | {
        "status": (_one_of("in-progress", "not-done", "on-hold", "completed",
                           "entered-in-error", "stopped", "unknown"), True, False),
        "medicationCodeableConcept": (CODEABLE, False, False),
        "medicationReference": (REFERENCE, False, False),
        "subject": (REFERENCE, True, False),
        "effectiveDateTime": (_pattern(_DATE_TIME), False, False),
        "effectivePeriod": (PERIOD, False, False),
        "performer": (_object({"function": (CODEABLE, False, False),
                               "actor": (REFERENCE, True, False)}), False, True),
        "reasonCode": (CODEABLE, False, True), "note": (ANNOTATION, False, True),
        "dosage": (_object({"text": (_string, False, False), "route": (CODEABLE, False, False),
                            "site": (CODEABLE, False, False),
                            "method": (CODEABLE, False, False)}), False, False)},
}
# The element that names the patient, per type
SUBJECT = {"Consent": "patient", "DocumentReference": "subject",
           "MedicationAdministration": "subject"}


def problems(resource: Any, resource_type: str | None = None) -> list[Problem]:
    """What makes `resource` invalid R4 for a create of `resource_type` (its own type when
    None); empty when it is valid."""
    if not isinstance(resource, dict):
        return [("structure", "$this")]
    rtype = resource.get("resourceType")
    if rtype not in TYPES or (resource_type is not None and rtype != resource_type):
        return [("invalid", "resourceType")]
    out: list[Problem] = []
    _elements({k: v for k, v in resource.items() if k != "resourceType"}, TYPES[rtype], rtype, out)
    if rtype == "Consent" and "policy" not in resource and "policyRule" not in resource:
        out.append(("invariant", "Consent"))  # ppc-1
    if rtype == "MedicationAdministration":
        for name, choice in (("medication[x]", ("medicationCodeableConcept",
                                                "medicationReference")),
                             ("effective[x]", ("effectiveDateTime", "effectivePeriod"))):
            if sum(c in resource for c in choice) != 1:  # exactly one of a required choice
                out.append(("required", f"{rtype}.{name}"))
    return out
