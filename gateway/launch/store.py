"""Launch contexts: a patient handed from an EPJ to an app, single-use, for one user, briefly.

Sits behind `POST /launch` (gateway/launch/routes.py), which creates one, and the GraphQL field
`launchContext(launch)`, which redeems it. A launch id is 32 random bytes; the entry's key is an
HMAC of the id *and* the user, so only the user who created it finds it (another user's lookup
misses without consuming it) and a Redis reader learns neither. The value (patient, encounter,
expiry) is sealed with AES-GCM under the cache key (`KILDE_CACHE__KEY`).

With Redis (`KILDE_CACHE__URL=redis://…`) every replica can redeem a launch, exactly once:
redemption is one `GETDEL`. When Redis does not answer in time (the store's short timeout), a
launch is kept in this process instead, under a *new* id (the Redis write may still have landed,
and an id handed out twice could be redeemed twice); a launch kept here is popped from a dict,
which no other coroutine can interleave. Redeeming while Redis is down finds only the launches
kept here; for the others it says it cannot tell (LaunchUnavailableError), never "not found".

>>> store = LaunchStore(CacheKeys.from_secret("x" * 32), None, ttl_seconds=300)
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from connectors.cachestore import CacheStore, CacheUnavailableError
from connectors.crypto import CacheKeys
from policies.model import Principal
from schema import errors

log = logging.getLogger("kilde.launch")
MAX_LOCAL = 10_000  # launches kept in this process at most (oldest go first)
MAX_ID_CHARS = 128


class LaunchUnavailableError(errors.LaunchUnavailableError):
    """The shared launch store did not answer, so whether the launch exists is unknown."""


@dataclass(frozen=True, slots=True)
class LaunchContext:
    """What an EPJ hands over: the patient (a national identity number) and optionally the
    encounter (the EPJ's own id for the contact), valid until `expires_at` (Unix seconds)."""

    patient: str
    encounter: str | None
    expires_at: float


class LaunchStore:
    """Creates and redeems launch contexts; see the module docstring.

    >>> launch, ttl = await store.create(principal, "14033841389", None)  # doctest: +SKIP
    >>> (await store.redeem(principal, launch)).patient                  # doctest: +SKIP
    '14033841389'
    """

    def __init__(self, keys: CacheKeys, shared: CacheStore | None, *, ttl_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl_seconds = ttl_seconds
        self._keys = keys
        self._shared = shared if shared is not None and shared.shared else None
        self._clock = clock
        # key -> (expires_at, sealed value); insertion order is expiry order (one TTL)
        self._local: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def _key(self, principal: Principal, launch: str) -> str:
        # bound to the person in their role (any of their tokens), not to the EPJ's client
        user = f"{principal.kind.value}:{principal.person_id}"
        return "kilde:launch:" + self._keys.key_for("launch", launch, user)

    def _seal(self, key: str, context: LaunchContext) -> bytes:
        plain = orjson.dumps({"p": context.patient, "e": context.encounter,
                              "x": context.expires_at})
        return self._keys.seal(plain, aad=key.encode())

    def _open(self, key: str, blob: bytes | None) -> LaunchContext | None:
        plain = self._keys.open(blob, aad=key.encode()) if blob else None
        if plain is None:
            return None
        data = orjson.loads(plain)
        context = LaunchContext(data["p"], data["e"], float(data["x"]))
        return context if self._clock() < context.expires_at else None

    async def create(self, principal: Principal, patient: str,
                     encounter: str | None) -> tuple[str, float]:
        """A new launch id for `principal` and its lifetime in seconds."""
        context = LaunchContext(patient, encounter, self._clock() + self.ttl_seconds)
        if self._shared is not None:
            launch = secrets.token_urlsafe(32)
            key = self._key(principal, launch)
            try:
                await self._shared.set(key, self._seal(key, context), self.ttl_seconds)
                return launch, self.ttl_seconds
            except CacheUnavailableError:
                log.warning("launch store unavailable; keeping this launch in this process")
        launch = secrets.token_urlsafe(32)  # never the id whose shared write is in doubt
        key = self._key(principal, launch)
        self._keep(key, context.expires_at, self._seal(key, context))
        return launch, self.ttl_seconds

    def _keep(self, key: str, expires_at: float, blob: bytes) -> None:
        now = self._clock()
        while self._local and next(iter(self._local.values()))[0] <= now:
            self._local.popitem(last=False)  # expired
        self._local[key] = (expires_at, blob)
        while len(self._local) > MAX_LOCAL:
            self._local.popitem(last=False)

    async def redeem(self, principal: Principal, launch: str) -> LaunchContext | None:
        """The context, which is gone from then on; None when `principal` has no such launch
        (never created, created by someone else, used, or expired)."""
        if not launch or len(launch) > MAX_ID_CHARS:
            return None
        key = self._key(principal, launch)
        kept = self._local.pop(key, None)  # no await before this: nobody else can pop it
        if kept is not None:
            return self._open(key, kept[1])
        if self._shared is None:
            return None
        try:
            blob = await self._shared.take(key)
        except CacheUnavailableError as exc:
            raise LaunchUnavailableError(
                "The launch could not be checked just now; open the app from the EPJ again."
            ) from exc
        return self._open(key, blob)
