"""The one shared HTTP client every connector uses, created in the gateway's lifespan.

httpx's API on aiohttp's transport: on this machine plain httpx (httpcore) managed ~25
five-source fan-outs/s at 32 concurrent requests, aiohttp underneath ~650/s (bench/RESULTS.md).
Tests still inject `httpx.MockTransport` or respx through the same `httpx.AsyncClient` type.

Pooled keep-alive connections go stale: a server closes one it has kept idle for its own
keep-alive timeout (uvicorn, Node and Apache after 5 s), and a request written on it just then
fails before any byte of an answer (`ServerDisconnectedError`, or `ClientOSError` for the
write). aiohttp resends only idempotent methods, and most of Kilde's upstream calls are POSTs
that only read (FHIR `_search`, `$getMedication`, Kjernejournal `/status`, the NILAR search,
Persontjenesten) or a token request. So the pool forgets a connection after `KEEPALIVE_SECONDS`,
sooner than those servers, and `resend_on_stale_connection` sends a request once more when it
failed on a reused connection before any answer (RFC 9112 9.3.1): that request was never
processed, and every request Kilde sends on this client is safe to repeat (reads, the
municipal conditional create, token requests).
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# below the 5 s of uvicorn, Node and Apache (nginx keeps 75 s); a server that closes sooner is
# met by `resend_on_stale_connection`
KEEPALIVE_SECONDS = 4.0
_STALE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
# one attempt's flag, set by `_Pool.connect` when that attempt's connection came from the pool
_attempt: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "kilde_http_attempt", default=None)


async def resend_on_stale_connection(
    request: aiohttp.ClientRequest,
    handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
) -> aiohttp.ClientResponse:
    """An aiohttp client middleware: `handler(request)` again while an attempt failed on a
    connection taken from the pool before its answer began. Each such connection is closed
    and gone, so this ends at the first attempt on a new connection (whose failure is the
    request's); the request's own timeout bounds all attempts."""
    while True:
        reused = [False]
        token = _attempt.set(reused)
        try:
            return await handler(request)
        except _STALE:
            if not reused[0]:
                raise
            await request.close()  # the failed attempt's body writer has settled
            body = request.body
            if not isinstance(body, bytes) and body.consumed:  # a stream cannot be resent
                raise
        finally:
            _attempt.reset(token)


class _Pool(aiohttp.TCPConnector):
    """aiohttp's connector, telling `resend_on_stale_connection` whether an attempt's
    connection has carried a request before (aiohttp's own trace hook for that would build
    trace objects for every request)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._served: weakref.WeakSet[object] = weakref.WeakSet()

    async def connect(self, req: aiohttp.ClientRequest, traces: list[Any],
                      timeout: aiohttp.ClientTimeout) -> Any:
        conn = await super().connect(req, traces, timeout)
        protocol = conn.protocol
        if protocol in self._served:
            reused = _attempt.get()
            if reused is not None:
                reused[0] = True
        else:
            self._served.add(protocol)
        return conn


def is_timeout(exc: httpx.HTTPError) -> bool:
    """Whether an httpx error is a timeout: httpx-aiohttp reports every aiohttp connection
    error (a server closing the connection, a reset) as `httpx.ConnectTimeout`, which would
    read as "did not answer in time" for an upstream that answered nothing at once."""
    if not isinstance(exc, httpx.TimeoutException):
        return False
    cause = exc.__cause__
    return not isinstance(cause, aiohttp.ClientError) or isinstance(cause, TimeoutError)


def error_name(exc: httpx.HTTPError) -> str:
    """The error's name for a message; for a connection error httpx-aiohttp reported as a
    timeout (`is_timeout` says no), aiohttp's."""
    cause = exc.__cause__ if isinstance(exc, httpx.TimeoutException) else None
    return type(cause or exc).__name__


class AiohttpClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` whose transport is aiohttp, exposing the aiohttp session too.

    `connectors.fhir.request_json_response` sends through `session` directly when no httpx
    event hooks are installed: building httpx's request and header objects on top of aiohttp
    was ~40% of the gateway's CPU in the benchmark profile (bench/RESULTS.md). Both paths share
    one connection pool; anything using the httpx API (external connectors, tracing hooks)
    still works.
    """

    def __init__(self, session: aiohttp.ClientSession, **kwargs: Any) -> None:
        super().__init__(transport=AiohttpTransport(client=session), **kwargs)
        self.session = session

    async def aclose(self) -> None:
        await super().aclose()
        if not self.session.closed:
            await self.session.close()


def create_http_client(
    *, max_connections: int = 512, timeout: float = 5.0, transport: httpx.AsyncBaseTransport | None
    = None
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` on aiohttp (or on `transport`, for tests). Call it inside the
    running event loop (the gateway's lifespan): the aiohttp session binds to it.

    >>> client = create_http_client()  # doctest: +SKIP
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    if transport is not None:
        return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout),
                                 limits=limits, trust_env=False)
    session = aiohttp.ClientSession(
        connector=_Pool(limit=max_connections, keepalive_timeout=KEEPALIVE_SECONDS),
        trust_env=False, auto_decompress=True, middlewares=(resend_on_stale_connection,),
    )
    return AiohttpClient(session, timeout=httpx.Timeout(timeout), limits=limits, trust_env=False)
