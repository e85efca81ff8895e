"""Norwegian person identifiers: fødselsnummer (FNR), D-nummer (DNR), felles hjelpenummer (FHN).

Used at the edge (the schema validates `nin` arguments before any fetch) and by the sandbox to
generate synthetic patients. Mod-11 with two control digits; validation never derives gender.

>>> is_valid_nin("12057900499")
True
>>> is_valid_nin("12057900498")
False
"""

from __future__ import annotations

from datetime import date

FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.2"
FHN_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.3"
HPR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.4"
ORGNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.101"
PERSON_SYSTEMS = frozenset({FNR_SYSTEM, DNR_SYSTEM, FHN_SYSTEM})

_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _control(digits: str, weights: tuple[int, ...]) -> int | None:
    k = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11
    if k == 11:
        return 0
    if k == 10:
        return None
    return k


def control_digits(first_nine: str) -> str | None:
    """The two control digits for nine leading digits, or None when no valid number exists."""
    k1 = _control(first_nine, _W1)
    if k1 is None:
        return None
    k2 = _control(first_nine + str(k1), _W2)
    if k2 is None:
        return None
    return f"{k1}{k2}"


def is_valid_nin(value: str) -> bool:
    """True for an 11-digit number with valid mod-11 control digits (FNR, DNR or FHN)."""
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        return False
    # `control_digits`, unrolled over the ASCII codes (every number asked about, and each of a
    # store's records, is checked): 48 is "0", and 45 and 39 are the sums of the weights
    d = value.encode()
    k1 = 11 - (3 * d[0] + 7 * d[1] + 6 * d[2] + d[3] + 8 * d[4] + 9 * d[5] + 4 * d[6]
               + 5 * d[7] + 2 * d[8] - 48 * 45) % 11
    if k1 == 11:
        k1 = 0
    k2 = 11 - (5 * d[0] + 4 * d[1] + 3 * d[2] + 2 * d[3] + 7 * d[4] + 6 * d[5] + 5 * d[6]
               + 4 * d[7] + 3 * d[8] - 48 * 39 + 2 * k1) % 11
    if k2 == 11:
        k2 = 0
    return k1 != 10 and k2 != 10 and d[9] - 48 == k1 and d[10] - 48 == k2


def nin_kind(value: str) -> str:
    """'FHN' (day >= 80), 'DNR' (day + 40) or 'FNR'; assumes `is_valid_nin(value)`."""
    day = int(value[:2])
    if day >= 80:
        return "FHN"
    if day > 40:
        return "DNR"
    return "FNR"


def nin_system(value: str) -> str:
    return {"FHN": FHN_SYSTEM, "DNR": DNR_SYSTEM, "FNR": FNR_SYSTEM}[nin_kind(value)]


def make_nin(born: date, individual: int, *, d_number: bool = False) -> str | None:
    """A valid FNR (or DNR) for a birth date and a three-digit individual number, or None
    when that individual number gives control digit 10 (the caller tries the next one)."""
    day = born.day + (40 if d_number else 0)
    first_nine = f"{day:02d}{born.month:02d}{born.year % 100:02d}{individual:03d}"
    digits = control_digits(first_nine)
    return None if digits is None else first_nine + digits


def is_valid_orgnr(value: str) -> bool:
    """Enhetsregisteret organisation number: 9 digits, weights (3,2,7,6,5,4,3,2,1), mod 11 == 0."""
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        return False
    return sum(int(d) * w for d, w in zip(value, (3, 2, 7, 6, 5, 4, 3, 2, 1), strict=True)) % 11 == 0
