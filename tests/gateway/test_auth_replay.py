"""The DPoP replay store: shared by replicas through Redis, and no outage when Redis hangs."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from gateway.auth.replay import (
    MAX_LOCAL_ENTRIES,
    ReplayStore,
    ReplayStoreFullError,
    open_replay_store,
)
from tests.servers import listening_socket, port_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_is_first_used_once_within_the_window_and_forgotten_after() -> None:
    clock = Clock()
    store = ReplayStore(90, clock=clock)
    assert await store.first_use("a")
    assert not await store.first_use("a")
    clock.now += 89
    assert not await store.first_use("a")
    clock.now += 1
    assert await store.first_use("a")
    assert not store.shared


async def test_a_full_store_refuses_rather_than_forgetting_unexpired_proofs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.auth.replay.MAX_LOCAL_ENTRIES", 3)
    clock = Clock()
    store = ReplayStore(90, clock=clock)
    for key in "abc":
        assert await store.first_use(key)
    with pytest.raises(ReplayStoreFullError) as info:
        await store.first_use("d")
    assert info.value.status == 503
    assert not await store.first_use("a")  # still remembered
    clock.now += 90
    assert await store.first_use("d")
    assert MAX_LOCAL_ENTRIES >= 100_000


# The sharing tests give a Redis call 5 s (production: 0.25 s): they test what Redis holds, and
# under load a short timeout sent a check to the replica's own store (fail-open by design).
SHARING_TIMEOUT = 5.0


async def test_replicas_share_what_they_have_seen_through_redis(redis_url: str) -> None:
    one = open_replay_store(redis_url, 90, op_timeout=SHARING_TIMEOUT, retry_seconds=1.0)
    two = open_replay_store(redis_url, 90, op_timeout=SHARING_TIMEOUT, retry_seconds=1.0)
    try:
        assert one.shared
        key = secrets.token_hex(16)
        assert await one.first_use(key)
        assert not await two.first_use(key)  # the other replica has not seen it itself
        assert not await one.first_use(key)
        assert await two.first_use(secrets.token_hex(16))
    finally:
        await one.aclose()
        await two.aclose()


async def test_installations_sharing_a_redis_keep_apart_by_namespace(redis_url: str) -> None:
    oslo = open_replay_store(redis_url, 90, op_timeout=SHARING_TIMEOUT, retry_seconds=1.0,
                             namespace="oslo:")
    bergen = open_replay_store(redis_url, 90, op_timeout=SHARING_TIMEOUT, retry_seconds=1.0,
                               namespace="bergen:")
    try:
        key = secrets.token_hex(16)
        assert await oslo.first_use(key)
        assert await bergen.first_use(key)
    finally:
        await oslo.aclose()
        await bergen.aclose()


def _start_redis() -> tuple[int, subprocess.Popen[bytes]]:
    """redis-server on a free port; it binds by number, so a port taken in between makes it
    exit at once, and the next attempt takes another port."""
    for _ in range(5):
        probe = listening_socket()
        port = port_of(probe)
        probe.close()
        process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no"],
                                   stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return port, process
            except OSError:
                time.sleep(0.05)
        process.kill()
        process.wait(timeout=10)
    pytest.fail("redis-server did not start on any of five free ports")


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, which it may freeze (never the shared one)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    port, process = _start_redis()
    try:
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(timeout=10)


async def test_a_hanging_redis_costs_one_short_timeout_and_replays_here_are_still_refused(
        own_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, process = own_redis
    store = open_replay_store(url, 90, op_timeout=0.2, retry_seconds=30.0)
    try:
        assert await store.first_use("warm-up")  # connected
        os.kill(process.pid, signal.SIGSTOP)
        started = time.monotonic()
        assert await store.first_use("during-hang")  # served without Redis
        first = time.monotonic() - started
        results = [await store.first_use(f"next-{i}") for i in range(20)]
        assert all(results)
        assert not await store.first_use("during-hang")  # this replica still remembers it
        # the one call that met the hang was cut by the op timeout (0.2 s; bound generously);
        # the next ones bypassed Redis without asking it
        assert first < 2.0
        assert store.failures == 1
    finally:
        os.kill(process.pid, signal.SIGCONT)
        await store.aclose()


async def test_redis_is_used_again_once_it_answers(
        own_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, process = own_redis
    store = open_replay_store(url, 90, op_timeout=1.0, retry_seconds=0.0)
    other = open_replay_store(url, 90, op_timeout=1.0, retry_seconds=0.0)
    try:
        os.kill(process.pid, signal.SIGSTOP)
        assert await store.first_use("while-down")
        os.kill(process.pid, signal.SIGCONT)
        for _ in range(50):  # the store probes Redis again on the next call (bounded wait)
            if await store.ping():
                break
            await asyncio.sleep(0.05)
        key = secrets.token_hex(8)
        assert await store.first_use(key)
        assert not await other.first_use(key)  # shared again
    finally:
        os.kill(process.pid, signal.SIGCONT)
        await store.aclose()
        await other.aclose()
