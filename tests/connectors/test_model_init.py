"""The model's items are built by a quicker `__init__` (`connectors.frozen.quick_init`) that
changes nothing a caller can see: signature, defaults, factories, frozenness, equality, hash,
repr, `dataclasses.replace`, pickling."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from datetime import UTC, datetime

import pytest

from connectors import model
from connectors.frozen import quick_init

AT = datetime(2026, 1, 2, tzinfo=UTC)
FROZEN_SLOTTED = [c for _, c in inspect.getmembers(model, inspect.isclass)
                  if dataclasses.is_dataclass(c) and c.__module__ == model.__name__
                  and c.__dataclass_params__.frozen and "__slots__" in c.__dict__]  # type: ignore[attr-defined]


def twins() -> tuple[type, type]:
    """The same declaration twice: as dataclasses makes it, and with the quick `__init__`."""
    def declare() -> type:
        @dataclasses.dataclass(frozen=True, slots=True)
        class Record:
            source: str
            record_id: str
            recorded_at: datetime | None = dataclasses.field(default=None, kw_only=True)
            fetched_at: datetime
            tags: tuple[str, ...] = dataclasses.field(default_factory=tuple)
            count: int = dataclasses.field(default=0, kw_only=True)
        return Record
    return declare(), quick_init(declare())


def test_every_frozen_model_type_has_thequick_init() -> None:
    assert model.Coding in FROZEN_SLOTTED
    assert model.Medication in FROZEN_SLOTTED
    for cls in FROZEN_SLOTTED:
        code = cls.__init__.__code__  # type: ignore[misc]
        assert "__setattr__" not in code.co_names, cls.__name__
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"  # type: ignore[misc]


def test_thequick_init_keeps_the_signature_and_annotations() -> None:
    plain, quick = twins()
    assert inspect.signature(quick) == inspect.signature(plain)
    assert str(inspect.signature(quick)) == str(inspect.signature(plain))
    assert quick.__init__.__annotations__ == plain.__init__.__annotations__  # type: ignore[misc]
    assert str(inspect.signature(model.Provenance)) == (
        "(source: 'str', record_id: 'str', fetched_at: 'datetime', *, "
        "recorded_at: 'datetime | None' = None, from_cache: 'bool' = False, "
        "municipality: 'str | None' = None) -> None")


def test_thequick_init_builds_what_dataclasses_builds() -> None:
    plain, quick = twins()
    a, b = plain("kj", "r1", AT, recorded_at=AT), quick("kj", "r1", AT, recorded_at=AT)
    assert repr(a).replace("Record", "") == repr(b).replace("Record", "")
    assert dataclasses.astuple(a) == dataclasses.astuple(b) == ("kj", "r1", AT, AT, (), 0)
    assert quick("kj", "r1", fetched_at=AT) == quick("kj", "r1", AT)
    assert hash(quick("kj", "r1", AT)) == hash(quick("kj", "r1", AT))
    with pytest.raises(TypeError):
        quick("kj", "r1", AT, (), 0)  # count stays keyword-only
    with pytest.raises(TypeError):
        quick("kj", "r1")  # fetched_at stays required


def test_a_default_factory_is_called_for_each_instance() -> None:
    @quick_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Bag:
        items: list[int] = dataclasses.field(default_factory=list)

    first, second = Bag(), Bag()
    assert first.items == []
    assert first.items is not second.items
    assert Bag([1]).items == [1]
    assert model.Tenant("0301", "Oslo").orgnr == ()


def test_items_stay_frozen_and_behave_as_values() -> None:
    coding = model.Coding("urn:oid:2.16.578.1.12.4.1.1.7170", "K86", "Hypertensjon")
    with pytest.raises(dataclasses.FrozenInstanceError):
        coding.code = "K87"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del coding.code  # type: ignore[misc]
    assert repr(coding) == ("Coding(system='urn:oid:2.16.578.1.12.4.1.1.7170', code='K86', "
                            "display='Hypertensjon')")
    assert coding == model.Coding(coding.system, coding.code, coding.display)
    assert hash(coding) == hash((coding.system, coding.code, coding.display))
    assert dataclasses.replace(coding, display=None) == model.Coding(coding.system, "K86")
    provenance = model.Provenance("kj", "r1", AT, municipality="0301")
    assert pickle.loads(pickle.dumps(provenance)) == provenance
    assert copy.copy(provenance) == provenance == copy.deepcopy(provenance)


@pytest.mark.parametrize("declaration", ["mutable", "no slots", "post_init"])
def test_thequick_init_refuses_what_it_cannot_keep(declaration: str) -> None:
    if declaration == "mutable":
        @dataclasses.dataclass(slots=True)
        class Thing:
            x: int
    elif declaration == "no slots":
        @dataclasses.dataclass(frozen=True)
        class Thing:  # type: ignore[no-redef]
            x: int
    else:
        @dataclasses.dataclass(frozen=True, slots=True)
        class Thing:  # type: ignore[no-redef]
            x: int

            def __post_init__(self) -> None:
                pass
    with pytest.raises(TypeError, match="not a frozen dataclass with slots"):
        quick_init(Thing)
