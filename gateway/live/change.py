"""A change event: which patient's data changed where and when, nothing of the data itself.

Sits at the start of the live-update flow: every door that hears of a change (POST /events, a
FHIR subscription notification, Kilde's own writes) makes one `Change` and hands it to the
`ChangeBus`. The patient's identity number is in the value for this process's watchers only:
it is never in its repr, in a log line or on the wire (the relay sends a keyed hash).

>>> c = Change(nin="12345678901", source="municipal", categories=("treatment_limitations",),
...            origin="kilde")
>>> "12345678901" in repr(c)
False
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

# where a change was heard: the event store (POST /events), a write through Kilde, a FHIR
# store's subscription notification, or "resync" (this replica lost the relay for a while, so
# changes elsewhere may have been missed: clients re-query everything)
ORIGINS = ("events", "kilde", "fhir-subscription", "resync")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Change:
    """`categories` are `Category` values; empty means every category the source serves.
    `source` is None only for a resync. `municipality` narrows a municipal store's change to
    that municipality's store (a watcher who may not see that store hears nothing of it)."""

    nin: str = field(repr=False)
    source: str | None
    categories: tuple[str, ...] = ()
    origin: str = "events"
    changed_at: datetime = field(default_factory=_now)
    municipality: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        if self.origin not in ORIGINS:
            raise ValueError(f"A change's origin is one of {list(ORIGINS)}, not {self.origin!r}.")
        if self.changed_at.utcoffset() is None:
            raise ValueError("A change's time must be timezone-aware.")
