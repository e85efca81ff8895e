"""The boundary's field checks, fast path (a plain value judged by its type) and full check."""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, date, datetime

import pytest

from connectors import model
from connectors.base import SourceResult
from connectors.boundary import ITEM_TYPE, _check, _fault, _valid, result_problem


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


WRONG = [
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
]


@pytest.mark.parametrize(("change", "said"), WRONG)
def test_a_wrong_field_is_named_with_its_path(change: dict[str, object], said: str) -> None:
    assert _check(Item)(dataclasses.replace(GOOD, **change), "items[0]") == said  # type: ignore[arg-type]


@pytest.mark.parametrize(("change", "said"), WRONG)
def test_the_fast_path_leaves_a_wrong_field_to_the_full_check(
        change: dict[str, object], said: str) -> None:
    assert _valid(Item)(GOOD)
    assert not _valid(Item)(dataclasses.replace(GOOD, **change))  # type: ignore[arg-type]


class Name(str):
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class LaterPart(Part):
    pass


@pytest.mark.parametrize("change", [
    {"day": datetime(2026, 1, 2, tzinfo=UTC)},  # a datetime is a date
    {"name": Name("a")},
    {"part": LaterPart(datetime(2026, 1, 2, tzinfo=UTC))},
    {"parts": (LaterPart(datetime(2026, 1, 2, tzinfo=UTC)),)},
], ids=["datetime-for-date", "str-subclass", "dataclass-subclass", "in-a-tuple"])
def test_a_good_value_off_the_fast_path_is_passed_by_the_full_check(
        change: dict[str, object]) -> None:
    item = dataclasses.replace(GOOD, **change)  # type: ignore[arg-type]
    assert not _valid(Item)(item)
    assert _check(Item)(item, "items[0]") is None


def test_an_unset_field_fails_as_it_did_before_the_fast_path() -> None:
    empty = object.__new__(Part)
    assert not _valid(Part)(empty)
    with pytest.raises(AttributeError):
        _check(Part)(empty, "part")


AT = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
PROVENANCE = model.Provenance("pll", "r1", AT, recorded_at=AT, municipality="0301")
CODE = model.Coding("http://www.whocc.no/atc", "B01AF01", "Xarelto")
GOOD_ITEMS = {
    model.Medication: model.Medication(
        id="pll:r1", code=CODE, name="Xarelto", status="active",
        dosage=model.Dosage("1 x 1", CODE), reason=CODE, started=date(2026, 1, 1),
        pll_id="r1", in_pll=True, conflicts=("dosage",), provenance=PROVENANCE,
        provenances=(PROVENANCE,), security=(model.Coding("s", "R"),),
        records=(model.MedicationRecord(PROVENANCE, "Xarelto", CODE, "active",
                                        model.Dosage("1 x 1")),)),
    model.LabReport: model.LabReport(
        id="l1", category=CODE, code=CODE, status="final", issued_at=AT,
        results=(model.LabResult("o1", CODE, "13.4", "g/dL", interpretation=CODE,
                                 abnormal=True, level=1, effective_at=AT),),
        provenance=PROVENANCE),
    model.TreatmentLimitation: model.TreatmentLimitation(
        id="t1", code=CODE, description="HLR-minus", status="active", decided_at=AT,
        valid_until=date(2027, 1, 1), provenance=PROVENANCE,
        meaning=model.LimitationMeaning.HLR_MINUS, conflicts_with=(PROVENANCE,)),
    model.CriticalInformation: model.CriticalInformation(
        id="c1", type=model.CriticalType.ALLERGY, code=CODE, description="CAVE",
        provenance=PROVENANCE, provenances=(PROVENANCE,), conflicts=("severity",)),
    model.MunicipalService: model.MunicipalService(
        id="s1", code=CODE, status="active", municipality="0301", decided_at=date(2026, 1, 1),
        provenance=PROVENANCE),
    model.Condition: model.Condition(id="d1", code=CODE, clinical_status="active",
                                     onset=date(2020, 1, 1), provenance=PROVENANCE),
    model.DocumentReference: model.DocumentReference(
        id="n1", type=CODE, title="Notat", status="current", date=AT, provenance=PROVENANCE),
    model.Demographics: model.Demographics(
        id="p1", name="Kari", birth_date=date(1979, 5, 12), deceased=False,
        provenance=PROVENANCE),
}
ODD_VALUES = [None, "x", Name("x"), 0, 1.5, True, (), ("x",), (None,), {}, date(2026, 1, 1),
              datetime(2026, 1, 1), AT, CODE, PROVENANCE, model.CriticalType.OTHER]


def test_the_fast_path_takes_every_good_model_item() -> None:
    assert set(GOOD_ITEMS) == set(ITEM_TYPE.values())
    for cls, item in GOOD_ITEMS.items():
        assert _valid(cls)(item), cls.__name__
    result = SourceResult.of("pll", {c: [GOOD_ITEMS[t]] for c, t in ITEM_TYPE.items()})
    assert result_problem(result, frozenset(ITEM_TYPE)) is None


@pytest.mark.parametrize("cls", list(GOOD_ITEMS), ids=lambda c: c.__name__)
def test_the_fast_path_passes_nothing_the_full_check_faults(cls: type) -> None:
    # every field of every model item, and of the values nested in it, set to odd values
    def variants(value: object) -> list[object]:
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            return []
        out: list[object] = []
        for f in dataclasses.fields(value):
            inner = getattr(value, f.name)
            out += [dataclasses.replace(value, **{f.name: odd}) for odd in ODD_VALUES]
            nested = [inner] if dataclasses.is_dataclass(inner) else list(
                inner) if isinstance(inner, tuple) else []
            for part in nested:
                for changed in variants(part):
                    new = (changed if dataclasses.is_dataclass(inner) else
                           tuple(changed if x is part else x for x in inner))
                    out.append(dataclasses.replace(value, **{f.name: new}))
        return out

    checked = 0
    for item in variants(GOOD_ITEMS[cls]):
        if _valid(cls)(item):
            assert _fault(cls)(item) is None, item
            checked += 1
    assert checked  # some odd values are good ones (None where a field is optional)
