"""`Idempotency-Key`: a repeated mutation gets the first result, on every replica.

Sits under the mutations (schema/write/record.py), on the cache's guarded store (Redis in
production: every replica sees what another remembered). A key belongs to the caller: it is
stored under an HMAC of (person, client, key), never in clear, and the first result is sealed
with the cache's AES-GCM key. What is remembered: a fingerprint of the write (so the same key
for another write is refused, not answered with the wrong record), the attempt's audit id, and
the record the store answered.

With Redis down nothing is remembered or recalled (`CacheUnavailableError` is swallowed and
logged), and a repeat reaches the store again: there, the record's identifier, derived from
the same key (`record_identifier`), meets the store's conditional create, which answers with
the first record instead of making a second. So a repeat never duplicates; Redis only saves the
second round trip and answers a key reused for a different write.

>>> store = IdempotencyStore(open_store("memory://"), CacheKeys.from_secret("x" * 32))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from connectors.base import SourceResult
from connectors.cachestore import CacheStore, CacheUnavailableError
from connectors.codec import CodecError, decode, encode
from connectors.crypto import CacheKeys
from connectors.model import Category, DocumentReference, Medication
from connectors.writing import Written

log = logging.getLogger("kilde.write")

TTL_SECONDS = 24 * 3600  # how long a key answers with its first result


@dataclass(frozen=True, slots=True)
class Remembered:
    """The first result of a write under one key."""

    fingerprint: str
    attempt_id: str
    item: Written
    created: bool


class IdempotencyStore:
    def __init__(self, store: CacheStore, keys: CacheKeys, *, ttl: float = TTL_SECONDS,
                 prefix: str = "kilde:") -> None:
        self._store = store
        self._keys = keys
        self._ttl = ttl
        self._prefix = prefix

    def _key(self, person: str, client: str, key: str) -> str:
        return f"{self._prefix}idem:" + self._keys.key_for("idempotency", person, client, key)

    def record_identifier(self, person: str, client: str, key: str) -> str:
        """The record's identifier value for a write under `key`: the same on every replica
        and with Redis down (the keys come from KILDE_CACHE__KEY), and naming nobody."""
        return "k-" + self._keys.key_for("record-identifier", person, client, key)[:40]

    def fingerprint(self, *parts: str) -> str:
        return self._keys.key_for("write-fingerprint", *parts)

    async def recall(self, person: str, client: str, key: str) -> Remembered | None:
        name = self._key(person, client, key)
        try:
            blob = await self._store.get(name)
        except CacheUnavailableError:
            log.warning("idempotency store unavailable; a repeat goes to the store, whose "
                        "conditional create finds the first record")
            return None
        plain = self._keys.open(blob, aad=name.encode()) if blob is not None else None
        if plain is None:
            return None
        try:
            raw = orjson.loads(plain)
            result = decode(raw["result"].encode("latin-1"))
            ((item,),) = [tuple(items) for items in result.items.values() if items]
            return Remembered(raw["fingerprint"], raw["attempt"], item, bool(raw["created"]))
        except (CodecError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None  # written by another version: unreadable, never wrong

    async def remember(self, person: str, client: str, key: str, remembered: Remembered) -> None:
        name = self._key(person, client, key)
        result = SourceResult.of(remembered.item.provenance.source,
                                 {_category(remembered.item): (remembered.item,)})
        plain = orjson.dumps({"fingerprint": remembered.fingerprint,
                              "attempt": remembered.attempt_id,
                              "created": remembered.created,
                              "result": encode(result).decode("latin-1")})
        try:
            await self._store.set(name, self._keys.seal(plain, aad=name.encode()), self._ttl)
        except CacheUnavailableError:
            log.warning("idempotency store unavailable; the first result is not remembered")


def _category(item: Written) -> Category:
    if isinstance(item, DocumentReference):
        return Category.DOCUMENTS
    if isinstance(item, Medication):
        return Category.MEDICATIONS
    return Category.TREATMENT_LIMITATIONS
