"""`POST /events`: an upstream says a patient's data changed, so their cached entries go.

Sits at the HTTP edge beside the GraphQL endpoint. The municipal event store (kommunens
hendelseslager "receives events") - or any source's notifier - posts
`{"source": "municipal", "patient": "<identity number>"}` with a token carrying the scope
`kilde/events.write` (the policy file's `[scopes] events`), usually a machine's token
(client credentials, no person: the one door such a token may use). The cache bumps that
patient's generation for that source, so every entry for them there (whoever asked,
whatever categories) is unreachable from then on.
Answers 202 when done, 401/403 for bad tokens, 400 for bad input, 503 when the cache store
cannot record it (the sender should retry; entries expire within their TTL anyway).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.cache import Cache
from connectors.cachestore import CacheUnavailableError
from connectors.identifiers import is_valid_nin
from connectors.registry import Registry
from gateway.auth import Authenticator, AuthError
from gateway.auth.door import authenticate_request, challenge

log = logging.getLogger("kilde.events")

MAX_EVENT_BYTES = 4096


def _answer(status: int, payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _answer(status, {"errors": [{"message": message, "extensions": {"code": code}}]})


async def handle_event(request: Request, authenticator: Authenticator, registry: Registry,
                       cache: Cache | None) -> Response:
    scope = authenticator.trust.events_scope
    try:
        principal = await authenticate_request(request, authenticator, machine_scope=scope)
    except AuthError as exc:
        return challenge(_error(exc.status, exc.code, str(exc)), exc, authenticator)
    if scope not in principal.scopes:
        return _error(403, "FORBIDDEN", f"Posting events needs the scope {scope!r}.")
    body = await request.body()
    try:
        if len(body) > MAX_EVENT_BYTES:
            raise ValueError
        event = orjson.loads(body)
        source, nin = event["source"], event["patient"]
        if not isinstance(source, str) or not isinstance(nin, str):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return _error(400, "BAD_USER_INPUT", 'An event must be a JSON object like '
                      '{"source": "municipal", "patient": "<identity number>"}.')
    if registry.get(source) is None:
        return _error(400, "BAD_USER_INPUT",
                      f"Unknown source {source!r}; one of {list(registry.names)}.")
    if not is_valid_nin(nin):
        return _error(400, "BAD_USER_INPUT", "The patient is not a valid national identity "
                      "number.")
    if cache is None:
        return _answer(202, {"source": source, "evicted": False, "cache": "disabled"})
    try:
        await cache.evict(source, nin)
    except CacheUnavailableError:
        log.warning("event for source %s not applied: cache store unavailable", source)
        return _error(503, "CACHE_UNAVAILABLE", "The cache could not record the event; "
                      "send it again shortly.")
    return _answer(202, {"source": source, "evicted": True})
