"""Request heads over the limit get 431 from the real server before it reads them in full: the
shared test stack (uvicorn with the gateway's protocol) and `kilde serve` itself."""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.auditing import serve_env, start_serve, stop
from tests.e2e.conftest import Stack
from tests.servers import listening_socket, port_of

TEN_MIB = 10 * 1024 * 1024


def send_head(port: int, header_bytes: int) -> tuple[bytes, int, float]:
    """Send a GET whose one header is `header_bytes` long; (response, bytes sent, seconds)."""
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(b"GET /graphql?query=%7Bme%7Bkind%7D%7D HTTP/1.1\r\nhost: kilde\r\n"
                         b"x-padding: ")
            while sent < header_bytes:
                chunk = b"a" * min(65536, header_bytes - sent)
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what a limit looks like from here
        response = b""
        try:
            while b"\r\n\r\n" not in response or len(response) < _length(response):
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except ConnectionResetError:
            pass
    return response, sent, time.monotonic() - started


def _length(response: bytes) -> int:
    head, _, _ = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":", 1)[1])
    return len(response) + 1


def assert_431(response: bytes) -> None:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 431"), lines[0]
    headers = dict(line.split(": ", 1) for line in lines[1:])
    headers = {k.lower(): v for k, v in headers.items()}
    uuid.UUID(headers["x-request-id"])
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["errors"][0]
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "limit": "headerBytes",
                                   "maximum": 65536}


def test_a_ten_mib_header_is_refused_with_431_without_being_read(stack: Stack) -> None:
    response, sent, _ = send_head(stack.gateway.port, TEN_MIB)
    assert_431(response)
    assert sent < TEN_MIB // 2, f"the server read {sent} bytes of the header first"


def test_a_head_just_under_the_limit_is_served(stack: Stack) -> None:
    response, _, _ = send_head(stack.gateway.port, 60 * 1024)
    assert response.startswith(b"HTTP/1.1 401"), response[:80]  # served: no token, 401


@pytest.mark.slow
def test_kilde_serve_refuses_an_oversized_head_too(stack: Stack, tmp_path: Path) -> None:
    sock = listening_socket()
    port = port_of(sock)
    env = serve_env(port, stack.sandbox.url, f"sqlite:///{tmp_path / 'audit.sqlite3'}",
                    KILDE_LIMITS__MAX_HEADER_BYTES="16384")
    proc = start_serve(env, tmp_path / "serve.log", sock)
    try:
        response, sent, seconds = send_head(port, TEN_MIB)
        assert response.startswith(b"HTTP/1.1 431"), response[:80]
        assert b'"maximum":16384' in response
        assert sent < TEN_MIB // 2
        assert seconds < 5
    finally:
        stop(proc, signal.SIGTERM)
