"""A transport between a connector and its fake upstream that passes requests on or breaks them.

Sits inside the contract kit: the kit gives the connector an `httpx.AsyncClient` on this
transport, so every check drives the connector's real HTTP code against the package's own
fake, and the faults are the same for every source whatever its wire format. A hang honours
httpx's read timeout the way a real transport does (it raises `httpx.ReadTimeout`), so a
connector that passes no timeout at all hangs, and the check says so.

>>> transport = FaultTransport(httpx.ASGITransport(app=fake_upstream()))  # doctest: +SKIP
>>> transport.mode = "garbage"  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

# mode -> what the upstream does
MODES = {
    "none": "answers normally",
    "hang": "never answers (until the client's read timeout)",
    "refuse": "refuses the connection",
    "error": "fails with HTTP 500 and an OperationOutcome",
    "rejected": "rejects the request with HTTP 400 and an OperationOutcome",
    "garbage": "answers 200 with a body that is not JSON",
    "wrong_shape": "answers 200 with JSON of the wrong shape (a list of strings)",
    "unknown_fields": "answers normally, with an unknown field added to every JSON object",
}
UNKNOWN_FIELD = "kildeContractUnknownField"
FHIR_JSON = "application/fhir+json"


def _outcome(code: str) -> bytes:
    issue = {"severity": "error", "code": code, "diagnostics": "contract kit fault"}
    return json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}).encode()


def with_unknown_fields(value: Any) -> Any:
    """`value` with `UNKNOWN_FIELD` added to every JSON object in it, however deep."""
    if isinstance(value, list):
        return [with_unknown_fields(v) for v in value]
    if isinstance(value, dict):
        out = {k: with_unknown_fields(v) for k, v in value.items()}
        out[UNKNOWN_FIELD] = {"note": "a field this connector does not know", "n": [1, 2]}
        return out
    return value


class FaultTransport(httpx.AsyncBaseTransport):
    """Passes requests to `inner` (the fake upstream) or fails them as `mode` says.

    `requests` lists every request the connector sent; `arrived` is set on the first.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, mode: str = "none") -> None:
        if mode not in MODES:
            raise ValueError(f"Fault mode must be one of {sorted(MODES)}, not {mode!r}.")
        self.inner = inner
        self.mode = mode
        self.requests: list[httpx.Request] = []
        self.arrived = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.arrived.set()
        mode = self.mode
        if mode == "hang":
            timeout = (request.extensions.get("timeout") or {}).get("read")
            if timeout is None:
                await asyncio.Event().wait()  # like an upstream that never answers
            else:
                await asyncio.sleep(timeout)
            raise httpx.ReadTimeout("contract kit: the upstream did not answer", request=request)
        if mode == "refuse":
            raise httpx.ConnectError("contract kit: connection refused", request=request)
        if mode == "error":
            return self._response(500, _outcome("exception"), request)
        if mode == "rejected":
            return self._response(400, _outcome("invalid"), request)
        if mode == "garbage":
            return self._response(200, b"<html>Service temporarily degraded</html>", request)
        if mode == "wrong_shape":
            return self._response(200, b'["not", "a", "resource"]', request)
        response = await self.inner.handle_async_request(request)
        if mode != "unknown_fields":
            return response
        body = await response.aread()
        try:
            body = json.dumps(with_unknown_fields(json.loads(body))).encode()
        except ValueError:
            pass  # not JSON: passed on as it is
        kept = {k: v for k, v in response.headers.items()
                if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")}
        return httpx.Response(response.status_code, content=body, request=request, headers=kept)

    @staticmethod
    def _response(status: int, content: bytes, request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, request=request,
                              headers={"content-type": FHIR_JSON})

    async def aclose(self) -> None:
        await self.inner.aclose()
