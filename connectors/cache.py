"""The cache wrapper: a Connector in front of a Connector, so the fan-out cannot tell them apart.

Sits between the fan-out and the resilience wrapper (cache -> resilience -> connector). It
caches a source's *raw* answer, before any policy: the schema judges privacy and items on every
request, hit or miss, and the audit records every delivery. Entries are brief (per-source TTL,
capped), sealed with AES-GCM and stored under an HMAC of everything in the request that can
change the upstream's answer (source, municipalities, categories, patient, access basis,
requester, `since`) and of the patient's *generation* for this source, which an event bumps to
evict. Identical concurrent misses share one upstream call (single flight, in this process;
across replicas through a short Redis lock). When a source fails transiently, an entry within
the max-stale window is served as STALE with its age.

A hit costs one Redis round trip per request, not two per source: the generations of every
source a request asks (its fetches start in the same loop turn) are read with one MGET, and
the decoded entry itself is kept in this process (`Cache.local`, at most `LOCAL_ENTRIES`,
least recently used out) under its own key for no longer than Redis keeps it, so a hit skips
the GET, the AES-GCM open and the decoding. The generation is still read from Redis every
time: an event any replica receives evicts the entry here at once (the key changes).

>>> cache = Cache(open_store("memory://"), CacheKeys.from_secret("x" * 32))  # doctest: +SKIP
>>> pll = CachedConnector(inner, cache, ttl=30, max_stale=600)             # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from connectors.base import Connector, FetchRequest, SourceResult
from connectors.cachestore import CacheStore, CacheUnavailableError
from connectors.codec import CodecError, decode, encode
from connectors.crypto import CacheKeys
from connectors.deadline import Budget
from connectors.errors import ConnectorError
from connectors.model import AnyCategory, Status

log = logging.getLogger("kilde.cache")
_HEADER = struct.Struct(">d")  # when the entry was stored (epoch seconds)
_LIVE = (Status.OK, Status.EMPTY, Status.PARTIAL)
LOCK_POLL_SECONDS = 0.02
LOCAL_ENTRIES = 512  # decoded entries kept in this process (bounded memory)


@dataclass(frozen=True, slots=True)
class Entry:
    result: SourceResult
    stored_at: float


class Cache:
    """What every cached connector shares: the store, the keys, the clock and the flights."""

    def __init__(self, store: CacheStore, keys: CacheKeys, *, max_lifetime: float = 900.0,
                 clock: Callable[[], float] = time.time, prefix: str = "kilde:") -> None:
        self.store = store
        self.keys = keys
        self.clock = clock
        self.prefix = prefix
        # a generation must outlive every entry written under the previous one
        self.generation_ttl = int(2 * max_lifetime) + 1
        self.flights: dict[str, asyncio.Future[SourceResult]] = {}
        # entry key -> (entry, the entry as served from cache, monotonic time it expires)
        self.local: OrderedDict[str, tuple[Entry, SourceResult, float]] = OrderedDict()
        self._wanted: dict[str, asyncio.Future[int]] = {}  # generations to read in one MGET

    def _generation_key(self, source: str, nin: str) -> str:
        return f"{self.prefix}gen:" + self.keys.key_for("generation", source, nin)

    async def generation(self, source: str, nin: str) -> int:
        """The patient's generation at `source`, read with every other generation asked in
        this loop turn (one round trip); raises CacheUnavailableError like the store."""
        key = self._generation_key(source, nin)
        future = self._wanted.get(key)
        if future is None:
            if not self._wanted:
                asyncio.get_running_loop().call_soon(self._read_generations)
            future = self._wanted[key] = asyncio.get_running_loop().create_future()
        return await asyncio.shield(future)

    def _read_generations(self) -> None:
        wanted, self._wanted = self._wanted, {}
        task = asyncio.ensure_future(self.store.counters(list(wanted)))

        def done(task: asyncio.Task[list[int]]) -> None:
            error = task.exception() if not task.cancelled() else CacheUnavailableError(
                "The generation read was cancelled.")
            for i, future in enumerate(wanted.values()):
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                    future.exception()  # retrieved: its caller may have gone
                else:
                    future.set_result(task.result()[i])

        task.add_done_callback(done)

    async def evict(self, source: str, nin: str) -> None:
        """Make every entry of this patient at this source unreachable (an event said so)."""
        await self.store.increment(self._generation_key(source, nin), self.generation_ttl)

    def entry_key(self, request: FetchRequest, source: str, generation: int) -> str:
        r = request.requester
        return f"{self.prefix}c:" + self.keys.key_for(
            "entry", source, str(generation),
            ",".join(sorted(request.municipalities)),
            ",".join(sorted(c.value for c in request.categories)),
            request.patient_nin, request.access_basis.value,
            r.hpr_number or "", r.role_code or "", r.orgnr or "", r.point_of_care or "",
            r.purpose_of_use, "citizen" if r.citizen else "",
            request.since.isoformat() if request.since else "",
        )

    def recall(self, key: str) -> tuple[Entry, SourceResult] | None:
        """The entry under `key` if this process holds it (with its cached-marked result)."""
        held = self.local.get(key)
        if held is None:
            return None
        if time.monotonic() >= held[2]:
            del self.local[key]
            return None
        self.local.move_to_end(key)
        return held[0], held[1]

    def _keep(self, key: str, entry: Entry, expires: float) -> None:
        self.local[key] = (entry, mark_cached(entry.result), expires)
        self.local.move_to_end(key)
        while len(self.local) > LOCAL_ENTRIES:
            self.local.popitem(last=False)

    async def load(self, key: str, categories: Iterable[AnyCategory] = (),
                   lifetime: float | None = None) -> Entry | None:
        """The entry under `key`; with `lifetime` (what `save` was given) it is also kept in
        this process for what remains of that lifetime."""
        blob = await self.store.get(key)
        if blob is None:
            return None
        plain = self.keys.open(blob, aad=key.encode())
        if plain is None or len(plain) < _HEADER.size:
            return None  # sealed under another key (rotated): unreadable, never wrong
        try:
            entry = Entry(decode(plain[_HEADER.size:], categories),
                          _HEADER.unpack_from(plain)[0])
        except CodecError:
            return None
        if lifetime is not None:
            left = lifetime - max(0.0, self.clock() - entry.stored_at)
            if left > 0:
                self._keep(key, entry, time.monotonic() + left)
        return entry

    async def save(self, key: str, result: SourceResult, lifetime: float) -> None:
        started = time.monotonic()  # kept here no longer than the store keeps it
        entry = Entry(result, self.clock())
        plain = _HEADER.pack(entry.stored_at) + encode(result)
        await self.store.set(key, self.keys.seal(plain, aad=key.encode()), lifetime)
        self._keep(key, entry, started + lifetime)


class CachedConnector:
    """A Connector that answers from the cache when it may, and from `inner` otherwise."""

    def __init__(self, inner: Connector, cache: Cache, *, ttl: float, max_stale: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.categories = inner.categories
        if hasattr(inner, "standard"):
            self.standard = inner.standard
        self.cache = cache
        self.ttl = ttl
        self.max_stale = max_stale

    def __getattr__(self, name: str) -> Any:  # breaker state etc. of the wrapped connector
        return getattr(self.inner, name)

    async def fetch(self, request: FetchRequest) -> SourceResult:
        cache = self.cache
        generation: int | None
        try:
            generation = await cache.generation(self.name, request.patient_nin)
        except CacheUnavailableError:
            generation = None
        key = cache.entry_key(request, self.name, generation if generation is not None else -1)
        entry = None
        if generation is not None and not request.fresh:
            held = cache.recall(key)
            if held is not None and cache.clock() - held[0].stored_at < self.ttl:
                return held[1]
            entry = held[0] if held is not None else await self._load(key)
            if entry is not None and cache.clock() - entry.stored_at < self.ttl:
                return mark_cached(entry.result)
        try:
            return await self._flight(key, request, shared=generation is not None)
        except ConnectorError as exc:
            if not exc.transient or generation is None:
                raise
            if entry is None:
                entry = await self._load(key)
            age = cache.clock() - entry.stored_at if entry is not None else None
            if entry is None or age is None or age > self.ttl + self.max_stale:
                raise
            return mark_stale(entry.result, exc, cache.clock())

    async def _load(self, key: str) -> Entry | None:
        try:
            return await self.cache.load(key, self.categories, self.ttl + self.max_stale)
        except CacheUnavailableError:
            return None

    async def _flight(self, key: str, request: FetchRequest, *, shared: bool) -> SourceResult:
        flights = self.cache.flights
        future = flights.get(key)
        if future is None:
            future = asyncio.ensure_future(self._fill(key, request, shared=shared))
            flights[key] = future
            future.add_done_callback(lambda f: _forget(flights, key, f))
        return await asyncio.shield(future)

    async def _fill(self, key: str, request: FetchRequest, *, shared: bool) -> SourceResult:
        # leave a sliver of the budget to serve a stale entry if the source fails
        outer = Budget.of(request, self.name)
        budget = outer.cut(min(0.1, outer.seconds * 0.1))
        deadline = budget.deadline
        lock = f"{self.cache.prefix}lock:" + key.rsplit(":", 1)[1]
        locked = False
        if shared and self.cache.store.shared:
            found, locked = await self._wait_for_peer(key, lock, deadline, request.fresh)
            if found is not None:
                return mark_cached(found.result)
        if shared and not request.fresh:
            # a flight that finished between our miss and now has filled the entry: use it
            entry = await self._load(key)
            if entry is not None and self.cache.clock() - entry.stored_at < self.ttl:
                if locked:
                    with contextlib.suppress(CacheUnavailableError):
                        await self.cache.store.delete(lock)
                return mark_cached(entry.result)
        try:
            async with budget.enforce():
                result = await self.inner.fetch(budget.request(request))
            if shared:
                with contextlib.suppress(CacheUnavailableError):
                    await self.cache.save(key, result, self.ttl + self.max_stale)
            return result
        finally:
            if locked:
                with contextlib.suppress(CacheUnavailableError):
                    await self.cache.store.delete(lock)

    async def _wait_for_peer(self, key: str, lock: str, deadline: float,
                             fresh: bool) -> tuple[Entry | None, bool]:
        """Take the cross-replica lock, or wait (half the budget at most) for its holder's entry."""
        started = self.cache.clock()
        try:
            if await self.cache.store.add(lock, b"1", max(0.05, deadline - time.monotonic())):
                return None, True
            give_up = time.monotonic() + (deadline - time.monotonic()) / 2
            while time.monotonic() < give_up:
                await asyncio.sleep(LOCK_POLL_SECONDS)
                entry = await self.cache.load(key, self.categories)
                if entry is not None and entry.stored_at >= (started if fresh else 0) and (
                        self.cache.clock() - entry.stored_at < self.ttl):
                    return entry, False
        except CacheUnavailableError:
            pass
        return None, False

    async def aclose(self) -> None:
        await self.inner.aclose()


def _forget(flights: dict[str, asyncio.Future[SourceResult]], key: str,
            future: asyncio.Future[SourceResult]) -> None:
    if flights.get(key) is future:
        del flights[key]
    if not future.cancelled():
        future.exception()  # retrieved: followers may all have gone


def _mark_item(item: Any) -> Any:
    changes: dict[str, Any] = {"provenance": dataclasses.replace(item.provenance, from_cache=True)}
    if getattr(item, "provenances", None):
        changes["provenances"] = tuple(dataclasses.replace(p, from_cache=True)
                                       for p in item.provenances)
    return dataclasses.replace(item, **changes)


def mark_cached(result: SourceResult) -> SourceResult:
    """The result as served from cache: `from_cache` on it and on every item's provenance."""
    items = {c: tuple(_mark_item(i) for i in found) for c, found in result.items.items()}
    return dataclasses.replace(result, items=items, from_cache=True)


def mark_stale(result: SourceResult, error: ConnectorError, now: float) -> SourceResult:
    """A cached result served because the source failed: STALE where it had answered."""
    cached = mark_cached(result)
    age = max(0.0, now - result.fetched_at.timestamp())
    categories: set[AnyCategory] = set(result.items) | set(result.category_status)
    statuses = {}
    for category in categories:
        status = result.status_for(category)
        statuses[category] = Status.STALE if status in _LIVE else status
    return dataclasses.replace(
        cached,
        status=Status.STALE if result.status in _LIVE else result.status,
        category_status=statuses,
        category_reason={c: r for c, r in result.category_reason.items()
                         if statuses.get(c) is not Status.STALE},
        detail=f"Source {result.source!r} failed ({error.code}); served from cache, "
               f"{age:.0f} s old.",
    )
