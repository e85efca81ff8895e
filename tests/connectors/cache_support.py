"""A scriptable fake source and a hand-wound clock for the cache and resilience tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.base import FetchRequest, Requester, SourceResult
from connectors.errors import ConnectorError
from connectors.model import Category, Coding, CriticalInformation, CriticalType, Provenance

NIN = "14033841389"  # synthetic (sandbox.world)
CATS = frozenset({Category.CRITICAL_INFORMATION})


class Clock:
    def __init__(self, start: float | None = None) -> None:
        self.now = datetime.now(UTC).timestamp() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def cave(source: str = "kjernejournal") -> CriticalInformation:
    return CriticalInformation(
        id="cave-1", type=CriticalType.ALLERGY, code=Coding("urn:atc", "J01CE", "Penicilliner"),
        description="CAVE Penicilliner",
        provenance=Provenance(source, "cave-1", datetime.now(UTC)))


@dataclass
class FakeSource:
    """Answers with one CAVE item, or raises `fail`, after `delay` seconds; counts calls."""

    name: str = "kjernejournal"
    categories: frozenset[Category] = CATS
    standard: str = "FHIR R4"
    delay: float = 0.0
    fail: Callable[[], ConnectorError] | None = None
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    requests: list[FetchRequest] = field(default_factory=list)

    async def fetch(self, request: FetchRequest) -> SourceResult:
        self.calls += 1
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail is not None:
                raise self.fail()
            return SourceResult.of(self.name, {c: (cave(self.name),) for c in request.categories})
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        pass


def request(**changes: object) -> FetchRequest:
    base: dict[str, object] = {
        "patient_nin": NIN, "categories": CATS,
        "requester": Requester(hpr_number="9144901", role_code="LE", orgnr="910000004",
                               point_of_care="974000001", purpose_of_use="ETREAT"),
        "municipalities": frozenset({"0301"}), "timeout": 1.0,
    }
    base.update(changes)
    return FetchRequest(**base)  # type: ignore[arg-type]
