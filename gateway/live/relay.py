"""The relay between replicas: changes over Redis pub/sub, sealed, named by keyed hashes only.

Sits under the change bus. Every replica publishes to and listens on one channel,
`<namespace>kilde:live` (no patient in its name); a message is the change sealed with the
cache's AES-GCM key (`CacheKeys.seal`, the channel as associated data), holding the patient's
keyed hash, the source, categories, origin and time: anyone reading Redis learns neither who
nor what, and a message sealed under another key is dropped. A replica skips its own messages
(it delivered them when it published). Redis trouble is not an outage: a send that fails or
takes longer than `op_timeout` is logged and dropped (the sender's own watchers have the change);
the listener reconnects with backoff and, once back, tells the bus to resync its watchers, who
may have missed changes meanwhile. redis errors never leave this module.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import orjson
import redis.asyncio

from connectors.crypto import CacheKeys
from gateway.live.change import ORIGINS, Change

log = logging.getLogger("kilde.live")

CHANNEL = "kilde:live"
HEALTH_SECONDS = 2.0  # how often a quiet listener checks that Redis still answers
MAX_BACKOFF_SECONDS = 5.0

Deliver = Callable[[str, Change], None]


class Relay(Protocol):
    """Carries changes to the other replicas (`RedisRelay`; tests may pass their own)."""

    connected: bool

    async def send(self, key: str, change: Change) -> None: ...

    async def run(self, deliver: Deliver, resync: Callable[[], None]) -> None: ...

    async def aclose(self) -> None: ...


class RedisRelay:
    """The relay over Redis at `url` (redis:// or rediss://)."""

    def __init__(self, url: str, keys: CacheKeys, *, namespace: str = "",
                 op_timeout: float = 0.25, retry_seconds: float = 1.0) -> None:
        self.channel = namespace + CHANNEL
        self.replica = uuid.uuid4().hex
        self.connected = False
        self._keys = keys
        self._op_timeout = op_timeout
        self._retry = max(0.05, retry_seconds)
        options: dict[str, Any] = {"socket_connect_timeout": op_timeout}
        self._client = redis.asyncio.Redis.from_url(
            url, socket_timeout=max(op_timeout, 0.05), **options)
        # the listener's connection waits for messages: no read timeout of its own
        self._listener = redis.asyncio.Redis.from_url(url, **options)

    def seal(self, key: str, change: Change) -> bytes:
        body = {"r": self.replica, "k": key, "s": change.source, "c": list(change.categories),
                "o": change.origin, "t": change.changed_at.isoformat(),
                "m": change.municipality, "i": change.id}
        return self._keys.seal(orjson.dumps(body), aad=self.channel.encode())

    def open(self, blob: bytes) -> tuple[str, str, Change] | None:
        """(replica, patient key, change) of a message, or None when it is not one of ours.
        The change's `nin` is empty: the bus puts each watcher's own in."""
        plain = self._keys.open(blob, aad=self.channel.encode())
        if plain is None:
            return None
        try:
            body = orjson.loads(plain)
            categories = tuple(str(c) for c in body["c"])
            if body["o"] not in ORIGINS:
                return None
            change = Change(nin="", source=body["s"], categories=categories, origin=body["o"],
                            changed_at=datetime.fromisoformat(body["t"]),
                            municipality=body["m"], id=str(body["i"]))
            return str(body["r"]), str(body["k"]), change
        except (ValueError, KeyError, TypeError):
            return None

    async def send(self, key: str, change: Change) -> None:
        try:
            async with asyncio.timeout(self._op_timeout):
                await self._client.publish(self.channel, self.seal(key, change))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # redis, socket, timeout: the other replicas miss it
            log.warning("change not relayed to other replicas (%s); delivered here only",
                        type(exc).__name__)

    async def run(self, deliver: Deliver, resync: Callable[[], None]) -> None:
        """Listen until cancelled, reconnecting after Redis trouble."""
        backoff = self._retry
        lost = False
        while True:
            try:
                await self._listen(deliver, resync if lost else None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # cancelled while redis was failing: the client turned the cancellation
                    # into its own error (or a cleanup's replaced it); stop, do not reconnect
                    raise asyncio.CancelledError from exc
                if self.connected or not lost:
                    log.warning("change relay lost Redis (%s); changes stay in this replica "
                                "until it is back", type(exc).__name__)
                self.connected, lost = False, True
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
                continue
            backoff = self._retry

    async def _listen(self, deliver: Deliver, resync: Callable[[], None] | None) -> None:
        pubsub = self._listener.pubsub(ignore_subscribe_messages=True)
        try:
            async with asyncio.timeout(max(1.0, 4 * self._op_timeout)):
                await pubsub.subscribe(self.channel)
            self.connected = True
            if resync is not None:
                log.warning("change relay reconnected to Redis; watchers re-query")
                resync()
            quiet = 0.0
            while True:
                message = await pubsub.get_message(timeout=HEALTH_SECONDS / 2)
                if message is None:
                    quiet += HEALTH_SECONDS / 2
                    if quiet >= HEALTH_SECONDS:  # a hung Redis sends nothing: ask it
                        quiet = 0.0
                        async with asyncio.timeout(self._op_timeout * 4):
                            await self._client.ping()
                    continue
                quiet = 0.0
                data = message.get("data")
                opened = self.open(data) if isinstance(data, bytes) else None
                if opened is None:
                    log.warning("change relay dropped a message it cannot open")
                    continue
                replica, key, change = opened
                if replica != self.replica:
                    deliver(key, change)
        finally:
            try:
                async with asyncio.timeout(1.0):
                    await pubsub.aclose()
            except Exception as exc:  # closing a dead connection is not worth raising
                log.debug("relay pubsub close failed: %s", type(exc).__name__)

    async def aclose(self) -> None:
        for client in (self._listener, self._client):
            try:
                async with asyncio.timeout(1.0):
                    await client.aclose()
            except Exception as exc:
                log.debug("relay close failed: %s", type(exc).__name__)


def open_relay(url: str, keys: CacheKeys, *, namespace: str = "", op_timeout: float = 0.25,
               retry_seconds: float = 1.0) -> RedisRelay | None:
    """The relay for the cache URL: Redis for redis:// and rediss://, none for memory://."""
    if url.startswith(("redis://", "rediss://")):
        return RedisRelay(url, keys, namespace=namespace, op_timeout=op_timeout,
                          retry_seconds=retry_seconds)
    return None
