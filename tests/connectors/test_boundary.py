"""The boundary's field checks, fast path (a plain value judged by its type) and full check."""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, date, datetime

import pytest

from connectors.boundary import _check


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    when: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    name: str
    count: int
    weight: float
    flag: bool
    colour: Colour
    day: date
    note: str | None
    part: Part
    parts: tuple[Part, ...] = ()


GOOD = Item(name="a", count=1, weight=2, flag=False, colour=Colour.RED, day=date(2026, 1, 2),
            note=None, part=Part(datetime(2026, 1, 2, tzinfo=UTC)))


def test_a_good_item_passes() -> None:
    assert _check(Item)(GOOD, "items[0]") is None
    assert _check(Item)(dataclasses.replace(GOOD, weight=2.5, note="n"), "items[0]") is None


@pytest.mark.parametrize(("change", "said"), [
    ({"count": True}, "items[0].count is a bool, not a int"),
    ({"count": 1.5}, "items[0].count is a float, not a int"),
    ({"weight": True}, "items[0].weight is a bool, not a float"),
    ({"name": None}, "items[0].name is a NoneType, not a str"),
    ({"note": {"text": "x"}}, "items[0].note is a dict, not a str"),
    ({"colour": "red"}, "items[0].colour is a str, not a Colour"),
    ({"flag": 0}, "items[0].flag is a int, not a bool"),
    ({"part": Part(datetime(2026, 1, 2))}, "items[0].part.when has no time zone"),
    ({"parts": (Part(datetime(2026, 1, 2, tzinfo=UTC)), "x")},
     "items[0].parts[1] is a str, not a Part"),
])
def test_a_wrong_field_is_named_with_its_path(change: dict[str, object], said: str) -> None:
    assert _check(Item)(dataclasses.replace(GOOD, **change), "items[0]") == said  # type: ignore[arg-type]
