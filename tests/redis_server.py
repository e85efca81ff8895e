"""A Redis server of the test's own, to stop (SIGSTOP), resume (SIGCONT) or kill: never the
shared one on 6379. `redis-server --save '' --appendonly no` on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


class OwnRedis:
    """One `redis-server` process; `url` to connect, `freeze`/`thaw`/`kill` to misbehave."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, nothing answers (a hung Redis)."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Gone: connections are refused from now on."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)


def _free_port() -> int:
    # redis-server cannot take over a socket we bind, so the port is chosen here and a start
    # that loses the race for it is tried again on another (see own_redis)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def own_redis() -> Iterator[OwnRedis]:
    """Start a private redis-server; skip (or fail, in CI) when the binary is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("KILDE_TEST__REQUIRE_SERVICES") == "1":
            pytest.fail("redis-server is not installed, and KILDE_TEST__REQUIRE_SERVICES=1 "
                        "requires it.")
        pytest.skip("redis-server is not installed; install it to run this test.")
    for _ in range(5):
        port = _free_port()
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while proc.poll() is None and not _answers(port) and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None and _answers(port):
            break
        proc.kill()
        proc.wait(timeout=10)  # the port was taken in between: try another
    else:
        raise RuntimeError("could not start a private redis-server")
    server = OwnRedis(proc, port)
    try:
        yield server
    finally:
        server.kill()
