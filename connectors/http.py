"""The one shared HTTP client every connector uses, created in the gateway's lifespan.

httpx's API on aiohttp's transport: on this machine plain httpx (httpcore) managed ~25
five-source fan-outs/s at 32 concurrent requests, aiohttp underneath ~650/s (bench/RESULTS.md).
Tests still inject `httpx.MockTransport` or respx through the same `httpx.AsyncClient` type.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


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
        connector=aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=30),
        trust_env=False, auto_decompress=True,
    )
    return AiohttpClient(session, timeout=httpx.Timeout(timeout), limits=limits, trust_env=False)
