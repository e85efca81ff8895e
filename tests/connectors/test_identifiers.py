"""Mod-11 person numbers: `is_valid_nin` (unrolled for speed) agrees with `control_digits`
(the rule as written) on every kind of number."""

from __future__ import annotations

import random
from datetime import date

import pytest

from connectors.identifiers import control_digits, is_valid_nin, make_nin, nin_kind


def by_the_rule(value: str) -> bool:
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        return False
    return control_digits(value[:9]) == value[9:]


def test_is_valid_nin_agrees_with_the_rule_on_valid_and_invalid_numbers() -> None:
    rnd = random.Random(20261203)
    valid = 0
    for _ in range(20_000):
        first_nine = "".join(rnd.choice("0123456789") for _ in range(9))
        digits = control_digits(first_nine)
        numbers = [first_nine + f"{rnd.randrange(100):02d}"]
        if digits is not None:
            numbers += [first_nine + digits, first_nine + digits[::-1]]
        for number in numbers:
            assert is_valid_nin(number) is by_the_rule(number), number
            valid += by_the_rule(number)
    assert valid > 10_000  # both outcomes were exercised


@pytest.mark.parametrize("value", [
    "12057900499", "12057900498", "1205790049", "120579004990", "1205790049x",
    "\u0661\u0662\u0660\u0665\u0667\u0669\u0660\u0660\u0664\u0669\u0669",  # Arabic-Indic
    "", "00000000000", " 2057900499",
])
def test_is_valid_nin_agrees_with_the_rule_on_odd_input(value: str) -> None:
    assert is_valid_nin(value) is by_the_rule(value)


def test_made_numbers_are_valid_and_of_their_kind() -> None:
    made = [n for i in range(200) if (n := make_nin(date(1979, 5, 12), i)) is not None]
    d_numbers = [n for i in range(200)
                 if (n := make_nin(date(1979, 5, 12), i, d_number=True)) is not None]
    assert made
    assert d_numbers
    assert all(is_valid_nin(n) and nin_kind(n) == "FNR" for n in made)
    assert all(is_valid_nin(n) and nin_kind(n) == "DNR" for n in d_numbers)
