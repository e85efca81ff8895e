"""Persontjenesten's Person document -> `Demographics`: what a clinician and the planner need.

Sits under the connector (`connectors.persontjenesten.connector`). The Person API (NHN's
Persontjenesten, from Folkeregisteret) gives every information part as a list of registrations,
historic ones too; the current one is the one marked `isValid` (FREG: erGjeldende). A reader
that finds none takes nothing (never a historic value as if it were current). Unknown fields
are ignored; a field of the wrong JSON type raises, and the connector reports INVALID.

Address protection (adressebeskyttelse: fortrolig, formerly kode 7; strengt fortrolig, kode 6;
strengt fortrolig utland): a person whose current `addressProtection` registration is graded is
read with no home municipality and no address at all, whatever the document's
`residentialAddress` says, and `address_protection` is ADDRESS_PROTECTED. Nothing downstream
(the planner, the cache, the audit, oversight, a log line) ever holds the municipality, so no
caller can be shown it. A grade this reader does not know, or a current registration without
one, counts as protected: the reader fails closed.

>>> graded = {"id": "p2", "addressProtection": [{"isValid": True,
...                                               "classification": "strengtFortrolig"}],
...           "residentialAddress": [{"isValid": True,
...                                   "streetAddress": {"municipalityNumber": "0301"}}]}
>>> item = demographics(graded, now())
>>> (item.home_municipality, item.home_municipality_name, item.address_protection)
(None, None, 'ADDRESS_PROTECTED')

>>> person = {"id": "p1", "name": [{"isValid": True, "givenName": "Ola", "familyName": "Nordmann"}],
...           "residentialAddress": [{"isValid": True,
...                                   "streetAddress": {"municipalityNumber": "0301"}}]}
>>> item = demographics(person, now())
>>> (item.name, item.home_municipality)
('Ola Nordmann', '0301')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from connectors import Demographics, Provenance
from connectors.fhir import now

SOURCE = "persontjenesten"
# Every information part Kilde reads, and only those (data minimisation: no address lines,
# no family, no contact information).
INFORMATION_PARTS = ("Name", "Birth", "Gender", "Status", "Death", "ResidentialAddress",
                     "AddressProtection")
MUNICIPALITY = re.compile(r"\d{4}")
GENDERS = {"male": "male", "female": "female"}
# The residential address's three forms; one is in use (FREG: Bostedsadresse).
ADDRESS_FORMS = ("streetAddress", "cadastralAddress", "unknownResidence")
# The one label Kilde gives a protected address (the grade itself is not passed on: every
# grade is withheld the same way, and which grade a person has is itself confidential).
ADDRESS_PROTECTED = "ADDRESS_PROTECTED"
# Folkeregisteret's code list Adressegradering (graderingsnivaa): ugradert, fortrolig,
# strengtFortrolig, strengtFortroligUtland, compared without case, spaces, '-' or '_'. Only
# "ugradert" (or an English rendering of it) is not a protection; any other value, an English
# "StrictlyConfidential" as much as one this reader has never seen, or none at all, is.
UNGRADED = frozenset({"ugradert", "unclassified", "ungraded"})
# Where a registration may name its grade (the first one present is read).
GRADE_KEYS = ("classification", "graderingsnivaa", "protectionLevel")

__all__ = ["ADDRESS_PROTECTED", "INFORMATION_PARTS", "SOURCE", "demographics", "now"]


def demographics(person: Mapping[str, Any], fetched_at: datetime) -> Demographics:
    """One Person document as a `Demographics` item (raises on a field of the wrong type)."""
    if not isinstance(person, Mapping):
        raise TypeError("a Person document is a JSON object")
    person_id = person.get("id")
    if not isinstance(person_id, str) or not person_id:
        raise ValueError("a Person document has an id")
    name = _current(person, "name")
    birth = _current(person, "birth")
    gender = _current(person, "gender")
    status = _current(person, "status")
    death = _death(person)
    protected = _protected(person)
    # a protected address is never read: not its municipality, not its name
    home, home_name = (None, None) if protected else _home(person)
    given = _text(name, "givenName", "middleName")
    family = _text(name, "familyName")
    full = " ".join(p for p in (given, family) if p) or None
    registry_status = _str(status, "status")
    deceased_date = _day(death.get("deceasedDate")) if death else None
    deceased = registry_status == "Deceased" or deceased_date is not None
    return Demographics(
        id=person_id,
        provenance=Provenance(source=SOURCE, record_id=person_id, fetched_at=fetched_at),
        name=full,
        given_name=given,
        family_name=family,
        birth_date=_day(birth.get("birthDate")) if birth else None,
        gender=GENDERS.get((_str(gender, "gender") or "").lower(), "unknown" if gender else None),
        home_municipality=home,
        home_municipality_name=home_name,
        registry_status=registry_status,
        deceased=deceased,
        deceased_date=deceased_date,
        address_protection=ADDRESS_PROTECTED if protected else None,
    )


def _current(person: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """The registration of an information part marked current (`isValid`), or None."""
    registrations = person.get(key)
    if registrations is None:
        return None
    if not isinstance(registrations, Sequence) or isinstance(registrations, str | bytes):
        raise TypeError(f"{key} is a list of registrations")
    current = None
    for registration in registrations:
        if not isinstance(registration, Mapping):
            raise TypeError(f"a {key} registration is an object")
        if registration.get("isValid") is True:
            current = registration
    return current


def _death(person: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """`death` is one registration (not a list) in the Person document."""
    death = person.get("death")
    if death is None:
        return None
    if not isinstance(death, Mapping):
        raise TypeError("death is an object")
    return death if death.get("isValid", True) is not False else None


def _protected(person: Mapping[str, Any]) -> bool:
    """Is the person's current address graded (fortrolig, strengt fortrolig, ... utland)?

    Only the registration marked current counts (a protection that has ended is history). A
    current registration whose grade is missing or unknown counts as protected."""
    registration = _current(person, "addressProtection")
    if registration is None:
        return False
    grade = next((registration[k] for k in GRADE_KEYS if registration.get(k) is not None), None)
    if grade is None:
        return True
    if not isinstance(grade, str):
        raise TypeError("an address protection grade is a string")
    plain = re.sub(r"[\s_-]", "", grade).lower()
    return plain not in UNGRADED


def _home(person: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The current residential address's municipality (kommunenummer) and its name."""
    address = _current(person, "residentialAddress")
    if address is None:
        return None, None
    for form in ADDRESS_FORMS:
        part = address.get(form)
        if part is None:
            continue
        if not isinstance(part, Mapping):
            raise TypeError(f"residentialAddress.{form} is an object")
        number = _str(part, "municipalityNumber")
        if number is None:
            continue
        if not MUNICIPALITY.fullmatch(number):
            raise ValueError("a municipality number has four digits")
        return number, _str(part, "municipalityName")
    return None, None


def _text(registration: Mapping[str, Any] | None, *keys: str) -> str | None:
    if registration is None:
        return None
    parts = [_str(registration, key) for key in keys]
    return " ".join(p.strip() for p in parts if p and p.strip()) or None


def _str(registration: Mapping[str, Any] | None, key: str) -> str | None:
    if registration is None:
        return None
    value = registration.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{key} is a string")
    return value


def _day(value: Any) -> date | None:
    """A date the registry sends as a date-time whose time and zone must be ignored."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("a date is a string")
    return date.fromisoformat(value[:10])
