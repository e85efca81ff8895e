"""Alerts (shape stage): the first-screen warnings, derived from treatment limitations and
critical information of every source, after the judge stage.

Clinical order: treatment limitations (HLR-minus first), then severe allergies/CAVE, critical
conditions, anaesthesia complications, other allergies, then the rest. Only active items alert.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from connectors.model import (
    Alert,
    AlertKind,
    CriticalInformation,
    CriticalType,
    TreatmentLimitation,
)

HLR_MINUS_CODES = frozenset({"304253006"})  # SNOMED CT: not for resuscitation
_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)


def _critical_priority(item: CriticalInformation) -> tuple[int, AlertKind]:
    if item.type is CriticalType.ALLERGY:
        return (2 if item.severity in ("severe", "high") else 5), AlertKind.ALLERGY
    if item.type is CriticalType.CRITICAL_CONDITION:
        return 3, AlertKind.CRITICAL_CONDITION
    if item.type is CriticalType.ANAESTHESIA_COMPLICATION:
        return 4, AlertKind.ANAESTHESIA_COMPLICATION
    return 6, AlertKind.OTHER_CRITICAL


def build_alerts(
    limitations: Sequence[TreatmentLimitation], critical: Sequence[CriticalInformation]
) -> list[Alert]:
    """Active limitations and critical information as alerts, most important first."""
    alerts: list[tuple[int, float, Alert]] = []
    for tl in limitations:
        if tl.status != "active":
            continue
        priority = 0 if tl.code.code in HLR_MINUS_CODES else 1
        alerts.append((priority, -(tl.decided_at or _EPOCH).timestamp(), Alert(
            kind=AlertKind.TREATMENT_LIMITATION,
            priority=1,
            title=tl.code.display or tl.description,
            detail=tl.description,
            code=tl.code,
            provenance=tl.provenance,
            item_id=tl.id,
        )))
    for ci in critical:
        if ci.status != "active":
            continue
        priority, kind = _critical_priority(ci)
        title = ci.description if kind is not AlertKind.ALLERGY else f"CAVE {ci.description}"
        alerts.append((priority, -(ci.recorded_at or _EPOCH).timestamp(), Alert(
            kind=kind,
            priority=priority,
            title=title,
            detail=ci.reaction,
            code=ci.code,
            provenance=ci.provenance,
            item_id=ci.id,
        )))
    alerts.sort(key=lambda a: (a[0], a[1]))
    return [a[2] for a in alerts]
