"""The shared HTTP client and a server that closes pooled keep-alive connections.

A server closes a connection it has kept idle for its keep-alive timeout (uvicorn after 5 s);
a request written on it at that moment fails before any answer. In CI that was the query right
after a hanging source's 4 s wait: its POSTs (Kjernejournal `/status`, token requests) went out
on connections idle for 4.9 s and failed with `ServerDisconnectedError`, which httpx-aiohttp
reported for the token endpoint as a timeout. `StaleServer` makes the moment certain: it answers
the first request on each connection and closes the connection when a second one arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from connectors.credentials.helseid import HelseIdClient, TokenRequestError
from connectors.credentials.keys import generate_key
from connectors.errors import UpstreamUnavailableError
from connectors.fhir import request_json
from connectors.http import KEEPALIVE_SECONDS, create_http_client

ANSWER = b'{"resourceType": "Bundle", "type": "searchset"}'


class StaleServer:
    """Answers `answers_per_connection` requests on each connection, then reads the next
    request and closes the connection without a byte of answer."""

    def __init__(self, answers_per_connection: int) -> None:
        self.answers_per_connection = answers_per_connection
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/Patient/_search"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.requests += 1
                if answered == self.answers_per_connection:
                    break  # "closed just as the request arrived"
                answered += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(answers_per_connection: int) -> AsyncIterator[StaleServer]:
    server = StaleServer(answers_per_connection=answers_per_connection)
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    async with server.server:
        yield server


@pytest.fixture
async def stale() -> AsyncIterator[StaleServer]:
    async with serving(answers_per_connection=1) as server:
        yield server


@pytest.fixture
async def closing() -> AsyncIterator[StaleServer]:
    """A server that closes every connection at its first request."""
    async with serving(answers_per_connection=0) as server:
        yield server


async def test_a_post_on_a_pooled_connection_the_server_closed_is_sent_again(
        stale: StaleServer) -> None:
    http = create_http_client()
    try:
        for _ in range(3):
            body = await request_json(http, "kjernejournal", "POST", stale.url, timeout=2.0,
                                      json={"nin": "x"})
            assert body["resourceType"] == "Bundle"
    finally:
        await http.aclose()
    # each later request first went out on the pooled connection the server then closed
    assert (stale.requests, stale.connections) == (5, 3)


async def test_a_token_request_on_a_closed_pooled_connection_is_sent_again(
        stale: StaleServer) -> None:
    http = create_http_client()  # the httpx API, as HelseIdClient uses it
    try:
        for _ in range(2):
            response = await http.post(stale.url, data={"grant_type": "client_credentials"},
                                       timeout=2.0)
            assert response.status_code == 200
    finally:
        await http.aclose()
    assert (stale.requests, stale.connections) == (3, 2)


async def test_a_new_connection_closed_before_answering_is_not_sent_again(
        closing: StaleServer) -> None:
    http = create_http_client()
    try:
        with pytest.raises(UpstreamUnavailableError, match="ServerDisconnectedError"):
            await request_json(http, "kjernejournal", "POST", closing.url, timeout=2.0,
                               json={"nin": "x"})
    finally:
        await http.aclose()
    assert closing.requests == 1  # a POST that may have been processed is not repeated


async def test_a_closed_connection_at_the_token_endpoint_is_not_called_a_timeout(
        closing: StaleServer) -> None:
    http = create_http_client()
    client = HelseIdClient(http, issuer="https://helseid.test", client_id="kilde",
                           client_key=generate_key(), dpop_key=generate_key(),
                           token_endpoint=closing.url)
    try:
        with pytest.raises(TokenRequestError) as caught:
            await client.client_credentials(resource="nhn:kjernejournal", scope="x")
    finally:
        await http.aclose()
    assert not caught.value.timeout
    assert str(caught.value) == ("HelseID's token endpoint could not be reached "
                                 "(ServerDisconnectedError).")


def test_the_pool_forgets_idle_connections_before_common_servers_close_them() -> None:
    assert KEEPALIVE_SECONDS < 5.0  # uvicorn's, Node's and Apache's keep-alive timeout
