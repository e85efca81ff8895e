"""Merging critical information (shape stage): the same CAVE from two sources is one item.

Sits after the judge stage, before `alerts` and the `criticalInformation` field. A CAVE (or any
critical information) recorded both in Kjernejournal and in the municipal EPJ becomes one item
with both provenances (Kjernejournal first: the national record), when they are of the same
type and name the same thing: the same code in the same system, or the same words. Where the
sources disagree (severity, reaction, status), `conflicts` names the field; the worst severity
is shown. Records from one source are never merged with each other. Pure.

>>> merge_critical([])
[]
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

from connectors.model import CriticalInformation

T = TypeVar("T")

SOURCE_ORDER = ("kjernejournal", "municipal")
_SEVERITY = {"mild": 1, "low": 1, "moderate": 2, "severe": 3, "high": 3}
COMPARED = ("severity", "reaction", "status")


def _rank(item: CriticalInformation) -> int:
    source = item.provenance.source
    return SOURCE_ORDER.index(source) if source in SOURCE_ORDER else len(SOURCE_ORDER)


def _words(text: str | None) -> str:
    return " ".join((text or "").casefold().split())


def _same(a: CriticalInformation, b: CriticalInformation) -> bool:
    if a.type is not b.type:
        return False
    if a.code.code and (a.code.system, a.code.code) == (b.code.system, b.code.code):
        return True
    return bool(_words(a.description)) and _words(a.description) == _words(b.description)


def merge_critical(items: Sequence[CriticalInformation]) -> list[CriticalInformation]:
    """One item per piece of critical information, however many sources hold it."""
    groups: list[list[CriticalInformation]] = []
    sources: list[set[str]] = []
    # per key (what `_same` compares), the groups holding it, and per key and source a heap
    # of those still open to that source (a group only gains sources, so one that holds the
    # source is dropped for good): a look-up per item instead of a walk over every member of
    # every group, which was quadratic at 1,000 records per source (bench/RESULTS.md)
    holding: dict[tuple[object, ...], set[int]] = {}
    open_to: dict[tuple[object, ...], dict[str, list[int]]] = {}
    for item in sorted(items, key=_rank):
        source = item.provenance.source
        keys = _keys(item)
        index = None
        for key in keys:
            i = _first_open(key, source, holding, open_to, sources)
            if i is not None and (index is None or i < index):
                index = i
        if index is None:
            index = len(groups)
            groups.append([])
            sources.append(set())
        groups[index].append(item)
        sources[index].add(source)
        for key in keys:
            held = holding.setdefault(key, set())  # a set: 1,000 CAVEs may share one code
            if index not in held:
                held.add(index)
                by_source = open_to.get(key)
                if by_source:
                    for other, heap in by_source.items():
                        if other not in sources[index]:
                            heapq.heappush(heap, index)
    return [_merge(g) for g in groups]


def _first_open(key: tuple[object, ...], source: str, holding: dict[tuple[object, ...], set[int]],
                open_to: dict[tuple[object, ...], dict[str, list[int]]],
                sources: list[set[str]]) -> int | None:
    """The first group holding `key` that has no item from `source` yet."""
    by_source = open_to.get(key)
    if by_source is None:
        by_source = open_to[key] = {}
    heap = by_source.get(source)
    if heap is None:
        heap = by_source[source] = [i for i in holding.get(key, ()) if source not in sources[i]]
        heapq.heapify(heap)
    while heap and source in sources[heap[0]]:
        heapq.heappop(heap)
    return heap[0] if heap else None


def _keys(item: CriticalInformation) -> list[tuple[object, ...]]:
    """What `_same` compares, as keys: two items are the same when they share one."""
    keys: list[tuple[object, ...]] = []
    if item.code.code:
        keys.append(("code", item.type, item.code.system, item.code.code))
    words = _words(item.description)
    if words:
        keys.append(("words", item.type, words))
    return keys


def _merge(group: list[CriticalInformation]) -> CriticalInformation:
    base = group[0]
    provenances = _unique(p for m in group for p in (m.provenances or (m.provenance,)))
    if len(group) == 1:
        if base.provenances:
            return base
        return type(base)(  # one construction, not `replace` (`_FIELDS`, tested)
            id=base.id, type=base.type, code=base.code, description=base.description,
            status=base.status, severity=base.severity, reaction=base.reaction,
            verification=base.verification, recorded_at=base.recorded_at,
            provenance=base.provenance, provenances=tuple(provenances),
            conflicts=base.conflicts, security=base.security)
    conflicts = [name for name in COMPARED
                 if len({_words(getattr(m, name)) for m in group} - {""}) > 1]
    worst = max((m.severity for m in group if m.severity),
                key=lambda s: _SEVERITY.get(s, 0), default=base.severity)
    reactions = _unique(m.reaction for m in group if m.reaction)
    return replace(
        base,
        provenances=tuple(provenances),
        severity=worst,
        reaction=", ".join(reactions) if reactions else None,
        status="active" if any(m.status == "active" for m in group) else base.status,
        recorded_at=max((m.recorded_at for m in group if m.recorded_at), default=None),
        conflicts=tuple(sorted(set(base.conflicts) | set(conflicts), key=_order)),
        security=tuple(_unique(s for m in group for s in m.security)),
    )


# The fields the one-item construction in `_merge` copies, in `CriticalInformation`'s order.
_FIELDS = ("id", "type", "code", "description", "status", "severity", "reaction",
           "verification", "recorded_at", "provenance", "provenances", "conflicts", "security")


def _order(name: str) -> int:
    return COMPARED.index(name) if name in COMPARED else len(COMPARED)


def _unique(values: Iterable[T | None]) -> list[T]:
    seen: list[T] = []
    for value in values:
        if value is not None and value not in seen:
            seen.append(value)
    return seen
