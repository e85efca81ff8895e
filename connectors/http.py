"""The one shared HTTP client every connector uses, created in the gateway's lifespan.

httpx's API on aiohttp's transport: on this machine plain httpx (httpcore) managed ~25
five-source fan-outs/s at 32 concurrent requests, aiohttp underneath ~650/s (bench/RESULTS.md).
Tests still inject `httpx.MockTransport` or respx through the same `httpx.AsyncClient` type.
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport


def create_http_client(
    *, max_connections: int = 512, timeout: float = 5.0, transport: httpx.AsyncBaseTransport | None
    = None
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` on aiohttp (or on `transport`, for tests).

    >>> client = create_http_client()
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(
        transport=transport or AiohttpTransport(limits=limits, trust_env=False),
        timeout=httpx.Timeout(timeout),
        limits=limits,
        trust_env=False,
    )
