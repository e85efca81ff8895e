"""`request_json` straight on aiohttp (the path every connector takes on the gateway's client):
what goes on the wire, and how each failure is translated, against a loopback server that
records the raw requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from connectors.errors import (
    UpstreamInvalidError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from connectors.fhir import MAX_BODY_BYTES, _form_body, request_json
from connectors.http import create_http_client

ANSWER = b'{"resourceType": "Bundle", "type": "searchset"}'


class Recorder:
    """Answers every request with `head` and `ANSWER` (or nothing, after `delay`), and keeps
    each request's head (lower-cased header names) and body."""

    def __init__(self, head: bytes = b"", delay: float = 0.0) -> None:
        self.head = head or b"content-length: %d\r\n" % len(ANSWER)
        self.delay = delay
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/DiagnosticReport/_search"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")[1:-2]
                headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in lines)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((headers, body))
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + self.head
                             + b"\r\n" + ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def recording(head: bytes = b"", delay: float = 0.0) -> AsyncIterator[Recorder]:
    recorder = Recorder(head, delay)
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    recorder.port = server.sockets[0].getsockname()[1]
    async with server:
        yield recorder


FORM = {"_include": "DiagnosticReport:result", "_count": "50", "date": "gt2026-01-01",
        "patient.identifier": "urn:oid:2.16.578.1.12.4.1.4.1|14033841389", "note": "æ ø å & ="}


async def test_a_form_goes_out_as_aiohttps_own_form_encoding_would_send_it() -> None:
    async with recording() as server:
        http = create_http_client()
        try:
            body = await request_json(http, "proevesvar", "POST", server.url, timeout=2.0,
                                      data=FORM)
            async with aiohttp.ClientSession() as plain:  # aiohttp's FormData, as before
                async with plain.post(server.url, data=dict(FORM)) as response:
                    await response.read()
        finally:
            await http.aclose()
    assert body["resourceType"] == "Bundle"
    (ours, our_body), (theirs, their_body) = server.requests
    assert our_body == their_body
    assert ours["content-type"] == theirs["content-type"] == "application/x-www-form-urlencoded"
    assert ours["content-length"] == theirs["content-length"] == str(len(their_body))


async def test_a_form_keeps_the_content_type_its_caller_set() -> None:
    async with recording() as server:
        http = create_http_client()
        try:
            await request_json(http, "municipal", "POST", server.url, timeout=2.0, data=FORM,
                               headers={"CONTENT-TYPE": "application/x-www-form-urlencoded; x=1"})
        finally:
            await http.aclose()
    [(headers, _)] = server.requests
    assert headers["content-type"] == "application/x-www-form-urlencoded; x=1"


@pytest.mark.parametrize("data", [
    {"count": 5},  # not a string: FormData's str()
    {"file": b"bytes"},  # FormData makes a file field of bytes
    {"bad\nname": "x"},  # FormData refuses the name
])
def test_forms_the_encoder_does_not_match_exactly_are_left_to_aiohttp(data: object) -> None:
    headers = {"accept": "application/fhir+json"}
    assert _form_body(data, headers) == (data, headers)  # type: ignore[arg-type]


def test_a_form_gets_a_content_type_only_when_none_is_set() -> None:
    body, headers = _form_body({"a": "1 2", "b": "x&y"}, {"accept": "application/fhir+json"})
    assert body == b"a=1+2&b=x%26y"
    assert headers == {"accept": "application/fhir+json",
                       "Content-Type": "application/x-www-form-urlencoded"}


async def test_an_upstream_slower_than_the_timeout_is_a_timeout() -> None:
    async with recording(delay=1.0) as server:
        http = create_http_client()
        try:
            with pytest.raises(UpstreamTimeoutError,
                               match=r"^Source 'pll' did not answer within 0\.20 s\.$"):
                await request_json(http, "pll", "GET", server.url, timeout=0.2)
        finally:
            await http.aclose()


async def test_an_unreachable_upstream_is_unavailable() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    http = create_http_client()
    try:
        with pytest.raises(UpstreamUnavailableError, match=r"^Source 'pll' could not be reached "
                                                           r"\(ClientConnectorError\)\.$"):
            await request_json(http, "pll", "GET", f"http://127.0.0.1:{port}/x", timeout=2.0)
    finally:
        await http.aclose()


async def test_an_announced_oversized_body_is_invalid_before_it_is_read() -> None:
    async with recording(head=b"content-length: %d\r\n" % (MAX_BODY_BYTES + 1)) as server:
        http = create_http_client()
        try:
            with pytest.raises(UpstreamInvalidError, match="sent an oversized response"):
                await request_json(http, "pll", "GET", server.url, timeout=2.0)
        finally:
            await http.aclose()


async def test_a_redirect_is_not_followed() -> None:
    async with recording() as server:
        redirect = f"location: {server.url}\r\ncontent-length: 0\r\n".encode()

        async def moved(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 302 Found\r\n" + redirect + b"\r\n")
            await writer.drain()
            writer.close()

        mover = await asyncio.start_server(moved, "127.0.0.1", 0)
        async with mover:
            http = create_http_client()
            try:
                with pytest.raises(UpstreamInvalidError, match="not JSON"):
                    await request_json(http, "pll", "GET",
                                       f"http://127.0.0.1:{mover.sockets[0].getsockname()[1]}/",
                                       timeout=2.0)
            finally:
                await http.aclose()
    assert server.requests == []
