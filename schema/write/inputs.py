"""The mutations' input types, and their checks: each field's value, or a field-level
BAD_USER_INPUT naming it (`extensions.field`, e.g. "input.decidedAt").

Sits in the schema before the write policy: nothing is decided, audited or sent for input
that does not hold. Free text follows the one text rule (schema/inputs.py) with a limit per
field; codes are checked by their system (a SNOMED CT concept id by its Verhoeff check digit,
an ATC code by its shape); times must carry a time zone and may not lie in the future.

>>> snomed_ok("304253006"), snomed_ok("304253007")
(True, False)
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import strawberry

from connectors.model import Coding, LimitationMeaning
from connectors.writing import (
    ClinicalNoteDraft,
    MedicationAdministrationDraft,
    TreatmentLimitationDraft,
)
from schema.errors import BadUserInputError
from schema.inputs import check_text
from schema.shape.terminology import Terminology

SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"
DOCUMENT_TYPE = "urn:oid:2.16.578.1.12.4.1.1.9602"  # Volven 9602, dokumenttype
ROUTE = "urn:oid:2.16.578.1.12.4.1.1.7477"  # Volven 7477, administrasjonsvei
NAME_LIMIT = 200  # a person's name, a title, a dose
REASON_LIMIT = 2000  # a decision's reason or a description
NOTE_LIMIT = 10_000  # a note's text
CLOCK_SKEW = timedelta(minutes=5)
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)

_SYSTEM = re.compile(r"(https?://[A-Za-z0-9.\-]+(/[A-Za-z0-9._~\-/]*)?|urn:oid:[0-2](\.\d+)+)")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,31}")
_SNOMED = re.compile(r"[1-9][0-9]{5,17}")
_ATC = re.compile(r"[A-V][0-9]{2}[A-Z]{2}[0-9]{2}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
_MUNICIPALITY = re.compile(r"\d{4}")

# Verhoeff's dihedral group tables: SNOMED CT's check digit (concept ids end in one)
_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6), (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4), (9, 8, 7, 6, 5, 4, 3, 2, 1, 0))
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2), (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8))


def snomed_ok(code: str) -> bool:
    """A SNOMED CT identifier: 6 to 18 digits whose last is the Verhoeff check digit."""
    if not _SNOMED.fullmatch(code):
        return False
    check = 0
    for i, digit in enumerate(reversed(code)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[i % 8][int(digit)]]
    return check == 0


def _bad(field: str, message: str) -> BadUserInputError:
    return BadUserInputError(f"'{field}' {message}", argument="input", field=field)


def _text(value: str | None, field: str, limit: int, *, required: bool) -> str | None:
    if value is None or not value.strip():
        if required:
            raise _bad(field, "is required and may not be blank.")
        return None
    try:
        check_text(value, field, limit)
    except BadUserInputError as exc:
        raise BadUserInputError(exc.message, argument="input", field=field) from None
    return value.strip()


def _instant(value: datetime, field: str, *, now: datetime) -> datetime:
    if value.utcoffset() is None:
        raise _bad(field, "must include a time zone, like 2026-01-31T08:00:00+01:00.")
    value = value.astimezone(UTC)
    if value > now + CLOCK_SKEW:
        raise _bad(field, "lies in the future.")
    if value < EARLIEST:
        raise _bad(field, "lies before 1900.")
    return value


def _system(value: str | None, field: str, default: str) -> str:
    system = (value or "").strip() or default
    if not _SYSTEM.fullmatch(system) or len(system) > 200:
        raise _bad(field, "must be a code system URI (http(s)://... or urn:oid:...).")
    return system


def _code(system: str, code: str, field: str) -> str:
    code = code.strip()
    if system == SNOMED:
        if not snomed_ok(code):
            raise _bad(field, "is not a SNOMED CT concept id (6-18 digits with a valid "
                              "check digit).")
    elif not _CODE.fullmatch(code):
        raise _bad(field, "must be 1-32 letters, digits, '.' or '-'.")
    return code


def municipality_of(value: str | None, field: str = "input.municipality") -> str | None:
    if value is None:
        return None
    if not _MUNICIPALITY.fullmatch(value):
        raise _bad(field, "must be a 4-digit municipality number (kommunenummer).")
    return value


def client_identifier_of(value: str | None) -> str | None:
    if value is None:
        return None
    if not _CLIENT_ID.fullmatch(value):
        raise _bad("input.clientIdentifier", "must be 1-64 letters, digits, '.', '_', ':' "
                                             "or '-', starting with a letter or digit.")
    return value


@strawberry.input(description="A treatment limitation (behandlingsavklaring) to record in the "
                  "store that owns it, e.g. HLR-minus.")
class TreatmentLimitationInput:
    code: str = strawberry.field(description="The decision's code: a SNOMED CT concept id "
                                 "(e.g. 304253006 Not for resuscitation) or a Norwegian code "
                                 "under `system`.")
    decided_by: str = strawberry.field(description="The responsible physician, as the record "
                                       "should name them.")
    reason: str = strawberry.field(description="Why the decision was made (free text).")
    decided_at: datetime = strawberry.field(description="When it was decided (with a time "
                                            "zone; not in the future).")
    system: str | None = strawberry.field(default=None, description="The code system; SNOMED "
                                          "CT when omitted.")
    display: str | None = strawberry.field(default=None, description="The code's display text.")
    description: str | None = None
    valid_until: date | None = strawberry.field(default=None, description="The last day the "
                                                "decision holds, when it is time-limited.")
    municipality: str | None = strawberry.field(default=None, description="The municipal store "
                                                "(kommunenummer) to record in; the caller's own "
                                                "when omitted.")
    client_identifier: str | None = strawberry.field(default=None, description="The client's "
                                                     "own id for this record: the same id "
                                                     "twice records it once.")


@strawberry.input(description="A clinical note to record in the patient's municipal store, e.g. "
                  "a legevakt visit note for the home municipality's care services.")
class ClinicalNoteInput:
    type_code: str = strawberry.field(description="The document type (Volven 9602 unless "
                                      "`typeSystem` says otherwise).")
    title: str
    text: str
    author: str
    date: datetime
    type_system: str | None = None
    type_display: str | None = None
    municipality: str | None = None
    client_identifier: str | None = None


@strawberry.input(description="One administration of a medicine in municipal care.")
class MedicationAdministrationInput:
    atc_code: str = strawberry.field(description="The medicine's ATC code, e.g. B01AF01.")
    name: str = strawberry.field(description="The product as given, e.g. 'Xarelto 20 mg "
                                 "tablett'.")
    dose: str = strawberry.field(description="What was given, e.g. '1 tablett'.")
    administered_at: datetime
    administered_by: str
    route_code: str | None = strawberry.field(default=None, description="Volven 7477 route "
                                              "code.")
    reason: str | None = None
    municipality: str | None = None
    client_identifier: str | None = None


def limitation_draft(value: TreatmentLimitationInput, terms: Terminology, *,
                     now: datetime) -> TreatmentLimitationDraft:
    system = _system(value.system, "input.system", SNOMED)
    code = _code(system, value.code, "input.code")
    display = _text(value.display, "input.display", NAME_LIMIT, required=False)
    decided_at = _instant(value.decided_at, "input.decidedAt", now=now)
    description = _text(value.description, "input.description", REASON_LIMIT, required=False)
    if terms.meaning_of(Coding(system, code, display), description) is LimitationMeaning.UNKNOWN:
        raise _bad("input.code", "is not a treatment limitation Kilde can tell the meaning of "
                                 "(HLR-minus, full treatment or another limitation): add it to "
                                 "the terminology file, or give a display text that says it.")
    if value.valid_until is not None and value.valid_until < decided_at.date():
        raise _bad("input.validUntil", "lies before the decision.")
    return TreatmentLimitationDraft(
        code=Coding(system, code, display),
        decided_by=_text(value.decided_by, "input.decidedBy", NAME_LIMIT, required=True) or "",
        decided_at=decided_at,
        reason=_text(value.reason, "input.reason", REASON_LIMIT, required=True) or "",
        description=description,
        valid_until=value.valid_until,
    )


def note_draft(value: ClinicalNoteInput, *, now: datetime) -> ClinicalNoteDraft:
    system = _system(value.type_system, "input.typeSystem", DOCUMENT_TYPE)
    return ClinicalNoteDraft(
        type=Coding(system, _code(system, value.type_code, "input.typeCode"),
                    _text(value.type_display, "input.typeDisplay", NAME_LIMIT, required=False)),
        title=_text(value.title, "input.title", NAME_LIMIT, required=True) or "",
        text=_text(value.text, "input.text", NOTE_LIMIT, required=True) or "",
        author=_text(value.author, "input.author", NAME_LIMIT, required=True) or "",
        date=_instant(value.date, "input.date", now=now),
    )


def administration_draft(value: MedicationAdministrationInput, *, now: datetime
                         ) -> MedicationAdministrationDraft:
    atc = value.atc_code.strip()
    if not _ATC.fullmatch(atc):
        raise _bad("input.atcCode", "is not an ATC code (like B01AF01).")
    route = None
    if value.route_code is not None:
        route = Coding(ROUTE, _code(ROUTE, value.route_code, "input.routeCode"))
    name = _text(value.name, "input.name", NAME_LIMIT, required=True) or ""
    return MedicationAdministrationDraft(
        medication=Coding(ATC, atc, name),
        name=name,
        dose=_text(value.dose, "input.dose", NAME_LIMIT, required=True) or "",
        administered_at=_instant(value.administered_at, "input.administeredAt", now=now),
        administered_by=_text(value.administered_by, "input.administeredBy", NAME_LIMIT,
                              required=True) or "",
        route=route,
        reason=_text(value.reason, "input.reason", REASON_LIMIT, required=False),
    )
