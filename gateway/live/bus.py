"""The change bus: hands each change to this replica's watchers and to the other replicas.

Sits between the doors that hear of changes (POST /events, FHIR notifications, Kilde's writes)
and the `patientUpdates` subscriptions. Watchers are found by a keyed hash of the patient
(`CacheKeys.key_for`), the same on every replica with the same `KILDE_CACHE__KEY`; the relay
(Redis pub/sub, `relay.py`) carries that hash, never the identity number. A change published
here reaches this replica's watchers at once, whether or not the relay is up: with Redis down a
replica still delivers its own. A watcher that falls behind loses the oldest changes it has not
read, never the newest: a change is a cue to re-query, so the latest one is what matters.

>>> bus = ChangeBus(CacheKeys.from_secret("a-long-enough-demo-secret-0123456789"))
>>> async with bus.watch(nin) as changes:          # doctest: +SKIP
...     change = await anext(changes)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime

from connectors.crypto import CacheKeys
from gateway.live.change import Change
from gateway.live.relay import Relay

log = logging.getLogger("kilde.live")

QUEUE_SIZE = 32  # changes a watcher may have unread before the oldest is dropped


class Watch:
    """One subscriber's changes for one patient, in the order this replica heard them."""

    def __init__(self, nin: str, key: str, size: int) -> None:
        self.nin = nin
        self.key = key
        self.dropped = 0
        self._queue: asyncio.Queue[Change] = asyncio.Queue(maxsize=size)

    def put(self, change: Change) -> None:
        if self._queue.full():  # the oldest unread goes: the newest is the one to act on
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(change)

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Change:
        return await self._queue.get()


class ChangeBus:
    """Publish changes; watch a patient's. `relay` (None: this process only) carries them to
    the other replicas. `publish` never raises for relay trouble: it is logged, and this
    replica's own watchers have the change already."""

    def __init__(self, keys: CacheKeys, relay: Relay | None = None, *,
                 queue_size: int = QUEUE_SIZE) -> None:
        self._keys = keys
        self._relay = relay
        self._queue_size = queue_size
        self._watches: dict[str, set[Watch]] = {}
        self._task: asyncio.Task[None] | None = None

    def patient_key(self, nin: str) -> str:
        return self._keys.key_for("live-patient", nin)

    @property
    def watchers(self) -> int:
        return sum(len(w) for w in self._watches.values())

    @property
    def relay_status(self) -> str:
        """'ok', 'degraded' (Redis is away: changes stay in this replica) or 'disabled'."""
        if self._relay is None:
            return "disabled"
        return "ok" if self._relay.connected else "degraded"

    async def start(self) -> None:
        if self._relay is not None and self._task is None:
            self._task = asyncio.create_task(
                self._relay.run(self._deliver, self._resync), name="kilde-live-relay")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._relay is not None:
            await self._relay.aclose()

    async def publish(self, *, nin: str, source: str | None, categories: Sequence[str] = (),
                      origin: str = "kilde", municipality: str | None = None,
                      changed_at: datetime | None = None) -> Change:
        """Tell every watcher of `nin`, here and on the other replicas, that `source`'s
        `categories` (empty: all it serves) changed. The one call the doors and writes make."""
        change = Change(nin=nin, source=source, categories=tuple(categories), origin=origin,
                        municipality=municipality,
                        **({"changed_at": changed_at} if changed_at is not None else {}))
        key = self.patient_key(nin)
        self._deliver(key, change)
        if self._relay is not None:
            await self._relay.send(key, change)
        return change

    @contextlib.asynccontextmanager
    async def watch(self, nin: str) -> AsyncIterator[Watch]:
        """This patient's changes from now on, until the block ends."""
        watch = Watch(nin, self.patient_key(nin), self._queue_size)
        self._watches.setdefault(watch.key, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._watches.get(watch.key)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[watch.key]

    def _deliver(self, key: str, change: Change) -> None:
        """Hand `change` to the watchers of `key` (a relayed change carries no identity
        number: each watcher's own is put in)."""
        for watch in tuple(self._watches.get(key, ())):
            watch.put(change if change.nin == watch.nin else replace(change, nin=watch.nin))

    def _resync(self) -> None:
        """The relay is back after an outage: changes published elsewhere meanwhile were
        missed, so every watcher is told to re-query everything."""
        for watches in tuple(self._watches.values()):
            for watch in tuple(watches):
                watch.put(Change(nin=watch.nin, source=None, origin="resync"))
