"""Alerts (shape stage): the first-screen warnings, derived from treatment limitations and
critical information of every source, after the judge stage.

Clinical order: a conflict between treatment-limitation decisions first (sources disagree:
the clinician must know before acting on either), then the disagreeing decisions newest first,
then the other treatment limitations (HLR-minus first, by meaning, not by one code), then
severe allergies/CAVE, critical conditions, anaesthesia complications, other allergies, then
the rest. Only active items alert. `build_alerts` takes limitations already annotated by
`schema.shape.conflicts.annotate` and critical information already merged by
`schema.shape.critical.merge_critical`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter

from connectors.model import (
    Alert,
    AlertKind,
    CriticalInformation,
    CriticalType,
    LimitationMeaning,
    TreatmentLimitation,
)
from schema.shape.conflicts import Conflict, conflicts, decided

_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)
CONFLICT_TITLE = "Motstridende behandlingsavklaringer"


# the members, looked up once: an Enum class attribute is a slow look-up, per item of 1,000
_ALLERGY, _CONDITION, _ANAESTHESIA = (CriticalType.ALLERGY, CriticalType.CRITICAL_CONDITION,
                                      CriticalType.ANAESTHESIA_COMPLICATION)
_SEVERE_ALLERGY, _OTHER_ALLERGY = (2, AlertKind.ALLERGY), (5, AlertKind.ALLERGY)
_CONDITION_ALERT = (3, AlertKind.CRITICAL_CONDITION)
_ANAESTHESIA_ALERT = (4, AlertKind.ANAESTHESIA_COMPLICATION)
_OTHER = (6, AlertKind.OTHER_CRITICAL)
_ALLERGY_KIND = AlertKind.ALLERGY


def _critical_priority(item: CriticalInformation) -> tuple[int, AlertKind]:
    kind = item.type
    if kind is _ALLERGY:
        return _SEVERE_ALLERGY if item.severity in ("severe", "high") else _OTHER_ALLERGY
    if kind is _CONDITION:
        return _CONDITION_ALERT
    if kind is _ANAESTHESIA:
        return _ANAESTHESIA_ALERT
    return _OTHER


def _where(item: TreatmentLimitation) -> str:
    store = item.provenance.municipality
    return f"{item.provenance.source} ({store})" if store else item.provenance.source


def conflict_alert(conflict: Conflict) -> Alert:
    """One alert naming every disagreeing decision, its source and date, newest first."""
    newest = conflict.decisions[0]
    parts = [f"{_where(d)} {d.decided_at.date().isoformat() if d.decided_at else 'udatert'}: "
             f"{d.code.display or d.description}" for d in conflict.decisions]
    return Alert(
        kind=AlertKind.CONFLICT,
        priority=1,
        title=CONFLICT_TITLE,
        detail="Kildene er uenige. " + "; ".join(parts) + ". Avklar før du handler på én av dem.",
        code=newest.code,
        provenance=newest.provenance,
        item_id=newest.id,
        provenances=tuple(d.provenance for d in conflict.decisions),
        item_ids=tuple(d.id for d in conflict.decisions),
        meaning=newest.meaning,
        conflicts_with=tuple(d.provenance for d in conflict.decisions[1:]),
    )


def build_alerts(
    limitations: Sequence[TreatmentLimitation], critical: Sequence[CriticalInformation]
) -> list[Alert]:
    """Active limitations and critical information as alerts, most important first."""
    alerts: list[tuple[tuple[float, ...], Alert]] = []
    for rank, conflict in enumerate(conflicts(limitations)):
        alerts.append(((-1, rank), conflict_alert(conflict)))
    for tl in limitations:
        if tl.status != "active":
            continue
        # in a conflict: newest first, whatever it says; otherwise HLR-minus before the rest
        if tl.conflicts_with:
            key: tuple[float, ...] = (0, 0, -decided(tl).timestamp())
        else:
            key = (0, 1 if tl.meaning is LimitationMeaning.HLR_MINUS else 2,
                   -decided(tl).timestamp())
        alerts.append((key, Alert(
            kind=AlertKind.TREATMENT_LIMITATION,
            priority=1,
            title=tl.code.display or tl.description,
            detail=tl.description,
            code=tl.code,
            provenance=tl.provenance,
            item_id=tl.id,
            provenances=(tl.provenance,),
            item_ids=(tl.id,),
            meaning=tl.meaning,
            conflicts_with=tl.conflicts_with,
        )))
    for ci in critical:
        if ci.status != "active":
            continue
        priority, kind = _critical_priority(ci)
        title = ci.description if kind is not _ALLERGY_KIND else f"CAVE {ci.description}"
        alerts.append(((priority, -(ci.recorded_at or _EPOCH).timestamp()), Alert(
            kind=kind,
            priority=priority,
            title=title,
            detail=ci.reaction,
            code=ci.code,
            provenance=ci.provenance,
            item_id=ci.id,
            provenances=ci.provenances or (ci.provenance,),
            item_ids=(ci.id,),
        )))
    alerts.sort(key=itemgetter(0))
    return [a[1] for a in alerts]
