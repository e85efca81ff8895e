"""Admission: what a GraphQL request must pass after authentication and before execution.

Sits in the GraphQL endpoint between `authenticate` and `schema.execute`: per-client rate limit
(429 RATE_LIMITED with Retry-After), persisted-query resolution (APQ and the allowlist), one
parse with the token limit, GET only for queries (405), then depth/alias/list/cost limits.
Every refusal is a `RefusedError` carrying the Kilde error and, where HTTP has a word for it, a
status; nothing after it runs, so a refused query calls no resolver and no upstream.

>>> admission = Admission(limiter, persisted, rate)  # doctest: +SKIP
>>> admitted = await admission.admit("POST", principal.client_id, params)  # doctest: +SKIP

`params` is the checked `GraphQLParams` (gateway/params.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import DocumentNode, GraphQLSchema, OperationType

from connectors.cachestore import CacheStore
from connectors.crypto import CacheKeys
from gateway.limits import Limiter, Shape, root_fields, selected_operation
from gateway.params import GraphQLParams
from gateway.persisted import (
    MemoryQueryStore,
    PersistedQueries,
    QueryStore,
    SharedQueryStore,
    load_allowlist,
)
from gateway.ratelimit import RateLimiter
from gateway.settings import Settings
from schema.errors import BadUserInputError, KildeError, RateLimitedError

MAX_LABEL_FIELDS = 3
MAX_LABELS = 1024  # remembered document labels (Admission.label); then all are forgotten
META_FIELDS = frozenset({"__typename", "__schema", "__type"})
UNKNOWN = "unknown"  # no operation to label (refused before parsing, or ambiguous)
OTHER = "other"  # a root field the schema does not have: never its name


class RefusedError(Exception):
    """A request refused before execution; `status` None means "a GraphQL request error"
    (200 for application/json, 400 for application/graphql-response+json)."""

    def __init__(self, error: KildeError, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class Admitted:
    """A request that may run: its query text, the parsed document, and a metrics label."""

    query: str
    document: DocumentNode
    operation: str  # root field names: bounded by the schema, never a value from the query
    shape: Shape
    register: str | None = None  # the APQ hash to register the query under once it validated


def operation_label(document: DocumentNode, operation_name: str | None,
                    schema: GraphQLSchema | None) -> str:
    """A bounded, data-free label for metrics and traces: the selected operation's root
    fields as the schema names them; `other` when any of them is not in the schema (a client
    chooses those names, so they could carry an identity number)."""
    op = selected_operation(document, operation_name)
    names = root_fields(document, operation_name)
    if op is None or not names:
        return UNKNOWN
    root = schema.get_root_type(op.operation) if schema is not None else None
    known = META_FIELDS | (set(root.fields) if root is not None else set())
    if not known.issuperset(names):
        return OTHER
    label = "+".join(names[:MAX_LABEL_FIELDS])
    return label + ("+more" if len(names) > MAX_LABEL_FIELDS else "")


class Admission:
    """Rate limit, persisted queries, parse and limits; built once in the lifespan."""

    def __init__(self, limiter: Limiter, persisted: PersistedQueries, rate: RateLimiter,
                 schema: GraphQLSchema | None = None) -> None:
        self.limiter = limiter
        self.persisted = persisted
        self.rate = rate
        self.schema = schema
        # the label of a parsed document (the parser cache hands out one object per query
        # text), so a repeated operation does not walk its root fields and copy the root
        # type's field names again on every request
        self._labels: dict[tuple[int, str | None], tuple[DocumentNode, str]] = {}

    def label(self, document: DocumentNode, operation_name: str | None) -> str:
        """`operation_label` for this admission's schema, remembered per document."""
        key = (id(document), operation_name)
        known = self._labels.get(key)
        if known is not None and known[0] is document:
            return known[1]
        label = operation_label(document, operation_name, self.schema)
        if len(self._labels) >= MAX_LABELS:
            self._labels.clear()
        self._labels[key] = (document, label)
        return label

    async def admit(self, method: str, client: str, params: GraphQLParams) -> Admitted:
        """Decide whether this request may execute; raises `RefusedError` when it may not."""
        retry_after = await self.rate.hit(client)
        if retry_after is not None:
            seconds = int(retry_after)
            raise RefusedError(RateLimitedError(
                f"Too many requests from this client; retry after {seconds} s.",
                retryAfter=seconds), 429, {"retry-after": str(seconds)})
        try:
            query = await self.persisted.resolve(params.query, params.extensions)
            if query is None:
                raise BadUserInputError("The request has no GraphQL query.")
            document = self.limiter.parse(query)
            name = params.operation_name
            op = selected_operation(document, name)
            if op is None:  # graphql-core would fail later, outside GraphQL's error handling
                raise BadUserInputError(
                    "The document has no operation of that operationName; name one of its "
                    "operations." if name else "The document has several operations (or "
                    "none); say which one to run with operationName.")
            if method == "GET":
                if op.operation is not OperationType.QUERY:
                    raise RefusedError(BadUserInputError(
                        f"A {op.operation.value} cannot be sent with GET; use POST."), 405,
                        {"allow": "POST"})
            shape = self.limiter.check(document, self.schema, params.variables, name)
            register = self.persisted.wants(params.query, params.extensions)
        except KildeError as exc:
            raise RefusedError(exc) from None
        return Admitted(query, document, self.label(document, name), shape, register)

    async def register(self, admitted: Admitted) -> None:
        """Register an APQ query after it ran without request errors (it parsed, passed the
        limits and validated); documents with literal values are never stored."""
        if admitted.register is not None:
            await self.persisted.register(admitted.register, admitted.query, admitted.document)


def build_admission(settings: Settings, schema: GraphQLSchema | None,
                    store: CacheStore | None = None, keys: CacheKeys | None = None) -> Admission:
    """Admission from settings; `store` (the cache store: when it is Redis, shared by every
    replica, and guarded against a gone or hung Redis) holds registered queries, sealed with
    the cache `keys`, and the rate-limit counts.

    Raises ValueError with one sentence when the allowlist file is unusable.
    """
    pq = settings.persisted
    query_store: QueryStore = (SharedQueryStore(store, keys, pq.ttl_seconds)
                               if store is not None and store.shared and keys is not None
                               else MemoryQueryStore(pq.max_entries))
    allowlist = load_allowlist(pq.allowlist_file) if pq.allowlist_file else None
    return Admission(
        Limiter(settings.limits, introspection=not settings.production),
        PersistedQueries(pq, query_store, allowlist),
        RateLimiter(settings.rate_limit, store),
        schema,
    )
