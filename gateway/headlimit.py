"""The HTTP protocol uvicorn speaks for us: httptools, refusing oversized request heads.

Sits below the app, at the socket (gateway/serving.py hands it to uvicorn): uvicorn's default HTTP implementation (httptools) has no
limit on the request line and headers, so a client can make a worker buffer (and re-join, on
every chunk) a 10 MiB header before the app sees anything. `BoundedHttpToolsProtocol` counts
the bytes of each request head as they arrive and, past `KILDE_LIMITS__MAX_HEADER_BYTES`,
answers 431 with a JSON GraphQL error, the security headers and a request id, and closes the
connection without reading on. The limit travels in uvicorn's own
`h11_max_incomplete_event_size` setting, which means the same for the h11 implementation (used
when httptools is not installed; it answers 400 instead of 431), and which survives uvicorn's
worker processes. `kilde demo`, `kilde serve`, `kilde sandbox` (through `serving.serve`) and
the test servers all pass `uvicorn_options()`.

>>> uvicorn.run(app, **uvicorn_options(settings.limits.max_header_bytes))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from gateway.logs import new_request_id
from gateway.security import ALWAYS, API_CSP
from schema.errors import QueryTooComplexError, error_dict

log = logging.getLogger("kilde.edge")
MAX_HEADER_BYTES = 64 * 1024  # request line and headers; a DPoP-bound token needs ~4 KiB

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
    HttpToolsProtocol = None


def uvicorn_options(max_header_bytes: int = MAX_HEADER_BYTES) -> dict[str, Any]:
    """The keyword arguments for `uvicorn.run`/`uvicorn.Config` that bound request heads."""
    options: dict[str, Any] = {"h11_max_incomplete_event_size": max_header_bytes}
    options["http"] = BoundedHttpToolsProtocol if HttpToolsProtocol is not None else "h11"
    return options


def _response_431(limit: int) -> bytes:
    body = orjson.dumps({"errors": [error_dict(QueryTooComplexError(
        f"The request headers are larger than {limit} bytes.", limit="headerBytes",
        maximum=limit))]})
    headers = {**ALWAYS, "content-security-policy": API_CSP, "cache-control": "no-store",
               "content-type": "application/json", "content-length": str(len(body)),
               "x-request-id": new_request_id(), "connection": "close"}
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"HTTP/1.1 431 Request Header Fields Too Large\r\n{head}\r\n".encode() + body


if HttpToolsProtocol is not None:

    class BoundedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc, valid-type]
        """uvicorn's httptools protocol with a bound on each request's head (see module)."""

        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(config, *args, **kwargs)
            self.max_head = config.h11_max_incomplete_event_size or MAX_HEADER_BYTES
            self._head = 0  # bytes of the current request head seen so far
            self._tail = b""  # the last 3 bytes, to find a CRLFCRLF split across chunks
            self._in_head = True
            self._refused = False

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._in_head:
                window = self._tail + data
                end = window.find(b"\r\n\r\n")
                seen = self._head + (end + 4 - len(self._tail) if end >= 0 else len(data))
                if seen > self.max_head:
                    self._refuse()
                    return
                self._head += len(data)
                self._tail = window[-3:]
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head, self._tail = True, 0, b""

        def on_headers_complete(self) -> None:
            self._in_head, self._head, self._tail = False, 0, b""
            super().on_headers_complete()

        def _refuse(self) -> None:
            self._refused = True
            log.warning("request head over %d bytes refused (431)", self.max_head)
            if not self.transport.is_closing():
                self.transport.write(_response_431(self.max_head))
                self.transport.close()
