"""Bulk records for load tests: the multi-service patient with N extra synthetic records.

Sits between the fault knobs and the fakes. A source's `items` knob
(`KILDE_SANDBOX__<SOURCE>__ITEMS=N` at start, `PUT /_sandbox/faults/<source>` with
`{"items": N}` at run time) makes `FaultMiddleware` run that source's requests inside
`items_scope(N)`; the fakes look patients up with `patient()` instead of `world.patient()`, so
the `multi-service` patient comes back with N extra records of every kind and each fake renders
the kind it serves: municipal stores N more services, Kjernejournal N more allergies, PLL and
e-resept N more medications, Pasientens prøvesvar N more lab reports. Every other patient, and
every request outside a scope, is exactly `sandbox.world`. All of it is synthetic.

>>> with items_scope(3):
...     len(patient(world.by_tag("multi-service").nin).services)
7
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from datetime import date, datetime, timedelta

from sandbox import world

# Request-scoped, not global state: each ASGI request runs in its own task and context, so
# concurrent requests to different sources each see their own source's count.
_ITEMS: ContextVar[int] = ContextVar("kilde_sandbox_bulk_items", default=0)
TAG = "multi-service"
MAX_ITEMS = 100_000
_START = date(2020, 1, 1)
_RECORDED = datetime.fromisoformat("2020-01-01T08:00:00+01:00")


@contextmanager
def items_scope(items: int) -> Iterator[None]:
    """Within this block, `patient()` adds `items` extra records to the multi-service patient."""
    token = _ITEMS.set(max(0, min(int(items), MAX_ITEMS)))
    try:
        yield
    finally:
        _ITEMS.reset(token)


def current_items() -> int:
    """The extra-record count of the current scope (0 outside one)."""
    return _ITEMS.get()


def patient(nin: str) -> world.Patient | None:
    """`world.patient(nin)`, with the current scope's extra records for the multi-service patient."""
    found = world.patient(nin)
    items = _ITEMS.get()
    if found is None or items <= 0 or TAG not in found.tags:
        return found
    return _expanded(found.nin, items)


@functools.lru_cache(maxsize=32)
def _expanded(nin: str, items: int) -> world.Patient:
    base = world.patient(nin)
    if base is None:
        raise LookupError("Bulk records are only added to patients in the sandbox world.")
    days = [timedelta(days=i % 2000) for i in range(items)]
    return replace(
        base,
        services=base.services + tuple(
            world.ServiceFact(f"svc-bulk-{i}", "15", "Helsetjenester i hjemmet", "active",
                              _START + d, base.municipality, "960000005", _START + d,
                              description=f"Syntetisk tjeneste {i}")
            for i, d in enumerate(days)),
        allergies=base.allergies + tuple(
            world.AllergyFact(f"cave-bulk-{i}", world.SNOMED, "255620007",
                              f"Syntetisk allergen {i}", "Urtikaria", "moderate",
                              _RECORDED + d, world.KJERNEJOURNAL, drug_reaction=False)
            for i, d in enumerate(days)),
        medications=base.medications + tuple(
            world.MedicationFact(f"med-bulk-{i}", "A02BC01", f"Syntetisk legemiddel {i} 20 mg",
                                 "1 tablett daglig", _START + d, in_pll=True,
                                 pll_id=f"pll-bulk-{i}", prescription_id=f"rx-bulk-{i}",
                                 treatment_id=f"tr-bulk-{i}")
            for i, d in enumerate(days)),
        lab_reports=base.lab_reports + tuple(
            world.LabReportFact(f"lab-bulk-{i}", "LAB", "NOR09000", "Klinisk kjemi",
                                _RECORDED - d, _RECORDED - d, "Fürst Medisinsk Laboratorium",
                                (world.HB,))
            for i, d in enumerate(days)),
    )
