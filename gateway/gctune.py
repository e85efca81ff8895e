"""Garbage-collector settings for a serving process: freeze what start-up built, collect less often.

Sits under the app factory: `create_app(..., tune_gc=True)` (what `kilde serve` builds, in
every worker) calls `after_start()` once the lifespan has built everything. CPython's cyclic
collector runs its youngest generation every 700 net container allocations; one legevakt
answer allocates tens of thousands (decoded upstream JSON, items, the answer's dicts), so
in-flight requests were traversed again and again and promoted into the old generations,
where each full collection walked the whole heap (schema, modules, settings: ~100,000
objects). bench/cpu.py measured the collector at 3-12 ms of CPU per request (gc.callbacks,
2026-12-02, shared machine), full collections of 80-180 ms each, the stalls behind the
concurrency-1 tail. `gc.freeze()` moves the start-up heap out of every collection (it lives
as long as the process anyway) and the higher thresholds let a request's short-lived objects
die by reference count before any collection sees them. Cycles are still collected.
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 20, 50)  # youngest generation every 20,000 net allocations


def after_start() -> None:
    """Collect once, freeze the survivors (the app as built), and raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
