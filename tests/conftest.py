"""Shared fixtures: the real Redis and PostgreSQL on loopback.

On a machine without them those tests skip with the reason; CI sets
KILDE_TEST__REQUIRE_SERVICES=1 so an unreachable service fails the run instead of skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

REDIS_URL = os.environ.get("KILDE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("KILDE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _need(service: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{service} is not reachable on {host}:{port}"
    if os.environ.get("KILDE_TEST__REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and KILDE_TEST__REQUIRE_SERVICES=1 requires it.")
    pytest.skip(f"{message}; start it to run this test.")


@pytest.fixture
def redis_url() -> str:
    _need("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL with a fresh, empty schema for this test (dropped afterwards)."""
    _need("PostgreSQL", "127.0.0.1", 5432)
    import asyncio

    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?search_path={schema}"
    finally:
        asyncio.run(run(f"DROP SCHEMA {schema} CASCADE"))
