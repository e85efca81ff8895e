"""Persisted queries: Apollo's APQ protocol, and an allowlist mode for registered operations only.

Sits in the GraphQL endpoint right after the request is read: `PersistedQueries.resolve()`
turns `query` and `extensions.persistedQuery.sha256Hash` into the query text to run, or raises
`PersistedQueryNotFoundError` (the client then sends the full query with its hash, as Apollo
clients do) or `BadUserInputError`. With an allowlist (`KILDE_PERSISTED__ALLOWLIST_FILE`) only
its operations run, by hash or by identical text, and nothing new is registered.

A query is registered (`PersistedQueries.register`) only after it was parsed, passed the limits
and validated, and only when its document carries no literal values: a string, number or a
list/object holding one is where a client would write an identity number or a name, so such a
query runs but is never stored; values travel as variables. Enum, boolean and null literals are
bounded by the schema and allowed. The store is per process in memory, or the shared cache
store (Redis) when `KILDE_CACHE__URL` is Redis; there the text is sealed with the cache key and
filed under an HMAC of its hash, so a Redis dump holds no query text at all.

>>> from graphql import parse
>>> sha256_hex("{ me { name } }")[:12]
'b8d9506e34c8'
>>> carries_literals(parse('{ patient(nin: "14033841389") { nin } }'))
True
>>> carries_literals(parse('query($nin: String!) { patient(nin: $nin) { nin } }'))
False
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson
from graphql import (
    DocumentNode,
    FloatValueNode,
    IntValueNode,
    Node,
    StringValueNode,
)

from connectors.cachestore import CacheStore, CacheUnavailableError
from connectors.crypto import CacheKeys
from gateway.settings import PersistedSettings
from schema.errors import BadUserInputError, PersistedQueryNotFoundError

log = logging.getLogger("kilde.persisted")

_HASH = re.compile(r"^[0-9a-f]{64}$")
_LITERALS = (StringValueNode, IntValueNode, FloatValueNode)


def sha256_hex(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def carries_literals(document: DocumentNode) -> bool:
    """True when any argument, directive argument or variable default in `document` is (or
    holds, in a list or input object) a string, int or float literal."""
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, _LITERALS):
            return True
        if isinstance(node, Node):
            for key in node.keys:
                if key != "loc":
                    stack.append(getattr(node, key, None))
        elif isinstance(node, tuple | list):
            stack.extend(node)
    return False


class QueryStore(Protocol):
    """Where registered query texts live, by sha256 hash."""

    async def get(self, sha256: str) -> str | None: ...
    async def put(self, sha256: str, query: str) -> None: ...


class MemoryQueryStore:
    """A bounded per-process store; the least recently used entry goes first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(1, max_entries)
        self._entries: OrderedDict[str, str] = OrderedDict()

    async def get(self, sha256: str) -> str | None:
        query = self._entries.get(sha256)
        if query is not None:
            self._entries.move_to_end(sha256)
        return query

    async def put(self, sha256: str, query: str) -> None:
        self._entries[sha256] = query
        self._entries.move_to_end(sha256)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class SharedQueryStore:
    """Registered queries in the shared cache store (Redis), for every replica: the text is
    sealed (AES-GCM) and keyed by an HMAC of its hash. A store failure reads as "not found"
    (the client resends the full query) and a failed write is skipped; the store's own guard
    bounds every call (connectors/cachestore.py)."""

    def __init__(self, store: CacheStore, keys: CacheKeys, ttl_seconds: int,
                 prefix: str = "kilde:") -> None:
        self.store = store
        self.keys = keys
        self.ttl = max(1, ttl_seconds)
        self.prefix = prefix

    def _key(self, sha256: str) -> str:
        return f"{self.prefix}apq:" + self.keys.key_for("apq", sha256)

    async def get(self, sha256: str) -> str | None:
        key = self._key(sha256)
        try:
            blob = await self.store.get(key)
        except CacheUnavailableError:
            return None
        plain = self.keys.open(blob, aad=key.encode()) if blob is not None else None
        if plain is None:  # absent, or sealed under another key
            return None
        query = plain.decode()
        return query if sha256_hex(query) == sha256 else None

    async def put(self, sha256: str, query: str) -> None:
        key = self._key(sha256)
        try:
            await self.store.set(key, self.keys.seal(query.encode(), aad=key.encode()),
                                 self.ttl)
        except CacheUnavailableError:
            log.warning("persisted-query store unavailable; the query is not registered")


def load_allowlist(path: str) -> dict[str, str]:
    """Read an allowlist: Apollo's persisted-query manifest or a JSON object {hash: query}.

    Every hash is checked against its text, so a manifest cannot smuggle in other queries.
    """
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        raise ValueError(f"KILDE_PERSISTED__ALLOWLIST_FILE {path!r} is not a readable JSON "
                         "file.") from None
    if isinstance(data, dict) and isinstance(data.get("operations"), list):
        pairs = [(op.get("id"), op.get("body")) for op in data["operations"]
                 if isinstance(op, dict)]
    elif isinstance(data, dict):
        pairs = list(data.items())
    else:
        pairs = []
    allowlist: dict[str, str] = {}
    for digest, body in pairs:
        if not isinstance(body, str) or not isinstance(digest, str) or sha256_hex(body) != digest:
            raise ValueError(f"KILDE_PERSISTED__ALLOWLIST_FILE {path!r} has an entry whose id "
                             "is not the sha256 of its query text.")
        allowlist[digest] = body
    if not allowlist:
        raise ValueError(f"KILDE_PERSISTED__ALLOWLIST_FILE {path!r} lists no operations.")
    return allowlist


class PersistedQueries:
    """Resolve a request's query text from APQ hashes and the allowlist; built once."""

    def __init__(self, settings: PersistedSettings, store: QueryStore,
                 allowlist: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.allowlist = dict(allowlist) if allowlist else None

    async def resolve(self, query: Any, extensions: Any) -> str | None:
        """The query text this request runs (None when it sent neither query nor hash)."""
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        text = query if isinstance(query, str) and query.strip() else None
        if persisted is None:
            if text is not None and self.allowlist is not None \
                    and sha256_hex(text) not in self.allowlist:
                raise PersistedQueryNotFoundError(
                    "This server runs only registered operations; send a registered "
                    "operation's sha256Hash in extensions.persistedQuery.",
                    reason="NOT_IN_ALLOWLIST")
            return text
        digest = _hash_of(persisted)
        if text is None:
            found = await self._lookup(digest)
            if found is None:
                raise PersistedQueryNotFoundError("PersistedQueryNotFound")
            return found
        if sha256_hex(text) != digest:
            raise BadUserInputError("provided sha does not match query",
                                    reason="PERSISTED_QUERY_HASH_MISMATCH")
        if self.allowlist is not None and digest not in self.allowlist:
            raise PersistedQueryNotFoundError(
                "This server runs only registered operations; this one is not registered.",
                reason="NOT_IN_ALLOWLIST")
        return text

    def wants(self, query: Any, extensions: Any) -> str | None:
        """The hash to register the query text the client sent under once it has run, or None
        (no text sent, no APQ request, an allowlist, APQ off)."""
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if (persisted is None or not isinstance(query, str) or self.allowlist is not None
                or not self.settings.apq):
            return None
        digest = _hash_of(persisted)
        return digest if sha256_hex(query) == digest else None

    async def register(self, digest: str, query: str, document: DocumentNode) -> bool:
        """Store `query` under `digest` unless its document carries literals; True if stored.

        Call only for a document that parsed, passed the limits and validated."""
        if carries_literals(document):
            return False
        await self.store.put(digest, query)
        return True

    async def _lookup(self, digest: str) -> str | None:
        if self.allowlist is not None:
            return self.allowlist.get(digest)
        if not self.settings.apq:
            return None
        return await self.store.get(digest)


def _hash_of(persisted: Any) -> str:
    if not isinstance(persisted, dict) or persisted.get("version", 1) != 1:
        raise BadUserInputError("extensions.persistedQuery must be "
                                '{"version": 1, "sha256Hash": "<64 hex digits>"}.')
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not _HASH.match(digest):
        raise BadUserInputError("extensions.persistedQuery.sha256Hash must be 64 lowercase "
                                "hex digits (the sha256 of the query text).")
    return digest
