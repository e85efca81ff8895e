"""Clinical ordering of each category's items (shape stage): what a clinician should see first.

Pure: the `Patient` field resolvers sort the judged items of every source with these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

_OLD = datetime(1900, 1, 1, tzinfo=UTC)
_OLD_DATE = date(1900, 1, 1)
_ACTIVE_FIRST = {"active": 0, "planned": 1, "on-hold": 2}


def _rank(status: str) -> int:
    return _ACTIVE_FIRST.get(status, 9)


def order_limitations(items: Sequence[Any]) -> list[Any]:
    return sorted(items, key=lambda i: (_rank(i.status), -(i.decided_at or _OLD).timestamp()))


def order_critical(items: Sequence[Any]) -> list[Any]:
    kinds = {"ALLERGY": 0, "CRITICAL_CONDITION": 1, "ANAESTHESIA_COMPLICATION": 2}
    return sorted(items, key=lambda i: (_rank(i.status), kinds.get(i.type.value, 5),
                                        -(i.recorded_at or _OLD).timestamp()))


def order_services(items: Sequence[Any]) -> list[Any]:
    return sorted(items, key=lambda i: (_rank(i.status), -(i.started or _OLD_DATE).toordinal()))


def order_conditions(items: Sequence[Any]) -> list[Any]:
    return sorted(items, key=lambda i: (_rank(i.clinical_status),
                                        -(i.onset or _OLD_DATE).toordinal()))


def order_labs(items: Sequence[Any]) -> list[Any]:
    return sorted(items, key=lambda i: -(i.issued_at or i.effective_at or _OLD).timestamp())


def order_documents(items: Sequence[Any]) -> list[Any]:
    return sorted(items, key=lambda i: -(i.date or _OLD).timestamp())
